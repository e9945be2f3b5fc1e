"""The Kafka bus: producers, read_uncommitted consumers, the exactly-once loops, snapshots,
the journaled handler."""

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
from libs.bus.journal import JournaledHandler
from libs.bus.loop import JournalHandler, JournalLoop, LoopStats, Turn
from libs.bus.memory import MemoryBus
from libs.bus.snapshots import Snapshot, latest_snapshots, load_snapshot, snapshot_message

__all__ = [
    "AbortableError",
    "Bus",
    "BusError",
    "Consumer",
    "FatalError",
    "FencedError",
    "JournalHandler",
    "JournalLoop",
    "JournaledHandler",
    "LoopStats",
    "MemoryBus",
    "Outgoing",
    "Producer",
    "Record",
    "Snapshot",
    "TopicPartition",
    "Turn",
    "latest_snapshots",
    "load_snapshot",
    "next_offsets",
    "snapshot_message",
]
