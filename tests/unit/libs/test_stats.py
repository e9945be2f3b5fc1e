"""Request counting from librdkafka's statistics reports (libs.bus.stats)."""

from __future__ import annotations

import json

from prometheus_client import REGISTRY

from libs.bus.stats import RequestCounter, consumer_lag, counted


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


def lag(client: str, topic: str, partition: str) -> float | None:
    return REGISTRY.get_sample_value(
        "kafka_consumer_lag", {"client": client, "topic": topic, "partition": partition}
    )


def consumer_report(**partitions: dict[str, int | bool]) -> str:
    """A consumer's report: ``partitions`` by "topic/partition"."""
    topics: dict[str, dict] = {}
    for name, fields in partitions.items():
        topic, _, partition = name.partition("/")
        parts = topics.setdefault(topic, {"topic": topic, "partitions": {}})["partitions"]
        parts[partition] = {"partition": int(partition), **fields}
    return json.dumps({"name": "x#consumer-2", "type": "consumer", "brokers": {}, "topics": topics})


def test_a_consumers_report_sets_its_lag_behind_each_partitions_end() -> None:
    count = RequestCounter("t-lag")
    count(
        consumer_report(
            **{
                "orders/0": {"hi_offset": 120, "app_offset": 100, "next_offset": 118},
                "orders/1": {"hi_offset": 7, "app_offset": -1001, "next_offset": 5},  # none taken
                "orders/-1": {"hi_offset": -1, "app_offset": -1001},  # librdkafka's unassigned
                "events/0": {"hi_offset": -1, "app_offset": 3},  # end not known yet
            }
        )
    )
    assert lag("t-lag", "orders", "0") == 20  # behind what the service took, not what it fetched
    assert lag("t-lag", "orders", "1") == 2
    assert lag("t-lag", "orders", "-1") is None and lag("t-lag", "events", "0") is None
    count(consumer_report(**{"orders/0": {"hi_offset": 1, "app_offset": 1, "fetch_state": "none"}}))
    assert lag("t-lag", "orders", "0") is None  # no longer read: its series goes
    assert lag("t-lag", "orders", "1") == 2  # a partition the report leaves out keeps its value


def test_a_producers_report_sets_no_lag() -> None:
    RequestCounter("t-producer")(
        json.dumps(
            {
                "type": "producer",
                "topics": {"t": {"partitions": {"0": {"partition": 0, "hi_offset": 9}}}},
            }
        )
    )
    assert lag("t-producer", "t", "0") is None


def test_consumer_lag_never_goes_below_zero() -> None:
    # the high watermark comes with fetches and the statistics: it can trail the position
    assert consumer_lag({"partition": 0, "hi_offset": 10, "app_offset": 12}) == 0
    assert consumer_lag({"partition": 0, "hi_offset": 10, "app_offset": 4}) == 6
