"""The position engine's state: accounts, positions, per-symbol market state, the at-risk index."""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections import deque
from dataclasses import dataclass, field

from libs.symbols import SymbolSpec
from services.positions.core.book import TopOfBook

NOT_INDEXED = -1


@dataclass(slots=True)
class Position:
    """One user's position on one symbol (one-way mode)."""

    size: int = 0  # signed lots
    entry: int = 0  # |size| at average entry price, cash (exact)
    fees: int = 0  # trading fees paid on the open part, cash (for the break-even price)
    liq: int = NOT_INDEXED  # the liquidation price this position is indexed under, ticks


@dataclass(slots=True)
class Account:
    user: int
    balance: int | None = None  # wallet balance; None until the wallet has told us
    positions: dict[str, Position] = field(default_factory=dict)
    leverage: dict[str, int] = field(default_factory=dict)
    liquidating: int = 0  # liquidation orders still open for this account


@dataclass(slots=True)
class Liquidation:
    """A liquidation in flight: what its order closes, at which bound, what it did so far, and
    what it sent to be deleveraged (it ends when the book's ``Deleveraged`` comes back)."""

    order_id: int
    user: int
    side: int  # sign of the position being closed
    bankruptcy: int  # ticks
    qty: int
    remaining: int
    surplus: int = 0  # cash closed better than the bankruptcy price
    fees: int = 0  # taker fees charged on its fills
    reserve: int = 0  # insurance set aside for its fee (0: bounded to pay its own fee)
    adl: int = 0  # lots sent to the book to deleverage once the order ended (0: not yet)


class RiskIndex:
    """Positions of one symbol sorted by liquidation price.

    A long is at risk when mark <= its liquidation price, a short when mark >= it, so a mark
    tick looks at a suffix of ``longs`` and a prefix of ``shorts``: O(log n + at risk).
    """

    __slots__ = ("longs", "shorts")

    def __init__(self) -> None:
        self.longs: list[tuple[int, int]] = []  # (price, user)
        self.shorts: list[tuple[int, int]] = []

    def add(self, long: bool, price: int, user: int) -> None:
        insort(self.longs if long else self.shorts, (price, user))

    def remove(self, long: bool, price: int, user: int) -> None:
        side = self.longs if long else self.shorts
        at = bisect_left(side, (price, user))
        if at < len(side) and side[at] == (price, user):
            side.pop(at)

    def at_risk(self, mark: int) -> list[int]:
        """Return the users whose liquidation price ``mark`` reached."""
        longs = self.longs[bisect_left(self.longs, (mark, -1)) :]
        shorts = self.shorts[: bisect_right(self.shorts, (mark, 1 << 63))]
        return [user for _, user in longs] + [user for _, user in shorts]

    def __len__(self) -> int:
        return len(self.longs) + len(self.shorts)


@dataclass(slots=True)
class Market:
    """Everything the engine knows of one symbol."""

    spec: SymbolSpec
    seq: int = 0  # last matcher.events seq applied
    mark: int = 0  # ticks; 0 = none yet
    mark_ts: int = 0
    sent_mark: int = 0  # the last mark tick sent to the matcher (repeated as a fence)
    sent_ts: int = 0
    last_trade: int | None = None
    index: int = 0
    index_ts: int = 0
    basis: deque[int] = field(default_factory=deque)  # (last trade - index) samples, ticks
    pending_index: dict[int, int] = field(default_factory=dict)  # mark tick ts -> index price
    next_funding: int = 0  # ns; 0 = not started
    last_rate: int = 0
    premium_sum: int = 0  # sum of k * premium_k over this interval
    premium_samples: int = 0
    holders: dict[int, Position] = field(default_factory=dict)  # user -> open position
    open_interest: int = 0  # lots: the sum of the long positions (kept by each fill)
    # holders with a position in another symbol too: their liquidation prices here go stale
    # when those marks move, so every tick of this symbol checks them exactly
    multi: set[int] = field(default_factory=set)
    liquidations: dict[int, Liquidation] = field(default_factory=dict)  # by order id
    risk: RiskIndex = field(default_factory=RiskIndex)
    book: TopOfBook = field(default_factory=TopOfBook)  # resting orders, for the mid price
