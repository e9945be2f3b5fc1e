"""How many requests each Kafka client sends, by type, and how far behind its consumers are,
from librdkafka's statistics.

The broker's CPU goes by the request (docs/BENCHMARKS.md: a fetch or a produce costs it about
the same whatever it carries), so what one order costs the broker is the requests it causes.
Every client the services make passes ``counted(client)`` into its configuration: librdkafka
then reports, every ``STATS_INTERVAL_MS``, its cumulative requests per type and broker, and
``kafka_client_requests_total{client,request}`` on the service's ``/metrics`` grows by the
difference. A consumer's report also sets ``kafka_consumer_lag{client,topic,partition}``: the
records of each partition it reads that the service has not taken yet (dashboards, ``/status``).
The report runs on the thread that polls the client, as its callbacks do.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

from prometheus_client import Counter, Gauge

# Each report is a JSON document parsed in Python on the polling thread: at 1 s that parse
# was about a tenth of an idle service's CPU. `make bench` reads the counters a whole step
# and 10 s of drain apart, so 5 s loses nothing there.
STATS_INTERVAL_MS = 5000

REQUESTS = Counter(
    "kafka_client_requests",
    "requests this process's Kafka clients sent to the brokers, by client and request type",
    ["client", "request"],
)

LAG = Gauge(
    "kafka_consumer_lag",
    "records of a partition this process's consumer has not taken yet, as of its last report",
    ["client", "topic", "partition"],
)

NOT_READ = frozenset({"none", "stopping", "stopped"})  # fetch states of a partition not assigned


class RequestCounter:
    """librdkafka's ``stats_cb`` for one client handle: counts its new requests and sets its
    consumer lag."""

    def __init__(self, client: str) -> None:
        self.client = client
        self._seen: dict[tuple[str, str], int] = {}  # (broker, request) -> requests so far

    def __call__(self, stats_json: str) -> None:
        try:
            report = json.loads(stats_json)
        except ValueError:
            return  # a report we cannot read counts nothing; the next one catches up
        for name, broker in report.get("brokers", {}).items():
            for request, n in broker.get("req", {}).items():
                new = n - self._seen.get((name, request), 0)
                if new > 0:
                    REQUESTS.labels(self.client, request).inc(new)
                    self._seen[(name, request)] = n
        if report.get("type") == "consumer":
            self._lag(report.get("topics", {}))

    def _lag(self, topics: dict[str, Any]) -> None:
        for topic, about in topics.items():
            for partition, p in about.get("partitions", {}).items():
                labels = (self.client, topic, partition)
                lag = consumer_lag(p)
                if lag is None:  # not read (any more), or not known yet: no series
                    with contextlib.suppress(KeyError):
                        LAG.remove(*labels)
                else:
                    LAG.labels(*labels).set(lag)


def consumer_lag(partition: dict[str, Any]) -> int | None:
    """Return the records behind the partition's high watermark from one partition's statistics:
    behind the offset after the last record handed to the service, or before the first, behind
    where the client fetches next; None for a partition not read or whose end is not known.

    Not librdkafka's own ``consumer_lag``: that counts from the committed offset, which the
    engines commit through their producer's transaction, so the consumer never learns it."""
    if partition.get("partition", -1) < 0 or partition.get("fetch_state") in NOT_READ:
        return None  # -1: the client's queue of records for no partition yet
    end = partition.get("hi_offset", -1)
    position = partition.get("app_offset", -1)
    if position < 0:
        position = partition.get("next_offset", -1)
    if end < 0 or position < 0:
        return None
    return max(end - position, 0)


def counted(client: str) -> dict[str, Any]:
    """The configuration that makes a librdkafka client count its requests as ``client``."""
    return {"statistics.interval.ms": STATS_INTERVAL_MS, "stats_cb": RequestCounter(client)}
