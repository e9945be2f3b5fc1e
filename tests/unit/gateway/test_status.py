"""GET /status (services/gateway/api/status.py): the figures from two scrapes (a pure function),
the quantiles as Prometheus computes them, and the route on the real app: engines read from
their /metrics pages, one that does not answer a null, never a 5xx, limited per IP."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from libs.ops import OpsServer
from services.gateway.api import status
from services.gateway.api.status import Samples, Scrape, figures, parse_page, quantile
from tests.unit.gateway.fakes import started
from tests.unit.test_dashboards import exported_names

NOW_MS = 1_800_000_000_000


def page(text: str) -> Samples:
    return parse_page(text)


def gateway_page(placed: int, rejected: dict[str, int], fast: int, slow: int) -> Samples:
    """The gateway's samples: ``placed`` New answers, rejections by code, and reply times of
    ``fast`` orders at most 2 ms and ``slow`` ones between 10 and 15 ms."""
    lines = [f'gateway_answers_total{{kind="place",status="New",code=""}} {placed}']
    lines += [
        f'gateway_answers_total{{kind="place",status="Rejected",code="{code}"}} {n}'
        for code, n in rejected.items()
    ]
    lines += [
        'gateway_answers_total{kind="cancel",status="Cancelled",code=""} 50',
        'gateway_reply_timeouts_total{kind="place"} 0',
    ]
    for le, count in (
        ("0.002", fast),
        ("0.01", fast),
        ("0.015", fast + slow),
        ("+Inf", fast + slow),
    ):
        lines.append(f'gateway_reply_seconds_bucket{{kind="place",le="{le}"}} {count}')
    lines.append(f'gateway_reply_seconds_bucket{{kind="cancel",le="+Inf"}} {10 * (fast + slow)}')
    return parse_gateway("\n".join(lines))


def parse_gateway(text: str) -> Samples:
    from prometheus_client.parser import text_string_to_metric_families

    return status.samples_of(text_string_to_metric_families(text + "\n"), status.GATEWAY_SAMPLES)


MATCHER = """
kafka_consumer_lag{{client="m-consumer",topic="orders.commands",partition="0"}} {lag}
kafka_consumer_lag{{client="m-consumer",topic="orders.commands",partition="1"}} 2
matcher_batch_size_count {batches}
matcher_batch_size_sum {commands}
matcher_ring_occupancy_bytes{{ring="inbound"}} 128
matcher_ring_occupancy_bytes{{ring="outbound"}} 64
matcher_commands_total{{symbol="BTC-PERP"}} 999
"""
POSITIONS = """
kafka_consumer_lag{client="positions-consumer",topic="matcher.events",partition="0"} 0
positions_liquidations_total 3
"""


def engines(lag: int, batches: int, commands: int) -> dict[str, Samples | None]:
    return {
        "matcher": page(MATCHER.format(lag=lag, batches=batches, commands=commands)),
        "wallet": None,  # did not answer
        "positions": page(POSITIONS),
        "projector": page('projector_lag_records{topic="x"} 4\n'),  # no consumer lag yet
    }


def test_figures_over_a_window_give_rates_percentiles_and_the_latest_gauges() -> None:
    before = Scrape(100.0, gateway_page(10, {"-2019": 1}, 0, 0), engines(0, 10, 20))
    now = Scrape(110.0, gateway_page(110, {"-2019": 4, "-2010": 1}, 90, 10), engines(7, 30, 120))
    body = figures(now, before, NOW_MS)
    assert body == {
        "orders_per_second": 10.4,  # 100 more New and 4 more Rejected in 10 s
        "reply_ms": {"p50": pytest.approx(1.11, abs=0.01), "p90": 2.0, "p99": 14.5},
        "rejects": {"-2010": 1, "-2019": 4},  # since the gateway started
        "lag": {"matcher": 9, "wallet": None, "positions": 0, "projector": None},
        "matcher": {"batch_size_mean": 5.0, "ring_occupancy": 192},  # 100 commands, 20 batches
        "liquidations": 3,
        "window_seconds": 10.0,
        "updated_at": NOW_MS,
    }


def test_the_first_scrape_has_no_rates_yet_but_every_gauge() -> None:
    now = Scrape(5.0, gateway_page(3, {}, 3, 0), engines(1, 4, 4))
    body = figures(now, None, NOW_MS)
    assert body["orders_per_second"] is None
    assert body["reply_ms"] == {"p50": None, "p90": None, "p99": None}
    assert body["window_seconds"] is None
    assert body["matcher"] == {"batch_size_mean": None, "ring_occupancy": 192}
    assert body["lag"]["matcher"] == 3 and body["rejects"] == {}


def test_a_quiet_window_has_zero_orders_and_no_percentiles() -> None:
    samples = gateway_page(10, {}, 5, 5)
    body = figures(Scrape(2.0, samples, {}), Scrape(1.0, samples, {}), NOW_MS)
    assert body["orders_per_second"] == 0.0
    assert body["reply_ms"] == {"p50": None, "p90": None, "p99": None}
    assert body["lag"] == {} and body["liquidations"] is None
    assert body["matcher"] == {"batch_size_mean": None, "ring_occupancy": None}


def test_a_restarted_engine_counts_from_zero_again() -> None:
    before = Scrape(0.0, {}, {"matcher": page(MATCHER.format(lag=0, batches=500, commands=900))})
    now = Scrape(5.0, {}, {"matcher": page(MATCHER.format(lag=0, batches=4, commands=12))})
    assert figures(now, before, NOW_MS)["matcher"]["batch_size_mean"] == 3.0


def test_an_engine_that_did_not_answer_is_null_everywhere() -> None:
    now = Scrape(5.0, {}, {"matcher": None, "positions": None})
    body = figures(now, Scrape(0.0, {}, engines(1, 1, 1)), NOW_MS)
    assert body["lag"] == {"matcher": None, "positions": None}
    assert body["matcher"] == {"batch_size_mean": None, "ring_occupancy": None}
    assert body["liquidations"] is None


def test_quantiles_interpolate_within_a_bucket_as_prometheus_does() -> None:
    buckets = {0.1: 50.0, 0.2: 100.0, float("inf"): 100.0}
    assert quantile(0.5, buckets) == pytest.approx(0.1)
    assert quantile(0.75, buckets) == pytest.approx(0.15)
    assert quantile(0.25, buckets) == pytest.approx(0.05)  # the first bucket starts at 0
    assert quantile(0.99, {0.1: 0.0, float("inf"): 10.0}) == 0.1  # open-ended: its lower bound
    assert quantile(0.5, {0.1: 0.0, float("inf"): 0.0}) is None
    assert quantile(0.5, {}) is None


def test_a_page_keeps_only_the_samples_the_figures_read() -> None:
    samples = page(MATCHER.format(lag=1, batches=1, commands=1))
    assert {name for name, _ in samples} == {
        "kafka_consumer_lag",
        "matcher_batch_size_count",
        "matcher_batch_size_sum",
        "matcher_ring_occupancy_bytes",
    }


def test_every_sample_the_figures_read_is_one_a_service_exports() -> None:
    assert exported_names() >= status.GATEWAY_SAMPLES | status.ENGINE_SAMPLES


# ---------------------------------------------------------------- the route


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when we return: nothing answers there


@pytest.fixture
def engine() -> Iterator[OpsServer]:
    """An engine's ops endpoint serving a matcher's figures."""
    registry = CollectorRegistry()
    Gauge("kafka_consumer_lag", "", ["client", "topic", "partition"], registry=registry).labels(
        "m", "orders.commands", "0"
    ).set(5)
    Histogram("matcher_batch_size", "", buckets=(1, 2), registry=registry).observe(2)
    Gauge("matcher_ring_occupancy_bytes", "", ["ring"], registry=registry).labels("in").set(8)
    Counter("positions_liquidations", "", registry=registry).inc(2)
    server = OpsServer(0, registry=registry)
    yield server
    server.close()


def test_status_reads_the_engines_pages_and_answers_null_for_one_that_is_down(
    engine: OpsServer,
) -> None:
    sources = (
        f"matcher=http://127.0.0.1:{engine.port}/metrics,"
        f"wallet=http://127.0.0.1:{closed_port()}/metrics"
    )
    with started(status_sources=sources) as stack:
        answer = stack.client.get("/status")
        assert answer.status_code == 200
        body = answer.json()
        assert body["lag"] == {"matcher": 5, "wallet": None}
        assert body["matcher"]["ring_occupancy"] == 8
        assert body["liquidations"] is None  # no positions source configured
        assert set(body) == {
            "orders_per_second",
            "reply_ms",
            "rejects",
            "lag",
            "matcher",
            "liquidations",
            "window_seconds",
            "updated_at",
        }
        # cached: the same answer within CACHE_SECONDS
        assert stack.client.get("/status").json()["updated_at"] == body["updated_at"]


def test_status_is_public_and_limited_per_ip() -> None:
    with started(status_sources="", ip_rate_per_minute=2) as stack:
        assert [stack.client.get("/status").status_code for _ in range(3)] == [200, 200, 429]


def test_status_sources_must_be_names_and_urls() -> None:
    with pytest.raises(ValueError, match="NAME=http"), started(status_sources="m=localhost:9101"):
        pass
    with pytest.raises(ValueError, match="twice"), started(status_sources="a=http://x,a=http://y"):
        pass
