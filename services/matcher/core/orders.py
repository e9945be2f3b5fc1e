"""The core's mutable view of one order: the command that placed it plus what changed since."""

from __future__ import annotations

from libs.messages import LiquidationOrder, PlaceOrder


class Order:
    """An open order (resting, or waiting for its trigger).

    ``cmd`` is the command that placed it, kept whole for the fields that never change;
    ``price`` and ``qty`` may change by amend, ``remaining`` and ``filled`` by fills.
    """

    __slots__ = (
        "activated",
        "cmd",
        "extreme",
        "filled",
        "is_buy",
        "order_id",
        "price",
        "qty",
        "reduce_only",
        "remaining",
        "user_id",
    )

    def __init__(
        self,
        cmd: PlaceOrder | LiquidationOrder,
        is_buy: bool,
        price: int | None,
        qty: int,
        reduce_only: bool,
    ) -> None:
        self.cmd = cmd
        self.order_id = cmd.order_id
        self.user_id = cmd.user_id
        self.is_buy = is_buy
        self.price = price
        self.qty = qty
        self.remaining = qty
        self.filled = 0
        self.reduce_only = reduce_only
        # trailing stops only: whether the activation price was reached, and the best
        # price seen since (highest for a sell, lowest for a buy)
        self.activated = False
        self.extreme: int | None = None

    def __repr__(self) -> str:
        side = "buy" if self.is_buy else "sell"
        return f"Order({self.order_id} u{self.user_id} {side} {self.remaining}@{self.price})"
