"""The Kafka bus: producers, read_committed consumers, the exactly-once loop, snapshots."""

from libs.bus.base import (
    AbortableError,
    Bus,
    BusError,
    Consumer,
    FatalError,
    FencedError,
    Outgoing,
    Producer,
    Record,
    TopicPartition,
    next_offsets,
)
from libs.bus.loop import Handler, LoopStats, TransactionalLoop
from libs.bus.memory import MemoryBus
from libs.bus.snapshots import Snapshot, latest_snapshots, load_snapshot, snapshot_message

__all__ = [
    "AbortableError",
    "Bus",
    "BusError",
    "Consumer",
    "FatalError",
    "FencedError",
    "Handler",
    "LoopStats",
    "MemoryBus",
    "Outgoing",
    "Producer",
    "Record",
    "Snapshot",
    "TopicPartition",
    "TransactionalLoop",
    "latest_snapshots",
    "load_snapshot",
    "next_offsets",
    "snapshot_message",
]


def kafka_bus(bootstrap_servers: str, **kwargs: object):
    """Return a KafkaBus (imported lazily so unit tests never load librdkafka)."""
    from libs.bus.kafka import KafkaBus

    return KafkaBus(bootstrap_servers, **kwargs)  # type: ignore[arg-type]
