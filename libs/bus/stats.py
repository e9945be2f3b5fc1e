"""How many requests each Kafka client sends, by type, from librdkafka's statistics.

The broker's CPU goes by the request (docs/BENCHMARKS.md: a fetch or a produce costs it about
the same whatever it carries), so what one order costs the broker is the requests it causes.
Every client the services make passes ``counted(client)`` into its configuration: librdkafka
then reports, every ``STATS_INTERVAL_MS``, its cumulative requests per type and broker, and
``kafka_client_requests_total{client,request}`` on the service's ``/metrics`` grows by the
difference. The report runs on the thread that polls the client, as its callbacks do.
"""

from __future__ import annotations

import json
from typing import Any

from prometheus_client import Counter

# Each report is a JSON document parsed in Python on the polling thread: at 1 s that parse
# was about a tenth of an idle service's CPU. `make bench` reads the counters a whole step
# and 10 s of drain apart, so 5 s loses nothing there.
STATS_INTERVAL_MS = 5000

REQUESTS = Counter(
    "kafka_client_requests",
    "requests this process's Kafka clients sent to the brokers, by client and request type",
    ["client", "request"],
)


class RequestCounter:
    """librdkafka's ``stats_cb`` for one client handle: counts its new requests."""

    def __init__(self, client: str) -> None:
        self.client = client
        self._seen: dict[tuple[str, str], int] = {}  # (broker, request) -> requests so far

    def __call__(self, stats_json: str) -> None:
        try:
            brokers = json.loads(stats_json).get("brokers", {})
        except ValueError:
            return  # a report we cannot read counts nothing; the next one catches up
        for name, broker in brokers.items():
            for request, n in broker.get("req", {}).items():
                new = n - self._seen.get((name, request), 0)
                if new > 0:
                    REQUESTS.labels(self.client, request).inc(new)
                    self._seen[(name, request)] = n


def counted(client: str) -> dict[str, Any]:
    """The configuration that makes a librdkafka client count its requests as ``client``."""
    return {"statistics.interval.ms": STATS_INTERVAL_MS, "stats_cb": RequestCounter(client)}
