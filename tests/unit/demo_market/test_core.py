"""The demo market's pure core: quote ladders from a price and the filters, position limits,
re-quoting, taker orders and the request budget."""

from __future__ import annotations

import random
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.demo_market.core import (
    BUY,
    SELL,
    LadderShape,
    Market,
    Quote,
    Resting,
    Room,
    TokenBucket,
    Verdict,
    backoff,
    ladder,
    market_of,
    parse_reference_prices,
    past_half,
    position_limit,
    quoted,
    reference_price,
    replacement,
    requote_reason,
    select_markets,
    side_budgets,
    signed_fill,
    taker_limit,
    taker_order,
    verdict,
)

BTC = Market("BTCUSDT", "BTC-PERP", Decimal("0.1"), Decimal("0.001"), 1, 1_000_000, Decimal(100))
SOL = Market("SOLUSDT", "SOL-PERP", Decimal("0.01"), Decimal("0.01"), 1, 10_000_000, Decimal(5))
SHAPE = LadderShape(levels=5, spread_bps=10, step_bps=5, level_notional=Decimal(200))


def exchange_info_entry() -> dict:
    return {
        "symbol": "ETHUSDT",
        "baseAsset": "ETH",
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": "0.01", "tickSize": "0.01"},
            {"filterType": "LOT_SIZE", "minQty": "0.001", "maxQty": "10000", "stepSize": "0.001"},
            {"filterType": "MIN_NOTIONAL", "notional": "20"},
        ],
    }


# --- markets and prices -------------------------------------------------------------------


def test_a_market_is_read_from_its_exchange_info_filters():
    market = market_of(exchange_info_entry())
    assert market == Market(
        "ETHUSDT", "ETH-PERP", Decimal("0.01"), Decimal("0.001"), 1, 10_000_000, Decimal(20)
    )


def test_prices_and_quantities_round_trip_on_the_grid():
    assert BTC.ticks(Decimal("60000.04")) == 600_000
    assert BTC.price_text(600_001) == "60000.1"
    assert BTC.qty_text(2) == "0.002"
    assert BTC.lots(Decimal("-0.005")) == -5


def test_an_order_clears_the_minimum_notional_with_headroom():
    # 100 USDT at 60000 is 1.67 lots; with 5% headroom 1.75: 2 lots (120 USDT)
    assert BTC.min_lots_at(600_000) == 2
    assert BTC.lots_for(Decimal(10), 600_000) == 2
    assert BTC.lots_for(Decimal(300), 600_000) == 5


def test_markets_are_chosen_by_either_name_and_an_unknown_one_is_an_error():
    both = [BTC, SOL]
    assert select_markets(both, "") == both
    assert select_markets(both, "SOL-PERP, btcusdt") == [SOL, BTC]
    with pytest.raises(ValueError, match="DOGE"):
        select_markets(both, "DOGE-PERP")


def test_the_reference_is_the_first_positive_price():
    assert reference_price(Decimal(0), Decimal("101.5"), Decimal(99)) == Decimal("101.5")
    assert reference_price(None, Decimal(0), Decimal(0), Decimal(150)) == Decimal(150)
    assert reference_price(Decimal(0), None) is None


def test_reference_prices_are_symbol_equals_price_pairs():
    assert parse_reference_prices("BTC-PERP=60000, sol-perp=150") == {
        "BTC-PERP": Decimal(60000),
        "SOL-PERP": Decimal(150),
    }
    with pytest.raises(ValueError):
        parse_reference_prices("BTC-PERP")


def test_the_position_limit_is_the_notional_at_the_price_rounded_down():
    assert position_limit(BTC, Decimal(5000), 600_000) == 83  # 0.083 BTC = 4980 USDT


# --- the maker ----------------------------------------------------------------------------


def test_a_flat_maker_quotes_five_levels_a_side_around_the_price():
    quotes = ladder(BTC, 600_000, 0, 1000, SHAPE)
    bids = [q for q in quotes if q.side == BUY]
    asks = [q for q in quotes if q.side == SELL]
    assert [q.ticks for q in bids] == [599_400, 599_100, 598_800, 598_500, 598_200]
    assert [q.ticks for q in asks] == [600_600, 600_900, 601_200, 601_500, 601_800]
    assert all(q.lots == 4 for q in quotes)  # 200 USDT at ~60000: 3.33 lots, rounded up
    assert [q.side for q in quotes[:4]] == [BUY, SELL, BUY, SELL]  # inner levels first


