"""Candles, trade times and funding history in the read model: built from the matcher's batches
as a simple reference builds them, stamped with the log's time, kept as the keys' schema says,
and restored from Redis into the same state."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from libs.messages import BatchCompleted, Cause, FundingRateSet, OrderFilled, Side
from libs.read_model import keys
from libs.read_model.candles import INTERVALS, Candle
from services.projector.projection import Input, Projection
from tests.unit.matcher.kit import MID, SPEC, SYMBOL
from tests.unit.projector.test_projection import SPECS, TOPICS, FakeRedis, restore_from

T0_MS = 1_700_000_000_000
MS = 1_000_000  # ns


class Feed:
    """A projection fed with hand-made matcher batches of fills, flushed into a FakeRedis."""

    def __init__(self) -> None:
        self.projection = Projection(TOPICS, SPECS)
        self.redis = FakeRedis()
        self.offset = 0
        self.seq = 0
        self.trade_id = 0
        self.inputs: list[Input] = []

    def record(self, topic: str, message: object) -> None:
        item = Input(topic, 0, self.offset, message)  # type: ignore[arg-type]
        self.offset += 1
        self.inputs.append(item)
        self.projection.apply(item)

    def batch(self, ts: int, trades: list[tuple[int, int, bool]]) -> list[int]:
        """One matcher batch of ``trades`` (price, qty, taker buys) at ``ts`` (ns)."""
        self.seq += 1
        ids = []
        for price, qty, buy in trades:
            self.trade_id += 1
            ids.append(self.trade_id)
            self.record(TOPICS.matcher_events, fill(self.seq, self.trade_id, price, qty, buy))
        self.record(
            TOPICS.matcher_events,
            BatchCompleted(
                symbol=SYMBOL,
                seq=self.seq,
                cmd_offset=self.seq,
                first_offset=self.seq,
                size=1,
                ts=ts,
            ),
        )
        return ids

    def flush(self) -> None:
        self.redis.run(self.projection.flush())

    def candles(self, interval: str) -> dict[int, Candle]:
        members = self.redis.data.get(keys.candles_key(SYMBOL, interval), {})
        found = {score: Candle.from_member(m) for m, score in members.items()}
        assert all(c.open_time == t for t, c in found.items())
        return found


def fill(seq: int, trade_id: int, price: int, qty: int, buy: bool) -> OrderFilled:
    return OrderFilled(
        symbol=SYMBOL,
        seq=seq,
        cmd_offset=seq,
        trade_id=trade_id,
        price=price,
        qty=qty,
        taker_order_id=10_000 + trade_id,
        taker_user_id=1,
        taker_side=Side.BUY if buy else Side.SELL,
        taker_remaining=0,
        maker_order_id=20_000 + trade_id,
        maker_user_id=2,
        maker_remaining=0,
    )


def reference(batches: list) -> tuple[list[tuple[int, int, int, int, bool]], dict]:
    """Each trade with its time (ms), and the candles of every interval, built naively: a
    trade takes its batch's time, never before the previous trade's; a batch at 0 keeps it."""
    trades, clock, trade_id = [], 0, 0
    for ts, batch in batches:
        at = max(ts // MS, clock)
        for price, qty, buy in batch:
            trade_id += 1
            trades.append((trade_id, at, price, qty, buy))
            clock = at
    candles: dict[str, dict[int, Candle]] = {}
    for interval, length in INTERVALS.items():
        series = candles[interval] = {}
        starts = sorted({at - at % length for _, at, _, _, _ in trades})
        for start in starts:
            mine = [t for t in trades if start <= t[1] < start + length]
            prices = [t[2] for t in mine]
            volume = sum(t[3] for t in mine)
            quote = sum(SPEC.notional(t[2], t[3]) for t in mine)
            bought = [t for t in mine if t[4]]
            series[start] = Candle(
                start,
                prices[0],
                max(prices),
                min(prices),
                prices[-1],
                volume,
                quote,
                len(mine),
                sum(t[3] for t in bought),
                sum(SPEC.notional(t[2], t[3]) for t in bought),
                mine[0][0],
                mine[-1][0],
            )
    return trades, candles


TRADES = st.lists(
    st.tuples(st.integers(MID - 50, MID + 50), st.integers(1, 40), st.booleans()), max_size=4
)
TIMES = st.one_of(
    st.just(0), st.integers(T0_MS * MS, (T0_MS + 3 * 86_400_000) * MS)
)  # 0: a batch without a time; else anywhere in three days, back and forth
BATCHES = st.lists(st.tuples(TIMES, TRADES), min_size=1, max_size=30)


def run(batches: list, flushes: list[bool], restart_at: int | None = None) -> Feed:
    feed = Feed()
    for n, (ts, trades) in enumerate(batches):
        feed.batch(ts, trades)
        if flushes[n % len(flushes)] or n == restart_at:
            feed.flush()
        if n == restart_at:
            feed.projection = restore_from(feed.redis)
    feed.flush()
    return feed


@settings(max_examples=150, deadline=None)
@given(BATCHES, st.lists(st.booleans(), min_size=1, max_size=5))
def test_every_trade_lands_in_one_candle_per_interval_as_the_reference_builds_them(
    batches, flushes
):
    feed = run(batches, flushes)
    trades, expected = reference(batches)
    for interval in INTERVALS:
        built = feed.candles(interval)
        assert built == expected[interval], interval
        assert sum(c.count for c in built.values()) == len(trades)
    listed = [json.loads(t) for t in feed.redis.data.get(keys.trades_key(SYMBOL), [])]
    assert [(t["trade_id"], t["ts"]) for t in reversed(listed)] == [(i, at) for i, at, *_ in trades]


@settings(max_examples=100, deadline=None)
@given(BATCHES, st.lists(st.booleans(), min_size=1, max_size=5), st.integers(0, 29))
def test_a_projection_restored_from_redis_holds_the_same_candles_and_clock(
    batches, flushes, restart
):
    straight = run(batches, flushes)
    restarted = run(batches, flushes, restart_at=restart)
    assert restarted.projection.candles.latest == straight.projection.candles.latest
    assert restarted.projection.candles.clock == straight.projection.candles.clock
    assert restarted.projection.digest() == straight.projection.digest()
    assert restarted.redis.data == straight.redis.data


def test_restoring_right_after_a_flush_gives_the_same_digest():
    feed = Feed()
    feed.batch(T0_MS * MS, [(MID, 3, True), (MID + 2, 1, False)])
    feed.batch((T0_MS + 90_000) * MS, [(MID - 1, 2, True)])
    feed.flush()
    restored = restore_from(feed.redis)
    assert restored.digest() == feed.projection.digest()
    assert restored.candles.clock == {SYMBOL: T0_MS + 90_000}
    last = T0_MS + 90_000
    assert restored.candles.latest[SYMBOL]["1m"].open_time == last - last % 60_000


def test_trades_and_fills_take_the_batch_time_which_never_goes_back():
    feed = Feed()
    feed.batch((T0_MS + 5_000) * MS + 123, [(MID, 1, True)])
    feed.batch(T0_MS * MS, [(MID, 1, True)])  # an earlier time: keeps the last
    feed.batch(0, [(MID, 1, False)])  # no time: keeps the last
    feed.batch(0, [])
    feed.batch((T0_MS + 7_000) * MS, [(MID, 1, False)])
    feed.flush()
    trades = [json.loads(t) for t in feed.redis.data[keys.trades_key(SYMBOL)]]
    assert [t["ts"] for t in reversed(trades)] == [T0_MS + 5_000] * 3 + [T0_MS + 7_000]
    fills = [json.loads(f) for f in feed.redis.data[keys.fills_key(1)]]
    assert [f["ts"] for f in reversed(fills)] == [T0_MS + 5_000] * 3 + [T0_MS + 7_000]
    [minute] = feed.candles("1m").values()
    assert (minute.open_time, minute.count, minute.volume) == (T0_MS - T0_MS % 60_000, 4, 4)
    assert (minute.taker_buy_volume, minute.first_trade_id, minute.last_trade_id) == (2, 1, 4)


def test_each_series_keeps_its_newest_1500_candles():
    feed = Feed()
    for minute in range(keys.CANDLES_KEPT + 100):
        feed.batch((T0_MS + minute * 60_000) * MS, [(MID + minute % 7, 1, True)])
        if minute % 97 == 0:
            feed.flush()
    feed.flush()
    minutes = feed.candles("1m")
    assert len(minutes) == keys.CANDLES_KEPT
    assert min(minutes) == T0_MS - T0_MS % 60_000 + 100 * 60_000
    days = {(T0_MS + m * 60_000) // 86_400_000 for m in range(keys.CANDLES_KEPT + 100)}
    assert len(feed.candles("1d")) == len(days)  # fewer than kept: none dropped


def test_fundings_are_kept_by_time_with_their_mark_the_newest_1000():
    feed = Feed()
    origin = Cause("index.prices", 0, 0)  # not read here: applied at once
    hour = 3600 * 10**9
    for n in range(keys.FUNDING_RATES_KEPT + 3):
        feed.record(
            TOPICS.positions_events,
            FundingRateSet(
                seq=n + 1,
                cause=origin,
                symbol=SYMBOL,
                rate=n - 5,
                funding_time=(n + 1) * 8 * hour,
                mark_price=MID + n,
            ),
        )
    feed.flush()
    kept = feed.redis.data[keys.funding_rates_key(SYMBOL)]
    assert len(kept) == keys.FUNDING_RATES_KEPT
    newest = max(kept, key=kept.__getitem__)
    n = keys.FUNDING_RATES_KEPT + 2
    assert json.loads(newest) == {
        "funding_time": (n + 1) * 8 * hour,
        "rate": n - 5,
        "mark": MID + n,
    }
    assert kept[newest] == (n + 1) * 8 * hour // MS
