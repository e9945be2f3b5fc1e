"""Request counting from librdkafka's statistics reports (libs.bus.stats)."""

from __future__ import annotations

import json

from prometheus_client import REGISTRY

from libs.bus.stats import RequestCounter, counted


def sent(client: str, request: str) -> float:
    value = REGISTRY.get_sample_value(
        "kafka_client_requests_total", {"client": client, "request": request}
    )
    return value or 0.0


def report(**brokers: dict[str, int]) -> str:
    return json.dumps(
        {"name": "x#producer-1", "brokers": {b: {"req": r} for b, r in brokers.items()}}
    )


def test_each_report_adds_what_each_broker_sent_since_the_one_before() -> None:
    count = RequestCounter("t-stats")
    count(report(bootstrap={"Metadata": 2}, b1={"Produce": 10, "Fetch": 0}))
    assert (sent("t-stats", "Produce"), sent("t-stats", "Metadata")) == (10, 2)
    count(report(bootstrap={"Metadata": 2}, b1={"Produce": 25, "Fetch": 4}))
    assert (sent("t-stats", "Produce"), sent("t-stats", "Fetch")) == (25, 4)
    count(report(b1={"Produce": 25, "Fetch": 4}))  # a broker gone from the report takes nothing
    count("not json")  # an unreadable report counts nothing
    assert (sent("t-stats", "Produce"), sent("t-stats", "Metadata")) == (25, 2)


def test_a_client_configured_with_counted_reports_to_its_own_counter() -> None:
    config = counted("t-other")
    assert config["statistics.interval.ms"] > 0
    config["stats_cb"](report(b1={"Produce": 3}))
    assert sent("t-other", "Produce") == 3 and sent("t-stats-none", "Produce") == 0