def test_quotes_are_on_the_tick_and_above_the_minimums():
    for quote in ladder(SOL, 15_000, 0, 10_000, SHAPE):
        assert quote.lots >= SOL.min_lots_at(quote.ticks)
        assert SOL.notional(quote.ticks, quote.lots) >= SOL.min_notional


def test_a_long_maker_quotes_lower_and_keeps_both_sides_until_its_limit():
    flat = ladder(BTC, 600_000, 0, 100, SHAPE)
    long = ladder(BTC, 600_000, 40, 100, SHAPE)
    assert min(q.ticks for q in long if q.side == SELL) < min(
        q.ticks for q in flat if q.side == SELL
    )
    past_half = ladder(BTC, 600_000, 90, 100, SHAPE)  # 10 lots of room to buy
    assert {q.side for q in past_half} == {BUY, SELL}
    assert sum(q.lots for q in past_half if q.side == BUY) <= 10
    at_the_limit = ladder(BTC, 600_000, -100, 100, SHAPE)
    assert {q.side for q in at_the_limit} == {BUY}


def test_a_takers_limit_is_its_share_of_half_the_makers():
    assert taker_limit(600, 3) == 100
    assert taker_limit(600, 0) == 300
    assert taker_limit(5, 3) == 0  # too small a limit: the takers stay flat


@given(st.integers(0, 10**6), st.integers(0, 20))
def test_the_takers_together_never_reach_half_the_makers_limit(maker, takers):
    assert takers * taker_limit(maker, takers) * 2 <= maker


def test_a_side_rests_no_more_than_the_room_to_the_limit():
    quotes = ladder(BTC, 600_000, 14, 30, SHAPE)  # room to buy: 16 lots, 5 levels of 4 want 20
    assert [q.lots for q in quotes if q.side == BUY] == [4, 4, 4, 4]
    assert side_budgets(14, 30) == (16, 44)
    assert side_budgets(25, 50) == (25, 75)
    assert side_budgets(60, 50) == (0, 110)
    assert side_budgets(0, 0) == (0, 0)


def test_the_maker_requotes_on_a_move_past_the_threshold_on_fills_and_when_old():
    last = quoted(ladder(BTC, 600_000, 0, 1000, SHAPE), 600_000, 0, 1000, at=100.0)
    assert last.refill == 10  # half of the 20 lots a side
    args = dict(limit=1000, requote_bps=10, refresh_seconds=60)
    assert requote_reason(None, 600_000, 0, now=0, **args) == "start"
    assert requote_reason(last, 600_500, 0, now=101, **args) is None
    assert requote_reason(last, 600_700, 0, now=101, **args) == "price"
    assert requote_reason(last, 600_000, 10, now=101, **args) == "fills"
    assert requote_reason(last, 600_000, 500, now=101, **args) == "limit"
    assert requote_reason(last, 600_000, 0, now=160, **args) == "refresh"


# --- the takers ---------------------------------------------------------------------------


def test_a_taker_within_half_its_limit_sends_either_side_within_the_room():
    rng = random.Random(1)
    orders = [taker_order(rng, 0, 100, 10, 2, 600_000, 50) for _ in range(50)]
    assert {o.side for o in orders if o} == {BUY, SELL}
    assert {o.ticks is None for o in orders if o} == {True, False}  # market and IOC
    assert all(o is not None and o.lots == 10 and not o.reduce_only for o in orders)
    ioc = next(o for o in orders if o and o.ticks is not None and o.side == BUY)
    assert ioc.ticks == 603_000  # 50 bps through the price


def test_before_the_exchange_has_a_price_a_taker_sends_only_ioc_limits():
    rng = random.Random(4)
    orders = [taker_order(rng, 0, 100, 10, 2, 600_000, 50, market_orders=False) for _ in range(20)]
    assert all(o is not None and o.ticks is not None for o in orders)


def test_a_taker_past_half_its_limit_only_reduces_toward_flat():
    rng = random.Random(2)
    for _ in range(20):
        order = taker_order(rng, 60, 100, 10, 2, 600_000, 50)
        assert order is not None and order.side == SELL and order.reduce_only
        small = taker_order(rng, -55, 100, 80, 2, 600_000, 50)
        assert small is not None and small.side == BUY and small.lots == 55


