"""The gateway projection, fed with real MatchingCore output: order statuses, book, fills,
messages, and the ordering rules between topics."""

from __future__ import annotations

import json
from collections import defaultdict

import msgspec

from libs.messages import (
    AccountUpdated,
    AutoDeleveraged,
    Cause,
    FundingPaid,
    FundingRateSet,
    LeverageSet,
    LiquidationSettled,
    LiquidationTriggered,
    MarkPriceUpdated,
    Message,
    OrderFilled,
    OrderRequestRejected,
    OrderType,
    PlaceOrder,
    PositionChanged,
    SelfTradePrevention,
    SetLeverage,
    TimeInForce,
    TriggerBy,
)
from libs.read_model import keys
from libs.read_model.candles import INTERVALS, Candle
from libs.read_model.positions import PositionFacts
from libs.topics import Topics, cause_of
from services.matcher.core import MatchingCore
from services.projector.orders import Order
from services.projector.projection import Input, Projection
from tests.unit.matcher.kit import (
    BUY,
    MID,
    SELL,
    SPEC,
    SYMBOL,
    amend,
    cancel,
    cancel_all,
    liquidation,
    mark,
    place,
)

TOPICS = Topics("t.")
SPECS = {SYMBOL: SPEC}
NOW_MS = 1_700_000_000_000
LIQUIDATION_ID = (1 << 62) | 7


class FakeRedis:
    """The Redis commands the projection emits, on dicts (values kept as the strings Redis
    would return), and the messages published, decoded."""

    def __init__(self) -> None:
        self.data: dict[str, object] = {}
        self.published: list[tuple[str, dict]] = []

    def run(self, commands: list[tuple]) -> None:
        for name, *args in commands:
            getattr(self, name.lower())(*args)

    @staticmethod
    def _text(value: object) -> str:
        return value.decode() if isinstance(value, bytes) else str(value)

    def hset(self, key: str, *pairs: object) -> None:
        fields = self.data.setdefault(key, {})
        for i in range(0, len(pairs), 2):
            fields[self._text(pairs[i])] = self._text(pairs[i + 1])

    def _drop_if_empty(self, key: str) -> None:
        if key in self.data and not self.data[key]:
            del self.data[key]  # Redis deletes an emptied hash, set or list

    def hdel(self, key: str, *names: object) -> None:
        fields = self.data.get(key, {})
        for name in names:
            fields.pop(self._text(name), None)
        self._drop_if_empty(key)

    def sadd(self, key: str, member: object) -> None:
        self.data.setdefault(key, set()).add(self._text(member))

    def srem(self, key: str, member: object) -> None:
        self.data.get(key, set()).discard(self._text(member))
        self._drop_if_empty(key)

    def zadd(self, key: str, *scored: object) -> None:
        members = self.data.setdefault(key, {})
        for i in range(0, len(scored), 2):
            members[self._text(scored[i + 1])] = int(scored[i])  # type: ignore[call-overload]

    def zremrangebyscore(self, key: str, low: int, high: int) -> None:
        members = self.data.get(key, {})
        for member in [m for m, score in members.items() if low <= score <= high]:
            del members[member]
        self._drop_if_empty(key)

    def zremrangebyrank(self, key: str, start: int, stop: int) -> None:
        members = self.data.get(key, {})
        ranked = sorted(members, key=lambda m: (members[m], m))
        stop = stop + len(ranked) if stop < 0 else stop
        if stop < 0:
            return  # Redis: an empty range
        for member in ranked[start : stop + 1]:
            del members[member]
        self._drop_if_empty(key)

    def newest(self, key: str) -> str | None:
        """The member of the highest score (``ZRANGE key -1 -1``)."""
        members = self.data.get(key, {})
        return max(members, key=lambda m: (members[m], m)) if members else None

    def lpush(self, key: str, value: bytes) -> None:
        self.data.setdefault(key, []).insert(0, self._text(value))

    def ltrim(self, key: str, start: int, stop: int) -> None:
        self.data[key] = self.data.get(key, [])[start : stop + 1]
        self._drop_if_empty(key)

    def set(self, key: str, value: object, *flags: str) -> None:
        if "NX" in flags and key in self.data:
            return
        self.data[key] = self._text(value)

    def publish(self, channel: str, payload: bytes) -> None:
        self.published.append((channel, json.loads(payload)))

    def call(self, procedure, _keys, history, held, limit, order_prefix, coid_prefix) -> None:
        """The projector's one procedure in a batch (libs.redis_batch): the history trim."""
        assert procedure == "trim_order_history", procedure
        ids = sorted(self.data.get(history, {}), key=int)
        for oid in ids[: max(len(ids) - limit, 0)]:
            if oid not in self.data.get(held, {}):
                order = self.data.pop(order_prefix + oid, {})
                coid_key = coid_prefix + order.get("client_order_id", "")
                if order.get("client_order_id") and self.data.get(coid_key) == oid:
                    del self.data[coid_key]
                del self.data[history][oid]
        self._drop_if_empty(history)

    def messages(self, channel: str, kind: str | None = None) -> list[dict]:
        return [m for c, m in self.published if c == channel and kind in (None, m.get("type"))]


