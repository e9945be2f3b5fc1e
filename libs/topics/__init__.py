"""The exchange's Kafka topics, declared once: the write-ahead log of every service.

Each topic is declared here with its key, partitions, producers, consumers, the message kinds
that may be on it (so its codec) and its retention; ``Topics`` maps the table's names to the
names one deployment runs under (``TOPIC_PREFIX``). Every service, tool and test names and
decodes its topics through these two. ``docs/ARCHITECTURE.md``'s topic table is
``markdown_table`` (a unit test holds them equal).

``python -m libs.topics create`` creates the missing ones (idempotent) on the broker
named by ``KAFKA_BOOTSTRAP_SERVERS``; ``python -m libs.topics list`` prints the table.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cache

from libs.messages import (
    Cause,
    Codec,
    IndexPriceTick,
    MatcherCommand,
    MatcherEvent,
    Message,
    OrderRequest,
    PositionEvent,
    WalletEvent,
    concrete_kinds,
)
from libs.symbols import default_symbols

REQUESTS = "orders.requests"
COMMANDS = "orders.commands"
MATCHER_EVENTS = "matcher.events"
INDEX_PRICES = "index.prices"
POSITIONS_EVENTS = "positions.events"
WALLET_EVENTS = "wallet.events"
MATCHER_SNAPSHOTS = "matcher.snapshots"
WALLET_SNAPSHOTS = "wallet.snapshots"
WALLET_JOURNAL = "wallet.journal"
POSITIONS_SNAPSHOTS = "positions.snapshots"
POSITIONS_JOURNAL = "positions.journal"


@cache
def user_partitions() -> int:
    """Partitions of the user-keyed topics: the unit of scale-out for wallet and positions
    (``USER_PARTITIONS`` in the environment, one by default).

    Each partition is a shard: a wallet and a position engine state machine of its own, with
    its own snapshot, journal partition and transactional id, which a consumer group gives to
    one instance of the service (``libs.bus.shards``). One, while one instance of each serves
    every user: librdkafka sends a ProduceRequest per partition, and the broker's idle and
    per-order CPU grew with the partitions every consumer fetched (issue 12: idle stack 13% ->
    8.5% of a core, broker 3.3 -> 2.7 ms per order at 200 orders/s with 8 -> 1). Changing it
    is a topology change: new topics (``create_topics`` refuses the old ones), as users'
    history stays on the partitions it was written to. Every process of a deployment must be
    given the same value."""
    value = int(os.environ.get("USER_PARTITIONS", "1"))
    if not 1 <= value <= 64:
        raise ValueError(f"USER_PARTITIONS={value}: between 1 and 64")
    return value


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
    """One topic of the table: ``name`` is its logical name (a deployment runs it as
    ``prefix + name``); ``kinds`` the messages its producers write (none: snapshot and journal
    records, which their own modules encode)."""

    name: str
    key: str
    partitions: int
    producers: str
    consumers: str
    config: dict[str, str] = field(default_factory=dict)
    kinds: tuple[type[Message], ...] = ()

    @property
    def codec(self) -> Codec:
        """The decoder of this topic's records: every kind its producers write, nothing else."""
        if not self.kinds:
            raise LookupError(f"{self.name} holds no messages (snapshots or journal records)")
        return _codec(self.kinds)


@cache
def _codec(kinds: tuple[type[Message], ...]) -> Codec:
    return Codec(*kinds)


def exchange_topics() -> list[Topic]:
    """Return every topic of the exchange with its partitioning and retention."""
    symbols = len(default_symbols())
    users = user_partitions()
    return [
        Topic(
            REQUESTS,
            "user",
            users,
            "gateway",
            "wallet, projector",
            FOREVER,
            OrderRequest.__args__,
        ),
        Topic(
            COMMANDS,
            "symbol",
            symbols,
            "wallet, positions (liquidations, deleverages, mark ticks), admin CLI",
            "matcher",
            FOREVER,
            MatcherCommand.__args__,
        ),
        Topic(
            MATCHER_EVENTS,
            "symbol",
            symbols,
            "matcher",
            "positions, wallet, gateway (every order reply, projector)",
            FOREVER,
            concrete_kinds(MatcherEvent),
        ),
        Topic(
            INDEX_PRICES, "symbol", symbols, "index feed", "positions", FOREVER, (IndexPriceTick,)
        ),
        Topic(
            POSITIONS_EVENTS,
            "user",
            users,
            "positions",
            "wallet, projector",
            FOREVER,
            concrete_kinds(PositionEvent),
        ),
        Topic(
            WALLET_EVENTS,
            "user",
            users,
            "wallet",
            "positions, gateway (account replies, while one waits; projector)",
            FOREVER,
            concrete_kinds(WalletEvent),
        ),
        Topic(MATCHER_SNAPSHOTS, "symbol", 1, "matcher", "matcher (on start)", COMPACTED),
        Topic(WALLET_SNAPSHOTS, "shard", 1, "wallet", "wallet (on start)", COMPACTED),
        Topic(
            WALLET_JOURNAL,
            "shard",
            users,
            "wallet (a record per turn)",
            "wallet (on start)",
            FOREVER,
        ),
        Topic(POSITIONS_SNAPSHOTS, "shard", 1, "positions", "positions (on start)", COMPACTED),
        Topic(
            POSITIONS_JOURNAL,
            "shard",
            users,
            "positions (a record per turn)",
            "positions (on start)",
            FOREVER,
        ),
    ]


