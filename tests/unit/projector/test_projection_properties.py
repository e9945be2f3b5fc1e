"""Property tests: random command flows through a MatchingCore, projected batch by batch."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from libs.messages import OrderType, PlaceOrder, SelfTradePrevention, TimeInForce, TriggerBy
from libs.read_model import keys
from services.projector.projection import Projection
from tests.unit.matcher.kit import (
    BUY,
    MID,
    SELL,
    amend,
    cancel,
    cancel_all,
    liquidation,
    mark,
    place,
)
from tests.unit.projector.test_projection import (
    SPECS,
    SYMBOL,
    TOPICS,
    Exchange,
    FakeRedis,
    restore_from,
)

USERS = st.integers(1, 4)
FLIPS = st.integers(0, 9).map(lambda n: n in (3, 7))
"""Sides alternate with the order id unless flipped, so flows cross the book often."""
PRICES = st.integers(MID - 4, MID + 4)
QTYS = st.integers(3, 40)  # 3 lots at 49,999.4 clears the 100 USDT min notional
STOP_KINDS = st.sampled_from(
    [
        OrderType.STOP_MARKET,
        OrderType.STOP_LIMIT,
        OrderType.TAKE_PROFIT_MARKET,
        OrderType.TAKE_PROFIT_LIMIT,
    ]
)

TIFS = st.sampled_from([TimeInForce.GTC] * 3 + [TimeInForce.IOC, TimeInForce.FOK, TimeInForce.GTX])
STPS = st.sampled_from([SelfTradePrevention.NONE] * 3 + list(SelfTradePrevention))
RARELY = st.integers(0, 9).map(lambda n: n == 7)  # not 0: hypothesis favours it
TARGETS = st.integers(1, 45)  # order ids of the flow

LIMIT = st.tuples(st.just("limit"), USERS, FLIPS, PRICES, QTYS, TIFS, STPS, RARELY)
OPS = st.one_of(
    LIMIT,
    LIMIT,
    LIMIT,
    LIMIT,
    LIMIT,
    LIMIT,
    st.tuples(st.just("market"), USERS, FLIPS, QTYS, RARELY),
    st.tuples(st.just("stop"), USERS, FLIPS, STOP_KINDS, PRICES, PRICES, QTYS, st.booleans()),
    st.tuples(st.just("trail"), USERS, FLIPS, st.integers(100_000, 2_000_000)),
    st.tuples(st.just("cancel"), USERS, TARGETS),
    st.tuples(st.just("cancel_all"), USERS),
    st.tuples(st.just("amend"), USERS, TARGETS, st.none() | PRICES, st.none() | QTYS),
    st.tuples(st.just("amend"), USERS, TARGETS, st.none() | PRICES, st.none() | QTYS),
    st.tuples(st.just("mark"), PRICES),
    st.tuples(st.just("liq"), USERS, FLIPS, PRICES, QTYS),
    st.tuples(st.just("cross"), USERS, USERS, FLIPS, PRICES, QTYS, QTYS, TIFS, STPS),
    st.tuples(st.just("cross"), USERS, USERS, FLIPS, PRICES, QTYS, QTYS, TIFS, STPS),
)


def side(oid: int, flip: bool):
    return BUY if (oid % 2 == 0) != flip else SELL


def commands_of(op: tuple, oid: int) -> list:
    """Return the commands of one op: one, or a resting maker and a taker that crosses it."""
    if op[0] != "cross":
        return [command(op, oid)]
    _, maker, taker, flip, price, maker_qty, taker_qty, tif, stp = op
    maker_side = side(oid, flip)
    taker_side = SELL if maker_side == BUY else BUY
    return [
        place(oid, maker, maker_side, price, maker_qty),
        place(oid + 100, taker, taker_side, price, taker_qty, tif=tif, stp=stp),
    ]


def command(op: tuple, oid: int):
    kind = op[0]
    if kind == "limit":
        _, user, flip, price, qty, tif, stp, reduce = op
        return place(oid, user, side(oid, flip), price, qty, tif=tif, stp=stp, reduce_only=reduce)
    if kind == "market":
        _, user, flip, qty, fok = op
        tif = TimeInForce.FOK if fok else TimeInForce.IOC
        return place(oid, user, side(oid, flip), None, qty, tif=tif)
    if kind == "stop":
        _, user, flip, stop_kind, stop_price, price, qty, on_mark = op
        limit = stop_kind in (OrderType.STOP_LIMIT, OrderType.TAKE_PROFIT_LIMIT)
        return place(
            oid,
            user,
            side(oid, flip),
            price if limit else None,
            qty,
            kind=stop_kind,
            stop_price=stop_price,
            trigger_by=TriggerBy.MARK if on_mark else TriggerBy.LAST,
        )
    if kind == "trail":
        _, user, flip, rate = op
        return place(
            oid,
            user,
            side(oid, flip),
            None,
            5,
            kind=OrderType.TRAILING_STOP,
            callback_rate=rate,
            trigger_by=TriggerBy.MARK,
        )
    if kind == "cancel":
        return cancel(op[2], op[1])
    if kind == "cancel_all":
        return cancel_all(op[1])
    if kind == "amend":
        _, user, target, price, qty = op
        return amend(target, user, price=price, qty=qty)
    if kind == "mark":
        return mark(op[1])
    _, user, flip, price, qty = op
    return liquidation((1 << 62) | oid, user, side(oid, flip), price, qty)


FLOWS = st.lists(st.tuples(OPS, st.booleans()), min_size=4, max_size=45)
"""Each op, and whether its PlaceOrder request is read before or after its matcher events."""


class DepthClient:
    """A WebSocket client's copy of the book: a snapshot, then the depth messages after it."""

    def __init__(self, update_id: int, bids: list, asks: list) -> None:
        self.update_id = update_id
        self.levels = {"bids": dict(map(tuple, bids)), "asks": dict(map(tuple, asks))}

    def apply(self, message: dict) -> None:
        if message["update_id"] <= self.update_id:
            return  # already folded into the snapshot
        assert message["first_update_id"] == self.update_id + 1, "gap in the depth stream"
        for side in ("bids", "asks"):
            for price, qty in message[side]:
                if qty:
                    self.levels[side][price] = qty
                else:
                    del self.levels[side][price]
        self.update_id = message["update_id"]

    def book(self) -> tuple[list, list]:
        bids = sorted(self.levels["bids"].items(), reverse=True)
        asks = sorted(self.levels["asks"].items())
        return [list(level) for level in bids], [list(level) for level in asks]


