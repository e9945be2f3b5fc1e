"""Funding over a few short intervals, end to end on Kafka: exact amounts, netting to zero."""

from __future__ import annotations

import json

import pytest
import redis

from libs.messages import FundingPaid, FundingRateSet, MarkPriceUpdated, PositionChanged
from libs.money import parse_cash
from tests.integration.positions.conftest import NS, SPEC

USDT = parse_cash("1")


@pytest.mark.parametrize("matcher", ["pump", "service"])
def test_funding_is_paid_every_interval_with_the_exact_amounts(make_stack, matcher):
    stack = make_stack(matcher, funding_interval_seconds=2, basis_window=1, snapshot_every=5)
    stack.engine.start()
    for user in (1, 2, 3, 4):
        stack.balance(user, 100_000 * USDT)
    # user 1 long 1 BTC against shorts 2 (0.6) and 3 (0.4); user 4 quotes 49990 / 50010
    stack.order(1, 2, "sell", "50000", "0.6")
    stack.order(2, 3, "sell", "50000", "0.4")
    stack.order(3, 1, "buy", "50000", "1")
    stack.order(4, 4, "buy", "49990", "1")
    stack.order(5, 4, "sell", "50010", "1")
    stack.flush()
    stack.wait_for(lambda: len(stack.events(PositionChanged)) == 4, what="the fills")
    # index 50000 = mid: premium 0 (rate = the 0.01% interest); then an interval at 49900
    # (mid 100 above: premium 0.2004% -> rate 0.1504%); then 50000 again. The mark stays
    # 50000 throughout (median of index*(1+drift) <= 50000, index + basis = mid, last trade).
    prices = ["50000"] * 3 + ["49900"] * 4 + ["50000"] * 6
    for i, price in enumerate(prices):
        stack.index(price, (i + 1) * NS // 2)  # every half second, from 0.5 s to 6.5 s
    stack.flush()
    stack.wait_for(lambda: len(stack.events(FundingRateSet)) == 3, what="three funding times")
    state = stack.quiet()

    rates = [(e.funding_time // NS, e.rate) for e in stack.events(FundingRateSet)]
    assert rates == [(2, 10_000), (4, 150_400), (6, 10_000)]
    marks = {e.mark_price for e in stack.events(MarkPriceUpdated)}
    assert marks == {SPEC.price_to_ticks("50000")}
    paid: dict[tuple[int, int], int] = {}
    for e in stack.events(FundingPaid):
        paid[(e.funding_time // NS, e.user_id)] = e.amount
    cents = USDT // 100
    assert paid == {
        (2, 1): -500 * cents,
        (2, 2): 300 * cents,
        (2, 3): 200 * cents,
        (4, 1): -7520 * cents,
        (4, 2): 4512 * cents,
        (4, 3): 3008 * cents,
        (6, 1): -500 * cents,
        (6, 2): 300 * cents,
        (6, 3): 200 * cents,
    }
    for time_ in (2, 4, 6):
        assert sum(a for (t, _), a in paid.items() if t == time_) == 0

    # the rebuilt state is the live state; the read model shows it
    assert stack.engine.rebuild()["digest"] == state["digest"]
    client = redis.Redis.from_url(stack.redis_url)
    stack.wait_for(lambda: client.hget("positions:1", "BTC-PERP") is not None, what="redis")
    view = json.loads(client.hget("positions:1", "BTC-PERP"))
    assert view["size"] == SPEC.qty_to_lots("1")
    assert view["mark"] == SPEC.price_to_ticks("50000")
    assert int(client.hget("funding:BTC-PERP", "rate")) == 10_000
    assert int(client.hget("mark:BTC-PERP", "mark")) == SPEC.price_to_ticks("50000")
