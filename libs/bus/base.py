"""The bus interface: what every service needs from Kafka, and nothing more.

Two implementations keep the same contract (``tests/integration/bus/test_bus_contract.py``):
``libs.bus.kafka`` over confluent-kafka, and ``libs.bus.memory`` for unit tests.

Consumers read everything the log holds (read_uncommitted): a record is a fact once it is in
the log, whatever becomes of the transaction it was written in. Transactions serve to fence a
zombie producer (a newer producer with the same transactional id makes every later write of
the older one fail) and to commit input offsets for observers; they are not on the way of a
record to its consumers (docs/adr/0001-exactly-once-on-the-order-path.md).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from typing import NamedTuple

TopicPartition = tuple[str, int]


class Record(NamedTuple):
    """One consumed message. (Tuples: a frozen dataclass's ``__init__`` sets each field
    through ``object.__setattr__``, and a busy service builds several per order.)"""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    source: bytes | None = None  # the ``src`` header: which producer wrote it (see Outgoing)
    headers: tuple[tuple[str, bytes], ...] = ()  # every other header


class Outgoing(NamedTuple):
    """One message to produce. ``partition`` None lets the key choose it. ``source`` names the
    state machine that wrote it (sent as the ``src`` header), so a recovering instance can
    count which of its outputs are already in a partition that others write to as well."""

    topic: str
    value: bytes | None
    key: bytes | None = None
    partition: int | None = None
    source: bytes | None = None
    headers: tuple[tuple[str, bytes], ...] = ()  # more headers (the matcher's batch cuts)


class BusError(Exception):
    """A bus operation failed."""


class AbortableError(BusError):
    """The current transaction failed but the producer lives: abort and rewind."""


class FencedError(BusError):
    """Another instance with our transactional id (or group generation) took over."""


class FatalError(BusError):
    """The producer is unusable: recreate it."""


def next_offsets(records: Iterable[Record]) -> dict[TopicPartition, int]:
    """Return, per partition, the offset after the last of ``records``: what to commit."""
    offsets: dict[TopicPartition, int] = {}
    for record in records:
        offsets[(record.topic, record.partition)] = record.offset + 1
    return offsets


class Consumer(ABC):
    """A consumer in a group (read_uncommitted), with manual offset control."""

    @abstractmethod
    def poll_batch(self, max_records: int, timeout: float) -> list[Record]:
        """Return up to ``max_records`` records, waiting at most ``timeout`` s for the first."""

    @abstractmethod
    def assignment(self) -> list[TopicPartition]:
        """Return the partitions this consumer currently reads."""

    @abstractmethod
    def committed(
        self, partitions: list[TopicPartition] | None = None
    ) -> dict[TopicPartition, int]:
        """Return the group's committed offsets (next offset to read); -1 where none."""

    @abstractmethod
    def seek(self, offsets: dict[TopicPartition, int]) -> None:
        """Continue reading each partition from the given offset."""

    @abstractmethod
    def close(self) -> None: ...


class Producer(ABC):
    """A producer; transactional when created with a transactional id."""

    @abstractmethod
    def produce(self, message: Outgoing) -> None: ...

    @abstractmethod
    def flush(self, timeout: float = 30.0) -> None:
        """Wait until every produced message is acknowledged (durable in the log): raise
        ``BusError`` (or a subclass) if any of them failed."""

    @abstractmethod
    def serve(self) -> None:
        """Serve the delivery reports that have come in, without waiting: raise ``BusError``
        (or a subclass) if any message failed. A producer that is served as it goes keeps
        its next ``flush`` down to what is still in flight."""

    @abstractmethod
    def begin(self) -> None:
        """Begin a transaction."""

    @abstractmethod
    def commit(self, offsets: dict[TopicPartition, int], consumer: Consumer) -> None:
        """Commit the transaction's messages and ``consumer``'s input offsets atomically."""

    @abstractmethod
    def abort(self) -> None: ...

    @abstractmethod
    def close(self) -> None: ...


class Bus(ABC):
    """A factory of producers and consumers plus the read-only views every service needs."""

    @abstractmethod
    def create_topic(
        self, name: str, partitions: int, config: dict[str, str] | None = None
    ) -> None:
        """Create a topic if it does not exist."""

    @abstractmethod
    def producer(self, transactional_id: str | None = None) -> Producer: ...

    @abstractmethod
    def consumer(
        self,
        group_id: str,
        topics: list[str] | None = None,
        partitions: list[TopicPartition] | None = None,
        instance_id: str | None = None,
        on_revoke: Callable[[list[TopicPartition]], None] | None = None,
    ) -> Consumer:
        """Return a consumer that subscribes to ``topics`` (group-balanced) or reads the
        given ``partitions`` (assigned), starting at the group's committed offsets.

        ``on_revoke`` is called, from inside ``poll_batch`` (so between turns), with the
        partitions a rebalance takes away from a subscribed consumer."""

    @abstractmethod
    def group_offsets(
        self, group_id: str, partitions: list[TopicPartition]
    ) -> dict[TopicPartition, int]:
        """Return what ``group_id`` has committed for ``partitions`` (-1: nothing yet), for
        observers: it does not wait for the group's open transactions, unlike
        ``Consumer.committed``, which must (a crashed producer's pending offsets block it
        until the transaction is fenced or times out)."""

    @abstractmethod
    def end_offsets(self, topic: str) -> dict[int, int]:
        """Return, per partition, the offset after the last message (the high watermark)."""

    @abstractmethod
    def replay(self, topic: str, partition: int, start: int = 0) -> Iterator[Record]:
        """Yield the records of a partition from ``start`` to its current end."""

    def close(self) -> None:  # noqa: B027 (a no-op unless the bus holds a client of its own)
        """Release the clients the bus holds itself (not the producers and consumers it made,
        which their owners close)."""