class Exchange:
    """One BTC-PERP MatchingCore whose commands and events feed a Projection and a FakeRedis:
    a PlaceOrder goes through ``orders.requests`` first (unless told otherwise), then each
    ``send`` is one matcher batch, flushed into Redis."""

    def __init__(self, projection: Projection | None = None) -> None:
        self.core = MatchingCore(SPEC)
        self.projection = projection or Projection(TOPICS, SPECS)
        self.redis = FakeRedis()
        self.next_offset: dict[tuple[str, int], int] = defaultdict(int)
        self.command_offset = 0
        self.inputs: list[Input] = []

    def record(self, topic: str, message: Message | None, partition: int = 0) -> Input:
        key = (topic, partition)
        item = Input(topic, partition, self.next_offset[key], message)
        self.next_offset[key] += 1
        self.inputs.append(item)
        self.projection.apply(item)
        return item

    def request(self, command: PlaceOrder) -> Input:
        return self.record(TOPICS.requests, command, command.user_id % 2)

    def matcher_batch(self, *commands) -> list:
        batch = [(self.command_offset + i, c) for i, c in enumerate(commands)]
        self.command_offset += len(commands)
        events = self.core.process_batch(batch)
        for event in events:
            self.record(TOPICS.matcher_events, event)
        return events

    def send(self, *commands, requests: bool = True) -> list:
        """Apply ``commands`` as one matcher batch (their requests first) and flush."""
        if requests:
            for command in commands:
                if isinstance(command, PlaceOrder):
                    self.request(command)
        events = self.matcher_batch(*commands)
        self.flush()
        return events

    def flush(self) -> None:
        self.redis.run(self.projection.flush())

    def order(self, order_id: int) -> dict[str, str]:
        return self.redis.data[keys.order_key(order_id)]

    def status(self, order_id: int) -> tuple[str, str, str]:
        fields = self.order(order_id)
        return fields["status"], fields["filled"], fields["reason"]

    def open_ids(self, user: int) -> set[int]:
        return {int(i) for i in self.redis.data.get(keys.open_orders_key(user), set())}

    def book(self) -> tuple[list, list, int]:
        fields = self.redis.data.get(keys.book_key(SYMBOL), {})
        return (
            json.loads(fields.get("bids", "[]")),
            json.loads(fields.get("asks", "[]")),
            int(fields.get("update_id", 0)),
        )

    def core_book(self) -> tuple[list, list]:
        _, bids, asks = self.core.depth(10_000)
        return [list(level) for level in bids], [list(level) for level in asks]


def restore_from(redis: FakeRedis) -> Projection:
    """Rebuild a projection from the fake's keys, as the projector does from Redis."""
    held = redis.data.get(keys.HELD_KEY, {})
    orders = [
        Order.from_fields(redis.data[keys.order_key(int(i))], f == "1") for i, f in held.items()
    ]
    book = redis.data.get(keys.book_key(SYMBOL), {})
    update_ids = {SYMBOL: int(book["update_id"])} if book else {}
    offsets = {
        keys.parse_offsets_field(name): int(value)
        for name, value in redis.data.get(keys.OFFSETS_KEY, {}).items()
    }
    candles: dict[str, dict[str, Candle]] = {}
    for interval in INTERVALS:
        newest = redis.newest(keys.candles_key(SYMBOL, interval))
        if newest is not None:
            candles.setdefault(SYMBOL, {})[interval] = Candle.from_member(newest)
    trades = redis.data.get(keys.trades_key(SYMBOL))
    clock = {SYMBOL: json.loads(trades[0])["ts"]} if trades else {}
    times = {
        keys.parse_record_time_field(name): int(value)
        for name, value in redis.data.get(keys.RECORD_TIMES_KEY, {}).items()
    }
    return Projection.restore(TOPICS, SPECS, offsets, orders, update_ids, candles, clock, times)


def cause(item: Input) -> Cause:
    """The cause an engine writes for a record it consumed (a logical topic name)."""
    return cause_of(item.topic, item.partition, item.offset, TOPICS.prefix)


# --- placing, accepting, resting -------------------------------------------------------------


def test_a_requested_order_is_pending_until_the_matcher_accepts_it():
    ex = Exchange()
    ex.request(place(1, 7, BUY, MID, 10, client_order_id="mine", ts=123))
    ex.flush()
    assert ex.status(1) == ("Pending", "0", "")
    assert ex.order(1)["ts"] == "123"
    assert ex.open_ids(7) == set()
    assert ex.redis.data[keys.all_orders_key(7)] == {"1": 1}
    assert ex.redis.data[keys.client_order_key(7, "mine")] == "1"
    assert [m["status"] for m in ex.redis.messages(keys.user_channel(7), "order")] == ["Pending"]

    ex.matcher_batch(place(1, 7, BUY, MID, 10, client_order_id="mine", ts=123))
    ex.flush()
    assert ex.status(1) == ("New", "0", "")
    assert ex.order(1)["ts"] == "123"
    assert ex.open_ids(7) == {1}
    assert ex.book() == ([[MID, 10]], [], 1)


def test_the_order_hash_has_every_field_of_the_schema():
    ex = Exchange()
    ex.send(place(1, 7, SELL, MID, 10, reduce_only=False, ts=5))
    assert ex.order(1) == {
        "order_id": "1",
        "user_id": "7",
        "symbol": SYMBOL,
        "side": "sell",
        "order_type": "limit",
        "tif": "GTC",
        "price": str(MID),
        "stop_price": "",
        "qty": "10",
        "filled": "0",
        "status": "New",
        "reason": "",
        "code": "",
        "msg": "",
        "reduce_only": "0",
        "client_order_id": "",
        "request_id": "r1",
        "ts": "5",
        "triggered": "0",
    }
    order_message = ex.redis.messages(keys.user_channel(7), "order")[-1]
    assert order_message == {"type": "order", **ex.order(1)}


