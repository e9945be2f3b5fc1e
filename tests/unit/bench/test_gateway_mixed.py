"""The mixed workload of bench/gateway_mixed.py: its proportions, prices and cancels, and how
its section reads its results."""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from bench.gateway_mixed import (
    ADDRESSES,
    BAND_BPS,
    CPU_RATE,
    MIX,
    USERS,
    Idle,
    MixedFlow,
    address,
    label,
    render,
    tally,
)
from libs.symbols import default_symbols

BTC = default_symbols()["BTC-PERP"]
MARK = BTC.price_to_ticks("60000")


def drive(flow: MixedFlow, count: int, mark: int = MARK) -> list:
    """Draw ``count`` requests, answering every limit as resting under a fresh id."""
    orders = []
    for n in range(count):
        order = flow.next(mark)
        if order.path == "/place_order":
            flow.answered(order, "New", 1_000 + n)
            order.body["order_id"] = 1_000 + n  # what the test checks cancels against
        orders.append(order)
    return orders


def test_the_flow_keeps_the_mix_of_limits_iocs_markets_and_cancels():
    orders = drive(MixedFlow(USERS, BTC, seed=3), 20_000)
    kinds = Counter(o.kind for o in orders)
    for kind, percent in MIX:
        assert abs(100 * kinds[kind] / len(orders) - percent) < 1.5, (kind, kinds)
    limits = [o for o in orders if o.kind == "limit"]
    crossing = sum(o.crossing for o in limits) / len(limits)
    assert 0.45 < crossing < 0.55
    assert all(o.crossing and o.body["time_in_force"] == "IOC" for o in orders if o.kind == "ioc")
    assert {o.body["time_in_force"] for o in limits} == {"GTC"}
    assert len({o.user for o in orders}) == USERS


def test_a_cancel_names_its_own_users_resting_order_once():
    orders = drive(MixedFlow(USERS, BTC, seed=5), 5_000)
    owner = {o.body["order_id"]: o.user for o in orders if o.kind == "limit"}
    cancelled = [o for o in orders if o.kind == "cancel"]
    assert cancelled
    for order in cancelled:
        assert order.path == "/cancel" and owner[order.body["order_id"]] == order.user
    ids = [o.body["order_id"] for o in cancelled]
    assert len(ids) == len(set(ids))


def test_with_nothing_resting_a_cancel_becomes_a_limit():
    flow = MixedFlow(USERS, BTC, seed=1)
    orders = [flow.next(MARK) for _ in range(2_000)]  # no reply ever says an order rests
    assert not any(o.kind == "cancel" for o in orders)
    flow.answered(orders[0], "Filled", 7)  # a filled order does not rest either
    flow.answered(next(o for o in orders if o.kind == "ioc"), "New", 8)  # nor does an IOC
    assert not flow.holders


def test_the_same_seed_gives_the_same_flow():
    first, second = (drive(MixedFlow(USERS, BTC, seed=9), 500) for _ in range(2))
    assert first == second


MARKS = st.integers(BTC.price_to_ticks("100"), BTC.price_to_ticks("500000"))


@settings(max_examples=60, deadline=None)
@given(mark=MARKS, seed=st.integers())
def test_prices_stay_within_the_band_around_the_mark_on_the_grid(mark, seed):
    for order in drive(MixedFlow(20, BTC, seed=seed), 200, mark):
        if order.kind == "cancel":
            continue
        lots = BTC.qty_to_lots(order.body["quantity"])
        if order.kind == "market":
            assert "price" not in order.body and order.body["order_type"] == "Market"
            continue
        price = BTC.price_to_ticks(order.body["price"])  # on the tick grid, or it raises
        assert 0 < abs(price - mark) * 10_000 <= mark * BAND_BPS
        assert BTC.notional(price, lots) >= BTC.min_notional
        buy = order.body["side"] == "Buy"
        assert order.crossing == (price > mark if buy else price < mark)


