"""The exchange's Kafka topics: the write-ahead log of every service.

``python -m libs.topics create`` creates the missing ones (idempotent) on the broker
named by ``KAFKA_BOOTSTRAP_SERVERS``; ``python -m libs.topics list`` prints the table.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field

from libs.messages import Cause
from libs.symbols import default_symbols

USER_PARTITIONS = 1
"""Partitions of the user-keyed topics: the unit of scale-out for wallet and positions.

One, while one wallet and one position engine serve every user: librdkafka sends a
ProduceRequest per partition, so a wallet turn over eight partitions cost up to eight
requests, and the broker's idle and per-order CPU grew with the partitions every consumer
fetched (issue 12: idle stack 13% -> 8.5% of a core, broker 3.3 -> 2.7 ms per order at
200 orders/s). Raising it is a topology change: new topics, or users' history stays on the
old partitions."""

FOREVER = {"retention.ms": "-1", "retention.bytes": "-1"}
SNAPSHOT_MAX_BYTES = 64 * 1024 * 1024
"""A snapshot is one message holding a whole state: allow big ones (the default is 1 MB)."""
COMPACTED = {
    "cleanup.policy": "compact",
    "min.compaction.lag.ms": "0",
    "segment.ms": "3600000",
    "max.message.bytes": str(SNAPSHOT_MAX_BYTES),
}


@dataclass(frozen=True)
class Topic:
    name: str
    key: str
    partitions: int
    producers: str
    consumers: str
    config: dict[str, str] = field(default_factory=dict)


def exchange_topics() -> list[Topic]:
    """Return every topic of the exchange with its partitioning and retention."""
    symbols = len(default_symbols())
    return [
        Topic(
            "orders.requests",
            "user",
            USER_PARTITIONS,
            "gateway",
            "wallet, gateway projector",
            FOREVER,
        ),
        Topic(
            "orders.commands",
            "symbol",
            symbols,
            "wallet, positions (liquidations, deleverages, mark ticks), admin CLI",
            "matcher",
            FOREVER,
        ),
        Topic(
            "matcher.events",
            "symbol",
            symbols,
            "matcher",
            "positions, wallet, gateway (replies, projector)",
            FOREVER,
        ),
        Topic("index.prices", "symbol", symbols, "index feed", "positions", FOREVER),
        Topic(
            "positions.events",
            "user",
            USER_PARTITIONS,
            "positions",
            "wallet, gateway projector",
            FOREVER,
        ),
        Topic(
            "wallet.events",
            "user",
            USER_PARTITIONS,
            "wallet",
            "positions, gateway (replies, projector)",
            FOREVER,
        ),
        Topic("matcher.snapshots", "symbol", 1, "matcher", "matcher (on start)", COMPACTED),
        Topic("wallet.snapshots", "partition", 1, "wallet", "wallet (on start)", COMPACTED),
        Topic(
            "wallet.journal", "none", 1, "wallet (a record per turn)", "wallet (on start)", FOREVER
        ),
        Topic(
            "positions.snapshots", "partition", 1, "positions", "positions (on start)", COMPACTED
        ),
        Topic(
            "positions.journal",
            "none",
            1,
            "positions (a record per turn)",
            "positions (on start)",
            FOREVER,
        ),
    ]


def symbol_partition(symbol: str) -> int:
    """Return the partition of a symbol in the symbol-keyed topics (its place in the file)."""
    return default_symbols()[symbol].index


def user_partition(user_id: int, partitions: int = USER_PARTITIONS) -> int:
    """Return the partition of a user in the user-keyed topics."""
    return user_id % partitions


def market_partition(symbol_index: int) -> int:
    """Return the partition of a symbol's market events (marks, funding) in
    ``positions.events``, a user-keyed topic: its index, wrapped to the partitions there are."""
    return symbol_index % USER_PARTITIONS


def logical_topic(topic: str, prefix: str) -> str:
    """Return the name ``topic`` has in the table above: without the deployment's prefix."""
    return topic[len(prefix) :] if prefix and topic.startswith(prefix) else topic


def physical_topic(name: str, prefix: str) -> str:
    """Return the topic a deployment with ``prefix`` reads for the table's ``name``."""
    return f"{prefix}{name}"


def cause_of(topic: str, partition: int, offset: int, prefix: str) -> Cause:
    """Return the ``cause`` naming a consumed record of ``topic`` (as the broker names it).

    The one convention for ``Cause.topic``: the logical name (``matcher.events``), never the
    prefixed one, because the prefix is a deployment detail: a replay under another prefix
    gives the same events and digests. Readers map it back with ``physical_topic``."""
    return Cause(logical_topic(topic, prefix), partition, offset)


class TopologyError(Exception):
    """A topic on the broker has other partitions than the table says: its log was written
    by another topology, and the services would not read all of it."""


def create_topics(bootstrap_servers: str, topics: list[Topic], timeout: float = 30.0) -> list[str]:
    """Create the topics that do not exist yet; return the names created. Raise
    TopologyError when one that exists has another number of partitions."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap_servers})
    existing = admin.list_topics(timeout=timeout).topics
    wrong = [
        f"{t.name} has {len(existing[t.name].partitions)} partitions, the table {t.partitions}"
        for t in topics
        if t.name in existing and len(existing[t.name].partitions) != t.partitions
    ]
    if wrong:
        raise TopologyError(
            "; ".join(wrong) + ": this log was written by another topology (the user-keyed "
            "topics had 8 partitions before issue 12); start from an empty broker "
            "(`make clean` removes what `make up` kept)"
        )
    missing = [t for t in topics if t.name not in existing]
    if not missing:
        return []
    futures = admin.create_topics(
        [
            NewTopic(t.name, num_partitions=t.partitions, replication_factor=1, config=t.config)
            for t in missing
        ],
        operation_timeout=timeout,
    )
    created = []
    for name, future in futures.items():
        try:
            future.result()
            created.append(name)
        except Exception as error:  # a concurrent creator won the race: fine
            if "TOPIC_ALREADY_EXISTS" not in str(error):
                raise
    return created


def markdown_table(topics: list[Topic]) -> str:
    rows = [
        "| topic | key | partitions | producers | consumers | retention |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for t in topics:
        retention = "compacted" if t.config is COMPACTED else "forever"
        rows.append(
            f"| `{t.name}` | {t.key} | {t.partitions} | {t.producers} | "
            f"{t.consumers} | {retention} |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m libs.topics", description=__doc__)
    parser.add_argument("action", choices=["create", "list"])
    args = parser.parse_args(argv)
    if args.action == "list":
        print(markdown_table(exchange_topics()))
        return 0
    from libs.settings import KafkaSettings, load_settings

    settings = load_settings(KafkaSettings)
    try:
        created = create_topics(settings.kafka_bootstrap_servers, exchange_topics())
    except TopologyError as error:
        print(f"python -m libs.topics create: {error}", file=sys.stderr)
        return 2
    names = ", ".join(created) or "none"
    print(f"topics ready on {settings.kafka_bootstrap_servers}; created: {names}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