# --- fills ------------------------------------------------------------------------------------


def test_a_maker_fully_filled_is_filled_and_leaves_the_book():
    ex = Exchange()
    ex.send(place(1, 1, SELL, MID, 10))
    ex.send(place(2, 2, BUY, MID + 5, 10))
    assert ex.status(1) == ("Filled", "10", "")
    assert ex.status(2) == ("Filled", "10", "")
    assert ex.open_ids(1) == ex.open_ids(2) == set()
    assert ex.book() == ([], [], 2)
    assert ex.redis.messages(keys.depth_channel(SYMBOL))[-1]["asks"] == [[MID, 0]]
    assert keys.HELD_KEY not in ex.redis.data


def test_a_partial_fill_leaves_the_maker_partially_filled_with_its_rest_in_the_book():
    ex = Exchange()
    ex.send(place(1, 1, SELL, MID, 10))
    ex.send(place(2, 2, BUY, MID, 4))
    assert ex.status(1) == ("PartiallyFilled", "4", "")
    assert ex.status(2) == ("Filled", "4", "")
    assert ex.open_ids(1) == {1}
    assert ex.book()[:2] == ([], [[MID, 6]])


def test_a_trade_is_listed_and_each_side_gets_its_fill_with_the_wallets_fee():
    ex = Exchange()
    ex.send(place(1, 1, SELL, MID, 10))
    ex.send(place(2, 2, BUY, MID, 4, ts=NOW_MS * 1_000_000 + 999_999))
    trade = {"trade_id": 1, "price": MID, "qty": 4, "taker_side": "buy", "ts": NOW_MS}
    assert [json.loads(t) for t in ex.redis.data[keys.trades_key(SYMBOL)]] == [trade]
    assert ex.redis.messages(keys.trades_channel(SYMBOL)) == [trade]
    notional = SPEC.notional(MID, 4)
    taker = json.loads(ex.redis.data[keys.fills_key(2)][0])
    maker = json.loads(ex.redis.data[keys.fills_key(1)][0])
    assert taker == {
        "trade_id": 1,
        "order_id": 2,
        "symbol": SYMBOL,
        "side": "buy",
        "price": MID,
        "qty": 4,
        "maker": False,
        "fee": SPEC.fee(notional, maker=False),
        "liquidation": False,
        "ts": NOW_MS,
    }
    assert maker["side"] == "sell" and maker["maker"] is True
    assert maker["fee"] == SPEC.fee(notional, maker=True)
    assert ex.redis.messages(keys.user_channel(2), "fill") == [{"type": "fill", **taker}]


def test_trades_and_fills_lists_keep_the_newest_500():
    ex = Exchange()
    ex.send(place(1, 1, SELL, MID, 1800))
    for first in range(2, 602, 200):
        ex.send(*[place(oid, 2, BUY, MID, 3) for oid in range(first, first + 200)])
    trades = ex.redis.data[keys.trades_key(SYMBOL)]
    assert len(trades) == keys.TRADES_KEPT
    assert json.loads(trades[0])["trade_id"] == 600
    assert len(ex.redis.data[keys.fills_key(1)]) == keys.FILLS_KEPT


# --- time in force and rule-based expiries ----------------------------------------------------


def test_an_ioc_order_that_partly_fills_is_expired_with_its_fill():
    ex = Exchange()
    ex.send(place(1, 1, SELL, MID, 4))
    ex.send(place(2, 2, BUY, MID, 10, tif=TimeInForce.IOC))
    assert ex.status(2) == ("Expired", "4", "ioc")
    assert ex.order(2)["qty"] == "10"
    assert ex.book()[:2] == ([], [])


def test_a_market_order_that_runs_out_of_book_is_expired_with_what_it_filled():
    ex = Exchange()
    ex.send(place(1, 1, SELL, MID, 4))
    ex.send(place(2, 2, BUY, None, 10))
    assert ex.status(2) == ("Expired", "4", "no_liquidity")
    ex.send(place(3, 2, BUY, None, 10))
    assert ex.status(3) == ("Expired", "0", "no_liquidity")


def test_a_fok_order_that_cannot_fill_whole_is_expired_and_the_book_is_untouched():
    ex = Exchange()
    ex.send(place(1, 1, SELL, MID, 4))
    published = len(ex.redis.messages(keys.depth_channel(SYMBOL)))
    ex.send(place(2, 2, BUY, MID, 10, tif=TimeInForce.FOK))
    assert ex.status(2) == ("Expired", "0", "fok")
    assert ex.status(1) == ("New", "0", "")
    assert len(ex.redis.messages(keys.depth_channel(SYMBOL))) == published  # nothing changed


def test_a_post_only_order_that_would_take_is_expired_with_reason_post_only():
    ex = Exchange()
    ex.send(place(1, 1, SELL, MID, 4))
    ex.send(place(2, 2, BUY, MID, 4, tif=TimeInForce.GTX))
    assert ex.status(2) == ("Expired", "0", "post_only")
    assert ex.book()[:2] == ([], [[MID, 4]])


