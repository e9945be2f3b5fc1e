"""The top of a symbol's book, rebuilt from the matcher's events (for the mark price's mid).

Only resting quantity per price is kept: an accepted GTC/GTX limit order enters at its price
(stop-limit and take-profit-limit ones when triggered), fills bring it to the remaining the
matcher reports, cancels and expiries take it out, amends move it. An order that crosses is
listed from its acceptance until its own fills (which follow in the same stream) settle it.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from typing import Any

from libs.messages import (
    LIMIT_PRICED,
    STOP_PRICED,
    OrderAccepted,
    OrderAmended,
    OrderCancelled,
    OrderExpired,
    OrderFilled,
    OrderTriggered,
    OrderType,
    Side,
    TimeInForce,
)
from services.positions.core.snapshot import TopOfBookState

RESTING_TIF = (TimeInForce.GTC, TimeInForce.GTX)
LIMIT_STOPS = LIMIT_PRICED & STOP_PRICED  # stop-limit, take-profit-limit: rest once triggered


class TopOfBook:
    __slots__ = ("ask_keys", "asks", "bid_keys", "bids", "orders", "waiting")

    def __init__(self) -> None:
        self.orders: dict[int, list] = {}  # id -> [is_buy, price, remaining, qty]
        self.waiting: dict[int, list] = {}  # untriggered limit stops: id -> [is_buy, price, qty]
        self.bids: dict[int, int] = {}  # price -> resting lots
        self.asks: dict[int, int] = {}
        self.bid_keys: list[int] = []  # sorted ascending
        self.ask_keys: list[int] = []

    # -- levels -------------------------------------------------------------------------------
    def _level(self, is_buy: bool, price: int, delta: int) -> None:
        levels, keys = (self.bids, self.bid_keys) if is_buy else (self.asks, self.ask_keys)
        qty = levels.get(price, 0) + delta
        if qty > 0:
            if price not in levels:
                insort(keys, price)
            levels[price] = qty
        elif price in levels:
            del levels[price]
            keys.pop(bisect_left(keys, price))

    def _add(self, order_id: int, is_buy: bool, price: int, qty: int) -> None:
        if qty > 0 and order_id not in self.orders:
            self.orders[order_id] = [is_buy, price, qty, qty]
            self._level(is_buy, price, qty)

    def _set_remaining(self, order_id: int, remaining: int) -> None:
        order = self.orders.get(order_id)
        if order is None:
            return
        self._level(order[0], order[1], remaining - order[2])
        if remaining > 0:
            order[2] = remaining
        else:
            del self.orders[order_id]

    # -- events -------------------------------------------------------------------------------
    def apply(self, event: Any) -> None:
        kind = type(event)
        if kind is OrderFilled:
            self._set_remaining(event.taker_order_id, event.taker_remaining)
            self._set_remaining(event.maker_order_id, event.maker_remaining)
        elif kind is OrderAccepted:
            if event.price is None or event.tif not in RESTING_TIF:
                return
            is_buy = event.side == Side.BUY
            if event.order_type == OrderType.LIMIT:
                self._add(event.order_id, is_buy, event.price, event.qty)
            elif event.order_type in LIMIT_STOPS:
                self.waiting[event.order_id] = [is_buy, event.price, event.qty]
        elif kind is OrderTriggered:
            waiting = self.waiting.pop(event.order_id, None)
            if waiting is not None:
                self._add(event.order_id, *waiting)
        elif kind is OrderCancelled or kind is OrderExpired:
            self.waiting.pop(event.order_id, None)
            self._set_remaining(event.order_id, 0)
        elif kind is OrderAmended:
            order = self.orders.get(event.order_id)
            if order is None:
                return
            is_buy, price, remaining, qty = order
            filled = qty - remaining
            self._set_remaining(event.order_id, 0)
            new_price = event.price if event.price is not None else price
            new_remaining = event.qty - filled
            if new_remaining > 0:
                self.orders[event.order_id] = [is_buy, new_price, new_remaining, event.qty]
                self._level(is_buy, new_price, new_remaining)

    # -- reads --------------------------------------------------------------------------------
    def best_bid(self) -> int | None:
        return self.bid_keys[-1] if self.bid_keys else None

    def best_ask(self) -> int | None:
        return self.ask_keys[0] if self.ask_keys else None

    def mid(self) -> int | None:
        """Return (best bid + best ask) / 2 in ticks (floor), or None unless both sides rest and
        the book is not crossed (a crossing order's own fills are still to come)."""
        bid, ask = self.best_bid(), self.best_ask()
        if bid is None or ask is None or bid >= ask:
            return None
        return (bid + ask) // 2

    # -- snapshot -----------------------------------------------------------------------------
    def to_state(self) -> TopOfBookState:
        return TopOfBookState(
            [(oid, b, p, r, q) for oid, (b, p, r, q) in sorted(self.orders.items())],
            [(oid, b, p, q) for oid, (b, p, q) in sorted(self.waiting.items())],
        )

    @classmethod
    def from_state(cls, state: TopOfBookState) -> TopOfBook:
        book = cls()
        for oid, is_buy, price, remaining, qty in state.orders:
            book.orders[oid] = [is_buy, price, remaining, qty]
            book._level(is_buy, price, remaining)
        for oid, is_buy, price, qty in state.waiting:
            book.waiting[oid] = [is_buy, price, qty]
        return book
