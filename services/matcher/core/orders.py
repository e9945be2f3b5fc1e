"""The core's mutable view of one order: the command that placed it plus what changed since."""

from __future__ import annotations

import msgspec

from libs.messages import LiquidationOrder, PlaceOrder


class Order(msgspec.Struct, eq=False, gc=False):
    """An open order (resting, or waiting for its trigger).

    ``cmd`` is the command that placed it, kept whole for the fields that never change;
    ``price`` and ``qty`` may change by amend, ``remaining`` by fills (and amend);
    ``filled`` is always ``qty - remaining``.

    A msgspec struct rather than a plain class because the core makes one per command and
    building a struct costs less than half as much. ``eq=False``: orders compare by identity.
    ``gc=False``: an order refers only to its command and plain values, never to a cycle.
    The hot path builds it positionally, in field order; elsewhere use ``Order.of``.
    """

    cmd: PlaceOrder | LiquidationOrder
    order_id: int
    user_id: int
    is_buy: bool
    price: int | None
    qty: int
    remaining: int
    reduce_only: bool = False
    # trailing stops only: whether the activation price was reached, and the best
    # price seen since (highest for a sell, lowest for a buy)
    activated: bool = False
    extreme: int | None = None

    @classmethod
    def of(
        cls,
        cmd: PlaceOrder | LiquidationOrder,
        is_buy: bool,
        price: int | None,
        qty: int,
        reduce_only: bool,
    ) -> Order:
        """Return a new, unfilled order for ``cmd``."""
        return cls(cmd, cmd.order_id, cmd.user_id, is_buy, price, qty, qty, reduce_only)

    @property
    def filled(self) -> int:
        return self.qty - self.remaining

    def __repr__(self) -> str:
        side = "buy" if self.is_buy else "sell"
        return f"Order({self.order_id} u{self.user_id} {side} {self.remaining}@{self.price})"