def test_a_taker_with_no_room_for_the_smallest_order_sends_nothing():
    assert taker_order(random.Random(3), 0, 0, 10, 2, 600_000, 50) is None
    assert taker_order(random.Random(3), 0, 3, 10, 2, 600_000, 50) is not None
    assert taker_order(random.Random(3), 1, 3, 10, 5, 600_000, 50) is None


# --- no sequence of decisions passes the limit ----------------------------------------------

events = st.lists(
    st.one_of(
        st.tuples(st.just("requote"), st.integers(1, 2_000_000)),
        st.tuples(st.just("fill"), st.floats(0, 1), st.integers(0, 30)),
        st.tuples(st.just("take"), st.integers(0, 2**32), st.floats(0, 1)),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(
    limit=st.integers(0, 500),
    start=st.integers(-500, 500),
    size=st.integers(1, 200),
    seq=events,
)
def test_no_decision_sequence_lets_a_position_past_its_limit(limit, start, size, seq):
    """A maker's resting quotes filling in any order and any part, and a taker's orders
    filling in any part, never take a position that starts within the limit past it."""
    maker = max(-limit, min(limit, start))
    taker = maker
    resting: list[list] = []  # [side, lots left]
    for event in seq:
        if event[0] == "requote":  # cancel all, then quote anew from the position
            resting = [[q.side, q.lots] for q in ladder(SOL, event[1], maker, limit, SHAPE)]
        elif event[0] == "fill" and resting:
            order = resting[event[2] % len(resting)]
            lots = round(order[1] * event[1])
            order[1] -= lots
            maker += signed_fill(order[0], lots)
        elif event[0] == "take":
            order = taker_order(random.Random(event[1]), taker, limit, size, 1, 15_000, 50)
            if order is not None:
                lots = round(order.lots * event[2])
                if order.reduce_only:  # the exchange never lets it flip the position
                    lots = min(lots, abs(taker))
                taker += signed_fill(order.side, lots)
        assert abs(maker) <= limit and abs(taker) <= limit


# --- replacing quotes level by level ---------------------------------------------------------


def _resting(quotes, first_id=1):
    return [Resting(first_id + i, q.side, q.ticks, q.lots) for i, q in enumerate(quotes)]


def test_a_requote_replaces_one_level_at_a_time_so_both_sides_stay_on_the_book():
    old = _resting(ladder(SOL, 15_000, 0, 10_000, SHAPE))
    new = ladder(SOL, 15_100, 0, 10_000, SHAPE)
    steps = replacement(old, new, SELL)
    book = {r.order_id: r for r in old}
    for placed, step in enumerate(steps, start=1000):
        del book[step.cancel.order_id]
        assert {r.side for r in book.values()} == {BUY, SELL}  # one level in flux at most
        book[placed] = Resting(placed, step.place.side, step.place.ticks, step.place.lots)
    assert [s.cancel.side for s in steps[:5]] == [SELL] * 5  # the side the price moved toward
    assert [s.place for s in steps] == [q for q in new if q.side == SELL] + [
        q for q in new if q.side == BUY
    ]
    # nearest first on both sides: the lowest ask, the highest bid
    assert steps[0].cancel.ticks == min(r.ticks for r in old if r.side == SELL)
    assert steps[5].cancel.ticks == max(r.ticks for r in old if r.side == BUY)


def test_extra_old_orders_are_only_cancelled_and_extra_new_quotes_only_placed():
    old = _resting([Quote(BUY, 100, 5)] * 3)
    new = [Quote(SELL, 110, 5)]
    steps = replacement(old, new, BUY)
    assert [(s.cancel is not None, s.place is not None) for s in steps] == [
        (True, False),
        (True, False),
        (True, False),
        (False, True),
    ]


def test_what_rests_counts_against_the_room_until_a_cancel_gives_it_back():
    room = Room(0, 10, _resting([Quote(BUY, 100, 8)]))
    assert room.take(Quote(BUY, 101, 5), 1) == 2  # 10 of room, 8 resting
    assert room.take(Quote(BUY, 102, 5), 1) == 0
    room.cancelled(BUY, 8)
    assert room.take(Quote(BUY, 103, 5), 1) == 5
    assert room.take(Quote(BUY, 104, 5), 4) == 0  # 3 left: under the minimum
    assert room.take(Quote(SELL, 120, 5), 1) == 5  # the other side has its own room


@settings(max_examples=300, deadline=None)
@given(
    limit=st.integers(1, 400),
    start=st.integers(-400, 400),
    mids=st.lists(st.integers(10_000, 20_000), min_size=1, max_size=6),
    fills=st.lists(st.tuples(st.integers(0, 2**16), st.floats(0, 1)), max_size=200),
)
def test_no_fill_during_level_by_level_requotes_passes_the_limit(limit, start, mids, fills):
    """Re-quotes step by step from a position read after the book, with any part of any
    resting quote filling between any two steps: the position never passes the limit, and
    neither does the position plus what rests on a side."""
    position = max(-limit, min(limit, start))
    book: dict[int, Resting] = {}
    ids = iter(range(1, 10**9))
    fill = iter(fills)

    def some_fill() -> None:
        nonlocal position
        pick = next(fill, None)
        if pick is None or not book:
            return
        order = book[sorted(book)[pick[0] % len(book)]]
        lots = round(order.lots * pick[1])
        book[order.order_id] = Resting(order.order_id, order.side, order.ticks, order.lots - lots)
        position += lots if order.side == BUY else -lots

    def exposure() -> tuple[int, int]:
        buys = sum(r.lots for r in book.values() if r.side == BUY)
        sells = sum(r.lots for r in book.values() if r.side == SELL)
        return position + buys, -position + sells

    for mid in mids:
        resting = list(book.values())
        some_fill()  # between reading the book and reading the position: counted twice
        room = Room(position, limit, resting)
        for step in replacement(resting, ladder(SOL, mid, position, limit, SHAPE), BUY):
            some_fill()
            if step.cancel is not None:
                left = book.pop(step.cancel.order_id)
                room.cancelled(left.side, left.lots)
            if step.place is not None:
                lots = room.take(step.place, 1)
                if lots:
                    order_id = next(ids)
                    book[order_id] = Resting(order_id, step.place.side, step.place.ticks, lots)
            assert max(exposure()) <= limit
            assert abs(position) <= limit


@given(st.integers(-1000, 1000), st.integers(0, 1000))
def test_each_side_rests_the_room_to_the_limit_and_the_half_is_marked(position, limit):
    buy, sell = side_budgets(position, limit)
    assert buy == max(0, limit - position) and sell == max(0, limit + position)
    assert past_half(position, limit) == (2 * position >= limit, -2 * position >= limit)


# --- the request budget -------------------------------------------------------------------


def test_the_bucket_lets_a_burst_through_then_spaces_requests_at_the_rate():
    bucket = TokenBucket(rate=10, burst=3, now=0.0)
    waits = [bucket.reserve(0.0) for _ in range(5)]
    assert waits[:3] == [0.0, 0.0, 0.0]
    assert waits[3:] == pytest.approx([0.1, 0.2])
    assert bucket.reserve(10.0) == 0.0  # refilled, up to the burst


@settings(max_examples=200, deadline=None)
@given(
    rate=st.floats(0.5, 50),
    burst=st.integers(1, 20),
    gaps=st.lists(st.floats(0, 0.5), min_size=1, max_size=200),
    span=st.floats(0.01, 5),
)
def test_no_span_of_time_sees_more_than_burst_plus_rate_times_span(rate, burst, gaps, span):
    bucket = TokenBucket(rate, burst, now=0.0)
    now, sent = 0.0, []
    for gap in gaps:
        now += gap
        sent.append(now + bucket.reserve(now))
    sent.sort()
    for i, first in enumerate(sent):
        inside = sum(1 for t in sent[i:] if t <= first + span)
        assert inside <= burst + rate * span + 1e-6


def test_a_bad_bucket_is_refused():
    with pytest.raises(ValueError):
        TokenBucket(0, 1, 0.0)


# --- answers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (None, Verdict.RETRY),
        (200, Verdict.OK),
        (202, Verdict.RETRY),
        (429, Verdict.RETRY),
        (500, Verdict.RETRY),
        (503, Verdict.RETRY),
        (401, Verdict.AUTH),
        (400, Verdict.REFUSED),
        (404, Verdict.REFUSED),
        (409, Verdict.REFUSED),
    ],
)
def test_what_an_answer_means(status, expected):
    assert verdict(status) is expected


def test_backoff_doubles_up_to_a_cap():
    assert [backoff(n) for n in range(6)] == [0.25, 0.5, 1.0, 2.0, 4.0, 5.0]
    assert backoff(1000) == 5.0