def test_self_trade_prevention_expires_the_maker_the_taker_or_both():
    ex = Exchange()
    ex.send(place(1, 1, SELL, MID, 4), place(2, 1, SELL, MID + 1, 4), place(3, 2, SELL, MID + 2, 4))
    ex.send(place(4, 1, BUY, MID + 2, 6, stp=SelfTradePrevention.EXPIRE_MAKER))
    assert ex.status(1)[:2] == ex.status(2)[:2] == ("Expired", "0")
    assert ex.status(1)[2] == "stp"
    assert ex.status(3) == ("Filled", "4", "")
    assert ex.status(4) == ("PartiallyFilled", "4", "")

    ex = Exchange()
    ex.send(place(1, 1, SELL, MID, 4))
    ex.send(place(2, 1, BUY, MID, 4, stp=SelfTradePrevention.EXPIRE_TAKER))
    assert ex.status(2) == ("Expired", "0", "stp")
    assert ex.status(1) == ("New", "0", "")
    assert ex.book()[:2] == ([], [[MID, 4]])

    ex.send(place(3, 1, BUY, MID, 4, stp=SelfTradePrevention.EXPIRE_BOTH))
    assert ex.status(1) == ("Expired", "0", "stp")
    assert ex.status(3) == ("Expired", "0", "stp")
    assert ex.book()[:2] == ([], [])
    assert ex.book()[:2] == ex.core_book()


def test_a_resting_reduce_only_order_expires_when_its_position_is_gone():
    ex = Exchange()
    ex.send(place(1, 2, SELL, MID, 10))
    ex.send(place(2, 1, BUY, MID, 10))  # user 1 is long 10
    ex.send(place(3, 1, SELL, MID + 50, 10, reduce_only=True))
    assert ex.status(3) == ("New", "0", "")
    assert ex.order(3)["reduce_only"] == "1"
    ex.send(place(4, 3, BUY, MID - 10, 10))
    ex.send(place(5, 1, SELL, None, 10))  # closes the position at MID - 10
    assert ex.status(5) == ("Filled", "10", "")
    assert ex.status(3) == ("Expired", "0", "reduce_only")
    assert ex.book()[:2] == ex.core_book() == ([], [])


def test_a_reduce_only_taker_fills_up_to_its_position_and_expires_the_rest():
    ex = Exchange()
    ex.send(place(1, 2, SELL, MID, 4))
    ex.send(place(2, 1, BUY, MID, 4))  # user 1 is long 4
    ex.send(place(3, 3, BUY, MID, 10))
    ex.send(place(4, 1, SELL, MID, 10, tif=TimeInForce.IOC, reduce_only=True))
    assert ex.status(4) == ("Expired", "4", "reduce_only")
    assert ex.status(3) == ("PartiallyFilled", "4", "")


# --- cancel, cancel-all, amend -----------------------------------------------------------------


def test_cancel_and_cancel_all_end_orders_with_their_reason_including_waiting_stops():
    ex = Exchange()
    ex.send(place(1, 1, BUY, MID - 5, 4), place(2, 1, BUY, MID - 6, 4), place(3, 1, SELL, MID, 4))
    ex.send(place(4, 2, BUY, MID, 2))  # last trade MID
    stop = place(5, 1, BUY, MID + 20, 4, kind=OrderType.STOP_LIMIT, stop_price=MID + 10)
    ex.send(stop)
    assert ex.status(5) == ("New", "0", "")
    assert ex.open_ids(1) == {1, 2, 3, 5}
    ex.send(cancel(1, 1))
    assert ex.status(1) == ("Cancelled", "0", "user")
    ex.send(cancel_all(1))
    assert ex.status(2) == ("Cancelled", "0", "cancel_all")
    assert ex.status(3) == ("Cancelled", "2", "cancel_all")
    assert ex.status(5) == ("Cancelled", "0", "cancel_all")
    assert ex.open_ids(1) == set()
    assert ex.book()[:2] == ([], [])


def test_an_amend_that_shrinks_in_place_keeps_the_order_and_lowers_the_level():
    ex = Exchange()
    ex.send(place(1, 1, BUY, MID, 10))
    ex.send(amend(1, 1, qty=6))
    assert ex.status(1) == ("New", "0", "")
    assert ex.order(1)["qty"] == "6"
    assert ex.book()[:2] == ([[MID, 6]], [])


def test_an_amend_that_loses_priority_and_crosses_fills_as_a_taker():
    ex = Exchange()
    ex.send(place(1, 1, SELL, MID + 10, 4), place(2, 2, BUY, MID, 10))
    ex.send(amend(2, 2, price=MID + 10))
    assert ex.status(1) == ("Filled", "4", "")
    assert ex.status(2) == ("PartiallyFilled", "4", "")
    assert ex.order(2)["price"] == str(MID + 10)
    assert ex.book()[:2] == ([[MID + 10, 6]], [])
    assert ex.book()[:2] == ex.core_book()


def test_a_refused_cancel_of_a_pending_order_does_not_touch_it():
    ex = Exchange()
    # the cancel is ahead of its place in the log: it meets no order (-2011) and is refused
    ex.send(cancel(1, 1), place(1, 1, BUY, MID, 4))
    assert ex.status(1) == ("New", "0", "")


# --- stops and liquidations --------------------------------------------------------------------


