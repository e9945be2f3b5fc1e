"""Builders and checks shared by the matcher tests."""

from __future__ import annotations

from libs.messages import (
    AmendOrder,
    CancelAll,
    CancelOrder,
    Deleverage,
    LiquidationOrder,
    MarkPriceTick,
    OrderFilled,
    OrderType,
    PlaceOrder,
    Side,
    TimeInForce,
)
from libs.symbols import get_symbol
from services.matcher.core import MatchingCore

SPEC = get_symbol("BTC-PERP")
SYMBOL = SPEC.name
BUY, SELL = Side.BUY, Side.SELL
MID = 500_000  # 50,000.0


def place(oid, user, side, price=None, qty=10, *, kind=None, tif=TimeInForce.GTC, **fields):
    if kind is None:
        kind = OrderType.LIMIT if price is not None else OrderType.MARKET
    return PlaceOrder(
        request_id=f"r{oid}",
        order_id=oid,
        user_id=user,
        symbol=SYMBOL,
        side=side,
        order_type=kind,
        qty=qty,
        price=price,
        tif=tif,
        **fields,
    )


def cancel(oid, user, **fields):
    return CancelOrder(request_id=f"c{oid}", user_id=user, symbol=SYMBOL, order_id=oid, **fields)


def cancel_all(user):
    return CancelAll(request_id=f"ca{user}", user_id=user, symbol=SYMBOL)


def amend(oid, user, price=None, qty=None):
    return AmendOrder(
        request_id=f"a{oid}", user_id=user, symbol=SYMBOL, order_id=oid, price=price, qty=qty
    )


def liquidation(oid, user, side, price, qty):
    return LiquidationOrder(
        request_id=f"l{oid}",
        order_id=oid,
        user_id=user,
        symbol=SYMBOL,
        side=side,
        qty=qty,
        price=price,
    )


def deleverage(user, side, price, qty, counterparties, liquidation_id=99):
    return Deleverage(
        liquidation_id=liquidation_id,
        user_id=user,
        symbol=SYMBOL,
        side=side,
        qty=qty,
        price=price,
        counterparties=tuple(counterparties),
    )


def mark(price, ts=1):
    return MarkPriceTick(symbol=SYMBOL, mark_price=price, ts=ts)


class Harness:
    """A core fed one command (or one batch) at a time, with increasing offsets."""

    def __init__(self, core: MatchingCore | None = None) -> None:
        self.core = core or MatchingCore(SPEC)
        self.offset = self.core.last_offset + 1
        self.events: list = []

    def send(self, *commands) -> list:
        """Apply ``commands`` as one batch; return its events without the BatchCompleted."""
        batch = []
        for cmd in commands:
            batch.append((self.offset, cmd))
            self.offset += 1
        events = self.core.process_batch(batch)
        self.events += events
        assert_invariants(self.core)
        return events[:-1]

    def fills(self, events=None) -> list[tuple[int, int, int, int]]:
        """Return (taker, maker, price, qty) of every fill so far (or in ``events``)."""
        return [
            (e.taker_order_id, e.maker_order_id, e.price, e.qty)
            for e in (self.events if events is None else events)
            if type(e) is OrderFilled
        ]

    def book(self):
        _, bids, asks = self.core.depth(1000)
        return bids, asks


def kinds(events) -> list[str]:
    return [type(e).__name__ for e in events]


def assert_invariants(core: MatchingCore) -> None:
    """Check the book's structural invariants; raise AssertionError on the first broken one."""
    seen = {}
    for side in (core.bids, core.asks):
        assert side.keys == sorted(set(side.keys)), "price keys sorted and unique"
        assert {k * side.sign for k in side.keys} == set(side.levels), "keys == levels"
        for price, level in side.levels.items():
            assert level, f"empty level at {price}"
            for order in level:
                assert order.remaining > 0, f"non-positive resting qty {order}"
                assert order.price == price and order.is_buy == side.is_bid
                assert order.order_id not in seen, "order in the book twice"
                seen[order.order_id] = order
    assert seen.keys() == core.orders.keys(), "id index == book contents"
    assert all(core.orders[i] is o for i, o in seen.items())
    best_bid, best_ask = core.bids.best(), core.asks.best()
    assert best_bid is None or best_ask is None or best_bid < best_ask, "book crossed"
    by_user: dict[int, set[int]] = {}
    for order in [*core.orders.values(), *core.stops.values()]:
        by_user.setdefault(order.user_id, set()).add(order.order_id)
    assert by_user == {u: set(ids) for u, ids in core.user_orders.items()}, "user index"
    assert set(core.reduce_only) == {i for i, o in core.orders.items() if o.reduce_only}
