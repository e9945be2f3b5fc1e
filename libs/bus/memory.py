"""An in-memory bus with Kafka's semantics where the services rely on them:
per-partition order, every written record visible at once (read_uncommitted: an aborted
transaction takes nothing back), offsets committed with the transaction, and fencing of a
zombie producer by a new one with the same id (its every later write fails)."""

from __future__ import annotations

import threading
import zlib
from collections.abc import Callable, Iterator

from libs.bus.base import (
    Bus,
    BusError,
    Consumer,
    FencedError,
    Outgoing,
    Producer,
    Record,
    TopicPartition,
)


class MemoryBus(Bus):
    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._logs: dict[str, list[list[Record]]] = {}
        self._committed: dict[str, dict[TopicPartition, int]] = {}
        self._epochs: dict[str, int] = {}

    # -- admin -----------------------------------------------------------------------------
    def create_topic(
        self, name: str, partitions: int, config: dict[str, str] | None = None
    ) -> None:
        with self._lock:
            self._logs.setdefault(name, [[] for _ in range(partitions)])

    def group_offsets(
        self, group_id: str, partitions: list[TopicPartition]
    ) -> dict[TopicPartition, int]:
        with self._lock:
            group = self._committed.get(group_id, {})
            return {tp: group.get(tp, -1) for tp in partitions}

    def end_offsets(self, topic: str) -> dict[int, int]:
        with self._lock:
            return {p: len(log) for p, log in enumerate(self._partitions(topic))}

    def replay(self, topic: str, partition: int, start: int = 0) -> Iterator[Record]:
        with self._lock:
            records = list(self._partitions(topic)[partition][start:])
        yield from records

    def producer(self, transactional_id: str | None = None) -> Producer:
        return MemoryProducer(self, transactional_id)

    def consumer(
        self,
        group_id: str,
        topics: list[str] | None = None,
        partitions: list[TopicPartition] | None = None,
        instance_id: str | None = None,
        on_revoke: Callable[[list[TopicPartition]], None] | None = None,
    ) -> Consumer:
        if partitions is None:
            # one member per group here: a subscription gets every partition
            partitions = [(t, p) for t in topics or [] for p in range(len(self._partitions(t)))]
        return MemoryConsumer(self, group_id, partitions)

    # -- internals used by producer and consumer --------------------------------------------
    def _partitions(self, topic: str) -> list[list[Record]]:
        try:
            return self._logs[topic]
        except KeyError:
            raise BusError(f"unknown topic {topic!r}") from None

    def _append(self, messages: list[Outgoing]) -> None:
        with self._lock:
            for message in messages:
                log = self._partitions(message.topic)
                partition = message.partition
                if partition is None:
                    partition = zlib.crc32(message.key or b"") % len(log)
                part = log[partition]
                part.append(
                    Record(
                        message.topic,
                        partition,
                        len(part),
                        message.key,
                        message.value,
                        message.source,
                        message.headers,
                    )
                )
            self._lock.notify_all()

    def _fence(self, transactional_id: str) -> int:
        with self._lock:
            epoch = self._epochs.get(transactional_id, 0) + 1
            self._epochs[transactional_id] = epoch
            return epoch

    def _check_epoch(self, transactional_id: str, epoch: int) -> None:
        if self._epochs.get(transactional_id) != epoch:
            raise FencedError(f"producer {transactional_id!r} was fenced by a newer instance")

    def _write(self, transactional_id: str, epoch: int, message: Outgoing) -> None:
        with self._lock:
            self._check_epoch(transactional_id, epoch)
            self._append([message])

    def _commit(
        self,
        transactional_id: str,
        epoch: int,
        group_id: str,
        offsets: dict[TopicPartition, int],
    ) -> None:
        with self._lock:
            self._check_epoch(transactional_id, epoch)
            self._committed.setdefault(group_id, {}).update(offsets)


class MemoryProducer(Producer):
    def __init__(self, bus: MemoryBus, transactional_id: str | None) -> None:
        self._bus = bus
        self._id = transactional_id
        self._epoch = bus._fence(transactional_id) if transactional_id else 0
        self._open = False
        # fault injection for tests: the next produce fails (nothing written) or the next
        # flush or commit fails (what was produced stays written, as in Kafka)
        self.fail_next_produce: BusError | None = None
        self.fail_next_flush: BusError | None = None
        self.fail_next_commit: BusError | None = None

    def produce(self, message: Outgoing) -> None:
        failure, self.fail_next_produce = self.fail_next_produce, None
        if failure is not None:
            raise failure
        if self._id is None:
            self._bus._append([message])
        elif not self._open:
            raise BusError("produce outside a transaction")
        else:
            self._bus._write(self._id, self._epoch, message)

    def flush(self, timeout: float = 30.0) -> None:
        failure, self.fail_next_flush = self.fail_next_flush, None
        if failure is not None:
            raise failure

    def serve(self) -> None:
        pass  # every write lands (or fails) in produce: no report comes later

    def begin(self) -> None:
        if self._id is None:
            raise BusError("not a transactional producer")
        self._open = True

    def commit(self, offsets: dict[TopicPartition, int], consumer: Consumer) -> None:
        if not self._open:
            raise BusError("commit outside a transaction")
        failure, self.fail_next_commit = self.fail_next_commit, None
        if failure is not None:
            raise failure
        assert isinstance(consumer, MemoryConsumer)
        self._open = False
        self._bus._commit(self._id or "", self._epoch, consumer.group_id, offsets)

    def abort(self) -> None:
        self._open = False

    def close(self) -> None:
        self._open = False


class MemoryConsumer(Consumer):
    def __init__(self, bus: MemoryBus, group_id: str, partitions: list[TopicPartition]) -> None:
        self._bus = bus
        self.group_id = group_id
        self._positions: dict[TopicPartition, int] = {}
        self._assignment = list(partitions)
        committed = self.committed()
        for tp in self._assignment:
            self._positions[tp] = max(committed[tp], 0)

    def poll_batch(self, max_records: int, timeout: float) -> list[Record]:
        with self._bus._lock:
            batch = self._take(max_records)
            if not batch and timeout > 0:
                self._bus._lock.wait(timeout)
                batch = self._take(max_records)
        return batch

    def _take(self, max_records: int) -> list[Record]:
        batch: list[Record] = []
        for tp in self._assignment:
            log = self._bus._partitions(tp[0])[tp[1]]
            position = self._positions[tp]
            taken = log[position : position + max_records - len(batch)]
            batch.extend(taken)
            self._positions[tp] = position + len(taken)
            if len(batch) >= max_records:
                break
        return batch

    def assignment(self) -> list[TopicPartition]:
        return list(self._assignment)

    def committed(
        self, partitions: list[TopicPartition] | None = None
    ) -> dict[TopicPartition, int]:
        with self._bus._lock:
            group = self._bus._committed.get(self.group_id, {})
            return {tp: group.get(tp, -1) for tp in partitions or self._assignment}

    def seek(self, offsets: dict[TopicPartition, int]) -> None:
        for tp, offset in offsets.items():
            if tp not in self._positions:
                raise BusError(f"seek on unassigned partition {tp}")
            self._positions[tp] = max(offset, 0)

    def close(self) -> None:
        self._assignment = []


__all__ = ["MemoryBus", "MemoryConsumer", "MemoryProducer"]
