"""Marks from index ticks, premium samples, funding at the interval crossing."""

from __future__ import annotations

from libs.messages import FundingPaid, FundingRateSet, MarkPriceTick, MarkPriceUpdated
from tests.unit.positions.kit import NS, Feed, messages, ticks, usdt


def test_an_index_tick_becomes_a_mark_price_tick_for_the_matcher():
    feed = Feed(funding_interval_seconds=10)
    feed.accept(11, 7, "buy", "49990", "1")
    feed.accept(12, 8, "sell", "50010", "1")
    feed.fill(1, 2, "50000", "1")
    out = feed.index("49950", 1 * NS)
    (tick,) = messages(out, MarkPriceTick)
    # median(49950 (no rate yet), 49950 + MA(mid 50000 - 49950), last 50000) = 50000
    assert (tick.symbol, tick.mark_price, tick.ts) == ("BTC-PERP", ticks("50000"), 1 * NS)
    assert out[0].topic == "orders.commands" and out[0].partition == 0


def test_a_stale_last_trade_does_not_pin_the_mark_when_the_book_is_empty():
    feed = Feed()
    feed.fill(1, 2, "50000", "1")
    (tick,) = messages(feed.index("45000", 1), MarkPriceTick)
    assert tick.mark_price == ticks("45000")  # median(45000, 45000 (no mid), 50000)


def test_without_trades_the_mark_is_the_index():
    feed = Feed()
    (tick,) = messages(feed.index("50123.4", 5), MarkPriceTick)
    assert tick.mark_price == ticks("50123.4")


def test_the_echoed_mark_is_published_with_its_index():
    feed = Feed()
    feed.index("50000", 7)
    (update,) = messages(feed.mark("50001", 7), MarkPriceUpdated)
    assert (update.mark_price, update.index_price, update.ts) == (ticks("50001"), ticks("50000"), 7)


def test_funding_is_paid_when_a_mark_crosses_the_funding_time_with_the_weighted_premium():
    feed = Feed(funding_interval_seconds=10)
    feed.fill(1, 2, "50000", "1")  # long 1, short 1; last trade 50000
    feed.index("49950", 1 * NS)
    feed.mark("50000", 1 * NS)  # first mark: funding clock starts, next at 10 s
    feed.index("49975", 5 * NS)
    feed.mark("50000", 5 * NS)
    assert not messages(feed.out, FundingRateSet)
    feed.index("50000", 10 * NS)
    out = feed.mark("50000", 10 * NS)
    # samples: (50000-49950)/49950 = 0.100100%, (50000-49975)/49975 = 0.050025%
    # P = (1 * 100100 + 2 * 50025) / 3 = 66716; F = P + clamp(I - P) = 66716 - 50000
    (rate,) = messages(out, FundingRateSet)
    assert (rate.rate, rate.funding_time) == (16_716, 10 * NS)
    paid = {m.user_id: m.amount for m in messages(out, FundingPaid)}
    assert paid == {1: -usdt("8.358"), 2: usdt("8.358")}  # 50000 x 0.016716%
    assert sum(paid.values()) == 0


def test_each_interval_pays_once_and_with_no_samples_the_rate_is_the_interest_rate():
    feed = Feed(funding_interval_seconds=10)
    feed.fill(1, 2, "50000", "2")
    feed.mark("50000", 1 * NS)
    rates = []
    for second in (10, 12, 20, 21, 35):
        rates += messages(feed.mark("50000", second * NS), FundingRateSet)
    assert [(r.rate, r.funding_time // NS) for r in rates] == [
        (10_000, 10),
        (10_000, 20),
        (10_000, 30),
    ]
    paid = messages(feed.out, FundingPaid)
    assert {m.user_id: m.amount for m in paid[:2]} == {1: -usdt("10"), 2: usdt("10")}


def test_the_last_rate_drifts_the_first_mark_price_candidate():
    feed = Feed(funding_interval_seconds=10)
    feed.mark("50000", 1 * NS)
    feed.mark("50000", 10 * NS)  # rate 0.01%, next funding at 20 s
    # 5 s to funding of 10: price1 = 50000 * (1 + 0.0001 * 0.5) = 50002.5; no trades: the
    # other two are the index, so the median is the index
    (tick,) = messages(feed.index("50000", 15 * NS), MarkPriceTick)
    assert tick.mark_price == ticks("50000")


def test_a_mark_after_several_missed_funding_times_pays_each_of_them_once():
    feed = Feed(funding_interval_seconds=10)
    feed.fill(1, 2, "50000", "1")
    feed.index("49950", 1 * NS)
    feed.mark("50000", 1 * NS)  # the clock starts: next funding at 10 s
    feed.index("49950", 5 * NS)
    feed.mark("50000", 5 * NS)  # premium 0.100100% twice: rate 0.050100%
    out = feed.mark("51000", 35 * NS)  # nothing for 30 s: 10, 20 and 30 s were missed
    rates = [(r.funding_time // NS, r.rate) for r in messages(out, FundingRateSet)]
    # the first at the interval's premium; the others had no samples: the interest rate
    assert rates == [(10, 50_100), (20, 10_000), (30, 10_000)]
    paid = [(m.funding_time // NS, m.user_id, m.amount) for m in messages(out, FundingPaid)]
    # each at the mark that reached them, 51000: 25.551, then 5.1 twice
    assert paid == [
        (10, 1, -usdt("25.551")),
        (10, 2, usdt("25.551")),
        (20, 1, -usdt("5.1")),
        (20, 2, usdt("5.1")),
        (30, 1, -usdt("5.1")),
        (30, 2, usdt("5.1")),
    ]
    assert feed.core.markets["BTC-PERP"].next_funding == 40 * NS
    assert not messages(feed.mark("51000", 39 * NS), FundingRateSet)