def test_a_stop_limit_waits_outside_the_book_then_rests_once_triggered():
    ex = Exchange()
    ex.send(place(1, 2, SELL, MID, 2), place(2, 3, BUY, MID, 2))  # last trade MID
    stop = place(3, 1, SELL, MID - 20, 4, kind=OrderType.STOP_LIMIT, stop_price=MID - 10)
    ex.send(stop)
    assert ex.status(3) == ("New", "0", "")
    assert ex.order(3)["triggered"] == "0"
    assert ex.book()[:2] == ([], [])
    ex.send(place(4, 4, BUY, MID - 10, 3), place(5, 5, SELL, MID - 10, 3))  # trades at MID - 10
    assert ex.order(3)["triggered"] == "1"
    assert ex.status(3) == ("New", "0", "")
    assert ex.book()[:2] == ([], [[MID - 20, 4]]) == ex.core_book()


def test_a_triggered_stop_market_takes_liquidity_and_is_filled():
    ex = Exchange()
    ex.send(place(1, 2, SELL, MID, 2), place(2, 3, BUY, MID, 2))
    ex.send(place(3, 9, BUY, MID - 50, 10))
    ex.send(place(4, 1, SELL, None, 4, kind=OrderType.STOP_MARKET, stop_price=MID - 10))
    ex.send(place(5, 4, BUY, MID - 10, 3), place(6, 5, SELL, MID - 10, 3))
    assert ex.status(4) == ("Filled", "4", "")
    assert ex.order(4)["triggered"] == "1"
    assert ex.book()[:2] == ([[MID - 50, 6]], []) == ex.core_book()