@cache
def topic_table() -> dict[str, Topic]:
    """Return the table by logical name."""
    return {t.name: t for t in exchange_topics()}


@dataclass(frozen=True)
class Topics:
    """The names one deployment runs the table's topics under: ``prefix`` + the table's name.

    The one place a logical name becomes a physical one and back (tests run under prefixes of
    their own; a ``Cause`` always names the logical topic, see ``cause_of``)."""

    prefix: str = ""

    def physical(self, name: str) -> str:
        return physical_topic(name, self.prefix)

    def logical(self, topic: str) -> str:
        """Return the topic's name in the table (for causes and metric labels)."""
        return logical_topic(topic, self.prefix)

    def codec(self, topic: str) -> Codec:
        """Return the decoder of a topic of this deployment (by its physical name)."""
        return topic_table()[self.logical(topic)].codec

    @property
    def requests(self) -> str:
        return self.physical(REQUESTS)

    @property
    def commands(self) -> str:
        return self.physical(COMMANDS)

    @property
    def matcher_events(self) -> str:
        return self.physical(MATCHER_EVENTS)

    @property
    def index_prices(self) -> str:
        return self.physical(INDEX_PRICES)

    @property
    def positions_events(self) -> str:
        return self.physical(POSITIONS_EVENTS)

    @property
    def wallet_events(self) -> str:
        return self.physical(WALLET_EVENTS)

    @property
    def matcher_snapshots(self) -> str:
        return self.physical(MATCHER_SNAPSHOTS)

    @property
    def wallet_snapshots(self) -> str:
        return self.physical(WALLET_SNAPSHOTS)

    @property
    def wallet_journal(self) -> str:
        return self.physical(WALLET_JOURNAL)

    @property
    def positions_snapshots(self) -> str:
        return self.physical(POSITIONS_SNAPSHOTS)

    @property
    def positions_journal(self) -> str:
        return self.physical(POSITIONS_JOURNAL)


def symbol_partition(symbol: str) -> int:
    """Return the partition of a symbol in the symbol-keyed topics (its place in the file)."""
    return default_symbols()[symbol].index


def user_partition(user_id: int, partitions: int | None = None) -> int:
    """Return the partition of a user in the user-keyed topics (its shard)."""
    return user_id % (partitions or user_partitions())


def market_partition(symbol_index: int, partitions: int | None = None) -> int:
    """Return the partition of a symbol's market events (marks, funding) in
    ``positions.events``, a user-keyed topic: its index, wrapped to the partitions there are.
    The position engine shard of that partition publishes them and sends the symbol's marks."""
    return symbol_index % (partitions or user_partitions())


@dataclass(frozen=True)
class Shard:
    """The users one engine state machine owns: those in ``partition`` of ``partitions``
    (every user with the default). Its inputs from the user-keyed topics are that partition
    only; from the symbol-keyed ones it reads everything and applies its users' part."""

    partition: int = 0
    partitions: int = 1

    def owns(self, user_id: int) -> bool:
        return user_partition(user_id, self.partitions) == self.partition

    def owns_market(self, symbol_index: int) -> bool:
        """Whether this shard publishes a symbol's market events and sends its marks."""
        return market_partition(symbol_index, self.partitions) == self.partition


ALL_USERS = Shard()


def shard_name(name: str, partition: int) -> str:
    """Return the name of user shard ``partition`` of an engine called ``name`` (its snapshot
    key, the ``src`` of its outputs, its transactional id): shard 0 keeps the plain name, so
    a deployment's log written before users were sharded recovers as shard 0."""
    return name if partition == 0 else f"{name}-{partition}"


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
            "; ".join(wrong) + ": this log was written by another topology (another "
            "USER_PARTITIONS, or 8 user partitions from before issue 12); give every process "
            "the USER_PARTITIONS it was written with, or start from an empty broker "
            "(`make clean` removes what `make up` kept)"
        )
    missing = [t for t in topics if t.name not in existing]
    if not missing:
        return []
    futures = admin.create_topics(
        [
            # the broker's default replication: one copy alone, three on the cluster
            NewTopic(t.name, num_partitions=t.partitions, config=t.config)
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