def test_outcomes_are_labelled_and_tallied():
    assert label("limit", 200, {"status": "New", "order_id": 3}) == "limit 200 New"
    assert label("cancel", 400, {"code": -2011, "msg": "Unknown order sent."}) == (
        "cancel 400 -2011"
    )
    assert label("market", 400, {"status": "Rejected", "code": -2019}) == (
        "market 400 Rejected -2019"
    )
    counts = tally(
        {
            "limit 200 New": 50,
            "ioc 200 Expired": 4,
            "limit 202 Pending": 3,
            "cancel 400 -2011": 2,
            "market 400 Rejected -2019": 1,
            "limit 429": 5,
            "cancel 503": 1,
            "connection error": 2,
        }
    )
    assert counts == {"pending": 3, "errors": 9, "cancel_missed": 2}


def test_users_spread_over_the_client_addresses():
    addresses = {address(user) for user in range(USERS)}
    assert len(addresses) == ADDRESSES
    assert all(a.startswith("127.") and len(a.split(".")) == 4 for a in addresses)


def step(rate: int, achieved: float, p50: float, p99: float, broker: float | None) -> dict:
    return {
        "rate": rate,
        "achieved": achieved,
        "p50": p50,
        "p90": p99,
        "p99": p99,
        "max": p99,
        "pending": 0,
        "errors": 0,
        "statuses": {"limit 200 New": int(achieved)},
        "cpu": {"gateway": 3.0, "kafka broker": broker},
        "broker_jit": None if broker is None else broker / 10,
        "breakdown": {"http": p50, "produce": 1.0, "answer": p50 - 2},
        "steal": 12.4,
    }


def test_the_section_names_the_best_rate_the_targets_and_the_floor():
    steps = [
        step(25, 25, 30, 90, 7.0),
        step(50, 50, 60, 130, 7.0),
        step(CPU_RATE, CPU_RATE, 90, 450, None),
        step(200, 150, 2_000, 5_000, 5.0),
    ]
    floor = {"rate": 500, "records": 5_000, "lost": 0, "p50": 3.0, "p90": 4.0, "p99": 9.0}
    floor["cpu"] = {"kafka broker": 0.5, "origin": 0.2}
    broker_floor = floor | {"rate": 200, "cpu": {"kafka broker": 3.25}}
    section = render(
        Idle({"kafka broker": 20.0, "redis": None}, 4.5, 2), steps, floor, broker_floor
    )
    assert section.startswith("## Gateway, mixed workload")
    assert "**25 orders/s**" in section
    assert f"At {CPU_RATE} orders/s: p50 90.0 ms (misses <= 10 ms), p99 450.0 ms (misses" in section
    assert "30.0x the three-hop Kafka floor" in section
    assert "| redis | unknown (process not found) |" in section
    assert "| 100 | 100 | 90.0 | 450.0 | 450.0 | 450.0 | 0 | 0 | 3.00 | unknown | 12% |" in section
    assert "p50 **3.00 ms**" in section
    assert (
        "**20.0% of one core** in all (issue 12: at most 10%), of which the broker's JIT "
        in section
    )
    assert "window 2 shown" in section
    assert "compiler 4.5%." in section
    assert "compiler unknown." in render(Idle({"x": 1.0}, None, 1), steps, floor)
    assert (
        "Broker CPU per order at 200 orders/s: 5.00 ms (misses <= 1 ms), of which its JIT "
        "compiler 0.50 ms. The three plain Kafka hops of the floor below, at 200 records/s in "
        "the same run: 3.25 ms of broker CPU per record." in section
    )
    assert (
        "its JIT compiler threads (still compiling hot paths after the warm-up): 0.70 ms" in section
    )
    assert (
        "its JIT compiler threads (still compiling hot paths after the warm-up): unknown" in section
    )
    # process by process at the highest passing rate and at CPU_RATE, not elsewhere
    assert section.count("CPU per order at 25 orders/s") == 1
    assert section.count(f"CPU per order at {CPU_RATE} orders/s") == 1
    assert "CPU per order at 50 orders/s" not in section