def test_a_trailing_stop_on_mark_fires_and_fills():
    ex = Exchange()
    ex.send(place(1, 9, BUY, MID - 100, 10))
    trail = place(
        2,
        1,
        SELL,
        None,
        4,
        kind=OrderType.TRAILING_STOP,
        callback_rate=1_000_000,
        trigger_by=TriggerBy.MARK,
    )
    ex.send(mark(MID), trail)
    assert ex.status(2) == ("New", "0", "")
    ex.send(mark(MID * 98 // 100))
    assert ex.status(2) == ("Filled", "4", "")


def test_a_liquidation_order_has_a_record_from_its_acceptance_alone():
    ex = Exchange()
    ex.send(place(8, 6, SELL, MID + 100, 10), place(9, 5, BUY, MID + 100, 10))  # 5 long 10
    ex.send(place(1, 2, BUY, MID, 3))
    ex.send(liquidation(LIQUIDATION_ID, 5, SELL, MID - 100, 10))
    fields = ex.order(LIQUIDATION_ID)
    assert (fields["status"], fields["filled"], fields["reason"]) == ("Expired", "3", "ioc")
    assert (fields["user_id"], fields["order_type"], fields["side"]) == ("5", "liquidation", "sell")
    assert json.loads(ex.redis.data[keys.fills_key(5)][0])["liquidation"] is True
    assert LIQUIDATION_ID not in ex.projection.orders  # no request will come for it
    assert str(LIQUIDATION_ID) in ex.redis.data[keys.all_orders_key(5)]


# --- rejections --------------------------------------------------------------------------------


def test_a_matcher_rejection_of_a_placement_is_rejected_with_code_and_msg():
    ex = Exchange()
    ex.send(place(1, 1, BUY, MID, 1))  # below min notional
    fields = ex.order(1)
    assert fields["status"] == "Rejected"
    assert fields["code"] == "-4164"
    assert fields["msg"].startswith("Order's notional")
    assert ex.open_ids(1) == set()


def test_a_wallet_rejection_rejects_the_pending_order_it_refuses():
    ex = Exchange()
    request = ex.request(place(1, 1, BUY, MID, 10))
    ex.record(
        TOPICS.wallet_events,
        OrderRequestRejected(
            seq=1,
            cause=cause(request),
            request_id="r1",
            user_id=1,
            order_id=1,
            code=-2019,
            msg="Margin is insufficient.",
        ),
    )
    ex.flush()
    assert ex.status(1) == ("Rejected", "0", "")
    assert (ex.order(1)["code"], ex.order(1)["msg"]) == ("-2019", "Margin is insufficient.")
    assert 1 not in ex.projection.orders


def test_a_wallet_rejection_read_before_its_request_waits_for_it():
    ex = Exchange()
    rejection = OrderRequestRejected(
        seq=1,
        cause=Cause("orders.requests", 1, 0),
        request_id="r1",
        user_id=1,
        order_id=1,
        code=-2019,
        msg="Margin is insufficient.",
    )
    ex.record(TOPICS.wallet_events, rejection)
    ex.record(
        TOPICS.wallet_events,
        AccountUpdated(seq=2, cause=Cause("x", 0, 0), user_id=1, balance=5, holds=0, available=5),
    )
    ex.flush()
    assert keys.order_key(1) not in ex.redis.data
    assert ex.redis.messages(keys.user_channel(1)) == []  # the account update waits in line
    assert (TOPICS.wallet_events, 0) not in ex.projection.offsets
    assert ex.projection.waiting() == {(TOPICS.wallet_events, 0): 2}
    ex.request(place(1, 1, BUY, MID, 10))
    ex.flush()
    assert ex.status(1) == ("Rejected", "0", "")
    assert [m["type"] for m in ex.redis.messages(keys.user_channel(1))] == [
        "order",
        "order",
        "account",
    ]
    assert ex.projection.offsets[(TOPICS.wallet_events, 0)] == 2
    assert ex.projection.waiting() == {}


def test_an_account_update_caused_by_a_fill_is_published_after_the_fill():
    ex = Exchange()
    ex.send(place(1, 1, SELL, MID, 10))
    events = ex.core.process_batch([(1, place(2, 2, BUY, MID, 4))])
    first = ex.next_offset[(TOPICS.matcher_events, 0)]
    fill = Cause("matcher.events", 0, first + 2)  # accepted, filled, batch completed
    ex.record(
        TOPICS.wallet_events,
        AccountUpdated(seq=1, cause=fill, user_id=2, balance=5, holds=0, available=5),
    )
    ex.record(
        TOPICS.positions_events,
        PositionChanged(
            seq=1,
            cause=fill,
            user_id=2,
            symbol=SYMBOL,
            trade_id=1,
            size=4,
            entry_notional=1,
            realised_pnl=0,
            fee=1,
        ),
    )
    for event in events:
        ex.record(TOPICS.matcher_events, event)
    ex.flush()
    kinds = [m["type"] for m in ex.redis.messages(keys.user_channel(2))]
    assert kinds == ["order", "fill", "order", "account", "position"]


def test_under_a_topic_prefix_a_position_event_waits_until_its_fill_is_applied():
    # The engines name a cause by its logical topic (libs.topics.cause_of), while the
    # projector reads the prefixed topics: the position event must still wait.
    ex = Exchange()
    assert TOPICS.prefix and TOPICS.matcher_events != "matcher.events"
    ex.send(place(1, 1, SELL, MID, 10))
    events = ex.core.process_batch([(1, place(2, 2, BUY, MID, 4))])
    fill_offset = ex.next_offset[(TOPICS.matcher_events, 0)] + 1  # accepted, filled, completed
    assert isinstance(events[1], OrderFilled)
    changed = PositionChanged(
        seq=1,
        cause=cause_of(TOPICS.matcher_events, 0, fill_offset, TOPICS.prefix),
        user_id=2,
        symbol=SYMBOL,
        trade_id=events[1].trade_id,
        size=4,
        entry_notional=1,
        realised_pnl=0,
        fee=1,
    )
    assert changed.cause.topic == "matcher.events"
    ex.record(TOPICS.positions_events, changed)
    ex.flush()
    assert ex.redis.messages(keys.user_channel(2)) == []
    assert ex.projection.waiting() == {(TOPICS.positions_events, 0): 1}
    assert (TOPICS.positions_events, 0) not in ex.projection.offsets
    for event in events:
        ex.record(TOPICS.matcher_events, event)
    ex.flush()
    kinds = [m["type"] for m in ex.redis.messages(keys.user_channel(2))]
    assert kinds == ["order", "fill", "order", "position"]
    assert ex.projection.waiting() == {}
    assert ex.projection.offsets[(TOPICS.positions_events, 0)] == 1


def test_a_wallet_rejection_of_an_amend_leaves_the_open_order_alone():
    ex = Exchange()
    ex.send(place(1, 1, BUY, MID, 10))
    amend_request = ex.record(TOPICS.requests, amend(1, 1, qty=20), partition=1)
    ex.record(
        TOPICS.wallet_events,
        OrderRequestRejected(
            seq=1,
            cause=cause(amend_request),
            request_id="a1",
            user_id=1,
            order_id=1,
            code=-2019,
            msg="Margin is insufficient.",
        ),
    )
    ex.flush()
    assert ex.status(1) == ("New", "0", "")


def test_a_duplicate_client_order_id_leaves_the_id_with_the_original_order():
    ex = Exchange()
    ex.send(place(1, 1, BUY, MID, 10, client_order_id="c"))
    ex.send(place(2, 1, BUY, MID, 10, client_order_id="c"))
    assert ex.order(2)["code"] == "-4015"
    assert ex.redis.data[keys.client_order_key(1, "c")] == "1"


# --- topics read in any order ------------------------------------------------------------------


def test_matcher_events_before_the_request_never_turn_the_order_back_to_pending():
    ex = Exchange()
    ex.send(place(1, 1, SELL, MID, 10))
    late = place(2, 2, BUY, MID, 10, ts=99)
    ex.send(late, requests=False)
    assert ex.status(2) == ("Filled", "10", "")
    assert 2 in ex.projection.orders  # held until its request adds the request's ts
    ex.request(late)
    ex.flush()
    assert ex.status(2) == ("Filled", "10", "")
    assert ex.order(2)["ts"] == "99"
    assert 2 not in ex.projection.orders
    assert keys.HELD_KEY not in ex.redis.data


def test_a_placement_rejected_before_its_request_gets_its_terms_from_the_request():
    ex = Exchange()
    tiny = place(1, 1, BUY, MID, 1, ts=5)
    ex.send(tiny, requests=False)
    assert ex.status(1)[0] == "Rejected"
    assert ex.order(1)["side"] == ""
    ex.request(tiny)
    ex.flush()
    fields = ex.order(1)
    assert (fields["status"], fields["side"], fields["qty"], fields["ts"]) == (
        "Rejected",
        "buy",
        "1",
        "5",
    )
    assert ex.projection.orders == {}


def test_a_refused_cancel_of_an_unknown_order_creates_nothing():
    ex = Exchange()
    ex.send(cancel(42, 1))
    assert keys.order_key(42) not in ex.redis.data


# --- the book and its depth messages ----------------------------------------------------------


def test_depth_messages_count_by_one_and_a_crossing_taker_never_shows_a_crossed_book():
    ex = Exchange()
    ex.send(place(1, 1, SELL, MID, 4), place(2, 1, SELL, MID + 1, 4))
    ex.send(place(3, 2, BUY, MID + 1, 10))  # sweeps both and rests 2 at MID + 1
    messages = ex.redis.messages(keys.depth_channel(SYMBOL))
    assert [m["update_id"] for m in messages] == [1, 2]
    assert all(m["first_update_id"] == m["update_id"] for m in messages)
    assert messages[1]["bids"] == [[MID + 1, 2]]
    assert messages[1]["asks"] == [[MID, 0], [MID + 1, 0]]
    assert ex.book() == ([[MID + 1, 2]], [], 2)


def test_a_batch_that_changes_no_level_publishes_no_depth_message():
    ex = Exchange()
    ex.send(place(1, 1, SELL, MID, 4))
    ex.send(place(2, 2, BUY, MID, 4, tif=TimeInForce.GTX))  # expired post-only
    ex.send(mark(MID))
    assert len(ex.redis.messages(keys.depth_channel(SYMBOL))) == 1


def test_a_partial_batch_is_not_applied_and_its_offset_not_covered():
    ex = Exchange()
    events = ex.core.process_batch([(0, place(1, 1, BUY, MID, 4))])
    for event in events[:-1]:
        ex.record(TOPICS.matcher_events, event)
    ex.flush()
    assert keys.order_key(1) not in ex.redis.data
    assert keys.OFFSETS_KEY not in ex.redis.data
    ex.record(TOPICS.matcher_events, events[-1])
    ex.flush()
    assert ex.status(1) == ("New", "0", "")
    assert ex.redis.data[keys.OFFSETS_KEY] == {f"{TOPICS.matcher_events}:0": str(len(events))}


def test_a_malformed_record_is_skipped_and_its_offset_passed():
    ex = Exchange()
    ex.record(TOPICS.positions_events, None, partition=3)
    ex.flush()
    assert ex.redis.data[keys.OFFSETS_KEY] == {f"{TOPICS.positions_events}:3": "1"}


# --- other engines' events ----------------------------------------------------------------------


def test_wallet_and_position_events_become_user_and_mark_messages():
    ex = Exchange()
    origin = Cause("index.prices", 0, 0)  # not read by the projector: nothing to wait for
    for topic, event in [
        (
            TOPICS.wallet_events,
            AccountUpdated(seq=1, cause=origin, user_id=3, balance=10, holds=4, available=6),
        ),
        (
            TOPICS.positions_events,
            PositionChanged(
                seq=1,
                cause=origin,
                user_id=3,
                symbol=SYMBOL,
                trade_id=1,
                size=-2,
                entry_notional=50,
                realised_pnl=7,
                fee=1,
            ),
        ),
        (
            TOPICS.positions_events,
            FundingPaid(
                seq=2, cause=origin, user_id=3, symbol=SYMBOL, amount=-5, rate=100, funding_time=9
            ),
        ),
        (
            TOPICS.positions_events,
            LiquidationTriggered(
                seq=3,
                cause=origin,
                user_id=3,
                symbol=SYMBOL,
                size=-2,
                bankruptcy_price=11,
                mark_price=10,
            ),
        ),
        (
            TOPICS.positions_events,
            LiquidationSettled(seq=4, cause=origin, user_id=3, symbol=SYMBOL, insurance_delta=-1),
        ),
        (
            TOPICS.positions_events,
            AutoDeleveraged(
                seq=5,
                cause=origin,
                user_id=3,
                symbol=SYMBOL,
                qty=1,
                price=12,
                counterparty_user_id=4,
            ),
        ),
        (
            TOPICS.positions_events,
            MarkPriceUpdated(
                seq=6, cause=origin, symbol=SYMBOL, mark_price=MID, index_price=MID - 1, ts=77
            ),
        ),
        (
            TOPICS.positions_events,
            FundingRateSet(seq=7, cause=origin, symbol=SYMBOL, rate=10, funding_time=88),
        ),
    ]:
        ex.record(topic, event)
    ex.flush()
    assert ex.redis.messages(keys.user_channel(3)) == [
        {"type": "account", "balance": 10, "holds": 4, "available": 6},
        {
            "type": "position",
            "symbol": SYMBOL,
            "size": -2,
            "entry_notional": 50,
            "realised_pnl": 7,
            "fee": 1,
        },
        {"type": "funding", "symbol": SYMBOL, "amount": -5, "rate": 100, "funding_time": 9},
        {
            "type": "liquidation",
            "event": "triggered",
            "symbol": SYMBOL,
            "size": -2,
            "bankruptcy_price": 11,
            "mark_price": 10,
        },
        {"type": "liquidation", "event": "settled", "symbol": SYMBOL, "insurance_delta": -1},
        {
            "type": "liquidation",
            "event": "adl",
            "symbol": SYMBOL,
            "qty": 1,
            "price": 12,
            "counterparty_user_id": 4,
        },
    ]
    assert ex.redis.messages(keys.mark_channel(SYMBOL)) == [
        {"type": "mark", "mark": MID, "index": MID - 1, "ts": 77},
        {"type": "funding", "rate": 10, "funding_time": 88},
    ]


# --- restart -----------------------------------------------------------------------------------


def test_a_projection_restored_from_its_redis_keys_continues_like_the_original():
    ex = Exchange()
    ex.send(place(1, 1, SELL, MID, 10), place(2, 1, SELL, MID + 3, 5))
    ex.send(place(3, 2, BUY, MID, 4), place(4, 2, BUY, MID - 2, 12))
    ex.send(place(5, 3, SELL, None, 4, kind=OrderType.STOP_MARKET, stop_price=MID - 1))
    ex.send(place(6, 4, SELL, MID, 3), requests=False)  # held until its request comes
    restored = restore_from(ex.redis)
    assert restored.digest() == ex.projection.digest()
    assert restored.books[SYMBOL].levels == ex.projection.books[SYMBOL].levels

    twin = Exchange(restored)
    twin.core, twin.redis = ex.core, ex.redis
    twin.next_offset, twin.command_offset = ex.next_offset, ex.command_offset
    twin.send(place(7, 5, SELL, MID - 2, 8))
    twin.request(place(6, 4, SELL, MID, 3))
    twin.flush()
    assert twin.status(5) == ("Filled", "4", "")
    assert (twin.order(6)["status"], twin.order(6)["ts"]) == ("New", "0")
    assert twin.book()[:2] == twin.core_book()
    for item in twin.inputs:  # the same inputs into the projection that never restarted
        ex.projection.apply(item)
    ex.projection.flush()
    assert ex.projection.digest() == twin.projection.digest()


def test_replaying_the_same_inputs_into_a_fresh_projection_gives_the_same_state():
    ex = Exchange()
    ex.send(place(1, 1, SELL, MID, 10))
    ex.send(place(2, 2, BUY, MID, 4), amend(1, 1, qty=8))
    ex.send(cancel_all(1))
    fresh = Projection(TOPICS, SPECS)
    for item in ex.inputs:
        fresh.apply(item)
    fresh.flush()
    assert fresh.digest() == ex.projection.digest()


def test_the_engines_events_become_the_account_position_and_market_pictures():
    """The projector is the read model's one writer: what the wallet and the position engine
    tell lands in their keys, with the watermarks read-your-writes waits on."""
    ex = Exchange()
    ex.send(place(1, 1, SELL, MID, 10))
    events = ex.core.process_batch([(1, place(2, 2, BUY, MID, 4))])
    for event in events:
        ex.record(TOPICS.matcher_events, event)
    fill = Cause("matcher.events", 0, ex.next_offset[(TOPICS.matcher_events, 0)] - 2)
    opened = PositionChanged(
        seq=1,
        cause=fill,
        user_id=2,
        symbol=SYMBOL,
        trade_id=1,
        size=4,
        entry_notional=40,
        realised_pnl=0,
        fee=1,
        fees=1,
    )
    position_offset = ex.record(TOPICS.positions_events, opened).offset
    settled = Cause("positions.events", 0, position_offset)
    told = AccountUpdated(
        seq=1, cause=fill, user_id=2, balance=50, holds=3, available=7, margin=40, upnl=0
    )
    ex.record(TOPICS.wallet_events, told)
    ex.record(
        TOPICS.wallet_events,
        AccountUpdated(
            seq=2,
            cause=settled,
            user_id=2,
            balance=49,
            holds=3,
            available=6,
            margin=40,
            upnl=0,
            origin=fill,
        ),
    )
    asked = SetLeverage(request_id="l", user_id=2, symbol=SYMBOL, leverage=5)
    request = ex.record(TOPICS.requests, asked, partition=1)
    ex.record(
        TOPICS.wallet_events,
        LeverageSet(
            seq=3,
            cause=Cause("orders.requests", 1, request.offset),
            request_id="l",
            user_id=2,
            symbol=SYMBOL,
            leverage=5,
        ),
    )
    ex.record(
        TOPICS.positions_events,
        MarkPriceUpdated(
            seq=2,
            cause=fill,
            symbol=SYMBOL,
            mark_price=MID + 1,
            index_price=MID,
            ts=9,
            next_funding_time=28_800 * 10**9,
        ),
    )
    ex.record(
        TOPICS.positions_events,
        FundingRateSet(seq=3, cause=fill, symbol=SYMBOL, rate=100, funding_time=0),
    )
    ex.flush()
    data = ex.redis.data
    after = str(fill.offset + 1)
    assert data[keys.account_key(2)] == {
        "balance": "49",
        "holds": "3",
        "available": "6",
        "margin": "40",
        "upnl": "0",
        keys.told_field("matcher.events", 0): after,
        keys.told_field("positions.events", 0): str(position_offset + 1),
        keys.settled_field("matcher.events", 0): after,
        keys.position_field("matcher.events", 0): after,
    }
    assert data[keys.leverage_key(2)] == {SYMBOL: "5"}
    assert PositionFacts.from_json(data[keys.positions_key(2)][SYMBOL]) == (4, 40, 1)
    assert data[keys.mark_key(SYMBOL)] == {
        "mark": str(MID + 1),
        "index": str(MID),
        "ts": "9",
        "open_interest": "0",
    }
    assert data[keys.funding_key(SYMBOL)] == {
        "next_funding_time": str(28_800 * 10**9),
        "rate": "100",
    }
    closed = msgspec.structs.replace(opened, seq=4, size=0, entry_notional=0, fees=0)
    ex.record(TOPICS.positions_events, closed)
    ex.flush()
    assert keys.positions_key(2) not in data  # no open position: no key