def run_flow(flow, sizes, restart_at: int | None = None) -> tuple[Exchange, list]:
    """Send ``flow`` in batches of ``sizes`` (cycled), checking the projection after each."""
    ex = Exchange()
    client = DepthClient(0, [], [])  # subscribed before anything happened
    late_client: DepthClient | None = None
    commands = [
        (cmd, early) for oid, (op, early) in enumerate(flow, 1) for cmd in commands_of(op, oid)
    ]
    start, turn = 0, 0
    while start < len(commands):
        batch = commands[start : start + sizes[turn % len(sizes)]]
        start, turn = start + len(batch), turn + 1
        for cmd, early in batch:
            if early and isinstance(cmd, PlaceOrder):
                ex.request(cmd)
        ex.matcher_batch(*(cmd for cmd, _ in batch))
        for cmd, early in batch:
            if not early and isinstance(cmd, PlaceOrder):
                ex.request(cmd)
        published = len(ex.redis.published)
        ex.flush()
        for channel, message in ex.redis.published[published:]:
            if channel == keys.depth_channel(SYMBOL):
                client.apply(message)
                if late_client is not None:
                    late_client.apply(message)
        assert_projection_matches_core(ex)
        assert client.book() == ex.core_book()
        if late_client is None and turn == 2:
            bids, asks, update_id = ex.book()  # a client that joins now, from the snapshot
            late_client = DepthClient(update_id, bids, asks)
        if late_client is not None:
            assert late_client.book() == ex.core_book()
        if turn == restart_at:
            restored = Exchange(restore_from(ex.redis))
            assert restored.projection.digest() == ex.projection.digest()
            ex.projection = restored.projection
    return ex, commands


def assert_projection_matches_core(ex: Exchange) -> None:
    projection, core = ex.projection, ex.core
    book = projection.books.get(SYMBOL)
    bids = book.bids() if book else []
    asks = book.asks() if book else []
    _, core_bids, core_asks = core.depth(10_000)
    assert bids == core_bids and asks == core_asks
    assert all(qty > 0 for _, qty in bids + asks)
    assert not bids or not asks or bids[0][0] < asks[0][0], "crossed book"
    assert ex.book() == (
        [list(b) for b in bids],
        [list(a) for a in asks],
        book.update_id if book else 0,
    )
    open_orders = {oid: o for oid, o in projection.orders.items() if o.is_open}
    core_open = {**core.orders, **core.stops}
    assert open_orders.keys() == core_open.keys()
    for oid, order in open_orders.items():
        assert order.qty - order.filled == core_open[oid].remaining
        assert order.price == core_open[oid].price or core_open[oid].price is None
    redis_open = set().union(*(v for k, v in ex.redis.data.items() if k.startswith("orders:open:")))
    assert redis_open == {str(oid) for oid in open_orders}


@settings(max_examples=150, deadline=None)
@given(FLOWS, st.lists(st.integers(1, 6), min_size=1, max_size=4))
def test_after_every_batch_the_projected_book_and_open_orders_are_the_cores(flow, sizes):
    run_flow(flow, sizes)


@settings(max_examples=80, deadline=None)
@given(FLOWS, st.lists(st.integers(1, 6), min_size=1, max_size=4), st.integers(1, 8))
def test_a_projection_restored_midway_from_redis_ends_in_the_same_state(flow, sizes, restart):
    straight, _ = run_flow(flow, sizes)
    restarted, _ = run_flow(flow, sizes, restart_at=restart)
    assert restarted.projection.digest() == straight.projection.digest()
    assert restarted.redis.data == straight.redis.data


@settings(max_examples=80, deadline=None)
@given(FLOWS, st.lists(st.integers(1, 6), min_size=1, max_size=4))
def test_replaying_the_same_inputs_in_one_flush_gives_the_same_state_and_keys(flow, sizes):
    ex, _ = run_flow(flow, sizes)
    replay = Projection(TOPICS, SPECS)
    for item in ex.inputs:
        replay.apply(item)
    redis = FakeRedis()
    redis.run(replay.flush())
    assert replay.digest() == ex.projection.digest()
    assert redis.data == ex.redis.data
    depth = [m for c, m in ex.redis.published if c == keys.depth_channel(SYMBOL)]
    assert [m["update_id"] for m in depth] == list(range(1, len(depth) + 1))
    assert json.loads(redis.data.get(keys.book_key(SYMBOL), {}).get("update_id", "0")) == len(depth)
