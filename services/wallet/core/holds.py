"""Holds: margin reserved for open orders. Tracked apart from balances; they never move money."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Hold:
    """The margin reserved for one open order, and the terms it was computed from."""

    order_id: int
    user_id: int
    symbol: str
    request_id: str  # the placing request: a matcher rejection naming it ends the order
    price: int  # ticks the hold is priced at (limit price, or the band's edge for market types)
    leverage: int  # fixed at placement, so releases depend only on the order's own events
    remaining: int  # lots still open, as the matcher reported them
    filled: int
    amount: int  # cash still reserved


class Holds:
    """Every open order's hold, indexed by order id, with per-user totals."""

    __slots__ = ("by_order", "by_user")

    def __init__(self) -> None:
        self.by_order: dict[int, Hold] = {}
        self.by_user: dict[int, int] = {}  # no lifetime totals: they would grow without bound

    def of_user(self, user_id: int) -> int:
        return self.by_user.get(user_id, 0)

    def open(self, hold: Hold) -> None:
        self.by_order[hold.order_id] = hold
        self._move(hold.user_id, hold.amount)

    def set_amount(self, hold: Hold, amount: int) -> None:
        """Reserve more or release some of an open order's hold."""
        self._move(hold.user_id, amount - hold.amount)
        hold.amount = amount

    def close(self, hold: Hold) -> None:
        """Release the whole remaining hold of an order that ended; forget the order."""
        self._move(hold.user_id, -hold.amount)
        hold.amount = 0
        del self.by_order[hold.order_id]

    def _move(self, user_id: int, delta: int) -> None:
        total = self.by_user.get(user_id, 0) + delta
        if total:
            self.by_user[user_id] = total
        else:
            self.by_user.pop(user_id, None)
