"""A handler for ``TransactionalLoop`` that records its turns, so a rewind repeats them exactly.

Inputs from several topics interleave differently from run to run, and a service's state can
depend on that interleaving (the wallet's pre-trade check, the position engine's margin checks).
So the handler records it: every transaction also writes, to the snapshot topic under the turns
key, the list of turns since the latest snapshot (for each turn, the end offset of every input
partition it advanced). A turn applies its records in one canonical order (the order of the
input partitions, then offset). Rewinding loads the latest snapshot and re-applies exactly those
turns in that order, so the state after a crash is bit for bit the state whose outputs were
committed.

An input the core cannot apply (its ``apply_record`` or ``outgoing`` raises) is logged, counted
and skipped, atomically: the state goes back to what it was before that input (the base state
of the latest snapshot plus the inputs applied since, kept in memory), and the input is
recorded in the turn log as skipped, so a rewind or rebuild skips it too without trying again.
Nothing of the service's own I/O runs inside that guard: Kafka errors still stop the turn.
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import ClassVar, Generic, Protocol, TypeVar

import msgspec

from libs.bus.base import Bus, Outgoing, Record, TopicPartition
from libs.bus.snapshots import Snapshot, latest_snapshots, offsets_key, snapshot_message

log = logging.getLogger(__name__)

Core = TypeVar("Core")  # the pure state the handler drives
Produced = TypeVar("Produced")  # what the core returns for one input


class Tally(Protocol):
    """A counter to bump (a ``prometheus_client.Counter`` fits)."""

    def inc(self, amount: float = 1) -> None: ...


class TurnLog(msgspec.Struct, array_like=True):
    """The turns applied since snapshot number ``base``: per turn, (input index, end offset);
    and the inputs skipped since then because the core could not apply them."""

    base: int
    turns: list[list[tuple[int, int]]]
    skipped: list[tuple[int, int]] = []  # (input index, offset)


_turns_encoder = msgspec.msgpack.Encoder()
_turns_decoder = msgspec.msgpack.Decoder(TurnLog)


class JournaledHandler(ABC, Generic[Core, Produced]):
    """Apply input records to a core in recorded turns; snapshot it; rewind to the committed state.

    A subclass names its ``snapshot_key`` and ``turns_key`` (and, to count them, the
    ``snapshots_made`` and ``rewinds`` counters) and fills in the hooks: ``new_core``,
    ``dump_core``, ``load_core``, ``apply_record`` and ``outgoing`` (and ``after_replay`` if
    replayed inputs leave marks to clear). ``inputs`` lists the input partitions in their
    canonical order. ``lock`` guards the state for readers on other threads.
    """

    snapshot_key: ClassVar[str]  # the full snapshot's key on the snapshots topic
    turns_key: ClassVar[str]  # the turn log's key on the snapshots topic
    snapshots_made: ClassVar[Tally | None] = None
    rewinds: ClassVar[Tally | None] = None

    def __init__(
        self,
        bus: Bus,
        inputs: list[TopicPartition],
        snapshots_topic: str,
        *,
        snapshot_every: int,
    ) -> None:
        self.bus = bus
        self.inputs = inputs
        self.snapshots_topic = snapshots_topic
        self.snapshot_every = snapshot_every
        self._rank = {tp: i for i, tp in enumerate(inputs)}
        self.lock = threading.Lock()  # the ops thread reads the state between turns
        self.core: Core = self.new_core()
        self.applied: dict[TopicPartition, int] = {tp: 0 for tp in inputs}
        self.snapshot_no = 0
        self.turns: list[list[tuple[int, int]]] = []
        self.skipped: list[tuple[int, int]] = []  # (input index, offset) since the snapshot
        self._skip: set[tuple[int, int]] = set()
        # what the state is rebuilt from when an input fails: the snapshot's state (None: an
        # empty core) and every record applied since, in order (at most a snapshot's worth)
        self._base: bytes | None = None
        self._since_base: list[Record] = []
        self.since_snapshot = 0
        self.full_publish = True  # after a (re)load: write every user to the read model

    # --- hooks -------------------------------------------------------------------------------

    @abstractmethod
    def new_core(self) -> Core:
        """Return the empty state."""

    @abstractmethod
    def dump_core(self, core: Core) -> bytes:
        """Return ``core`` as the bytes of a snapshot."""

    @abstractmethod
    def load_core(self, state: bytes) -> Core:
        """Return the state a snapshot's bytes hold."""

    @abstractmethod
    def apply_record(self, record: Record) -> list[Produced]:
        """Decode ``record``, apply it to ``self.core`` and return what the core produced.

        Skip (and count) what cannot be decoded; this must be deterministic, as a replay
        applies the same records again. An exception is left to the journal, which undoes
        whatever the core did for this record and skips it (see ``count_failure``)."""

    @abstractmethod
    def outgoing(self, produced: list[Produced]) -> list[Outgoing]:
        """Return the messages to produce for what one record produced (live turns only)."""

    def after_replay(self) -> None:
        """Clear what the replayed turns marked (a reload publishes everything anyway)."""

    def count_failure(self, record: Record) -> None:
        """Count an input the core could not apply (the journal has logged and skipped it)."""

    # --- the loop's handler interface -------------------------------------------------------

    def handle(self, records: list[Record]) -> list[Outgoing]:
        with self.lock:
            fresh = self._fresh(records)
            if not fresh:
                return []
            out = self._apply_turn(fresh, produce=True)
            self.since_snapshot += len(fresh)
            if self.since_snapshot >= self.snapshot_every:
                out += self._snapshot()
            else:
                out.append(self._turns_message())
            return out

    def rewind(self, committed: dict[TopicPartition, int]) -> None:
        """Reload the latest snapshot and re-apply the recorded turns: the committed state."""
        with self.lock:
            if self.rewinds is not None:
                self.rewinds.inc()
            self._load()
            behind = {tp: off for tp, off in committed.items() if off > self.applied.get(tp, 0)}
            if behind:
                log.error("committed offsets beyond the turn log (state may lag): %s", behind)
            self.full_publish = True

    # --- turns -------------------------------------------------------------------------------

    def _fresh(self, records: Iterable[Record]) -> list[Record]:
        """Return the records not applied yet, in the canonical order (input rank, offset)."""
        rank, applied = self._rank, self.applied
        fresh = [
            r
            for r in records
            if (r.topic, r.partition) in rank and r.offset >= applied[(r.topic, r.partition)]
        ]
        fresh.sort(key=lambda r: (rank[(r.topic, r.partition)], r.offset))
        return fresh

    def _apply_turn(self, records: list[Record], *, produce: bool) -> list[Outgoing]:
        out: list[Outgoing] = []
        ends: dict[int, int] = {}
        for record in records:
            tp = (record.topic, record.partition)
            index = self._rank[tp]
            ends[index] = record.offset + 1
            self.applied[tp] = record.offset + 1
            if (index, record.offset) in self._skip:
                continue  # it failed when it first came: skipped the same way again
            try:
                produced = self.apply_record(record)
                # encoding is part of applying: an event no consumer could read fails here
                messages = self.outgoing(produced) if produce else []
            except Exception:
                self._skip_failed(record, index)
                continue
            self._since_base.append(record)
            out += messages
        self.turns.append(sorted(ends.items()))
        return out

    def _skip_failed(self, record: Record, index: int) -> None:
        """Log and count ``record``, put the state back to before it, and skip it for good."""
        log.exception(
            "could not apply %s[%d]@%d: skipped, state restored to before it",
            record.topic,
            record.partition,
            record.offset,
        )
        self.count_failure(record)
        self.core = self.new_core() if self._base is None else self.load_core(self._base)
        for earlier in self._since_base:  # each applied cleanly before, so it does again
            self.apply_record(earlier)
        self.after_replay()
        self.full_publish = True
        self.skipped.append((index, record.offset))
        self._skip.add((index, record.offset))

    # --- snapshots and the turn log ---------------------------------------------------------

    def _offsets(self) -> dict[str, int]:
        return {offsets_key(t, p): off for (t, p), off in self.applied.items()}

    def _turns_message(self) -> Outgoing:
        return snapshot_message(
            self.snapshots_topic,
            Snapshot(
                key=self.turns_key,
                offsets=self._offsets(),
                seq=self.snapshot_no,
                state=_turns_encoder.encode(TurnLog(self.snapshot_no, self.turns, self.skipped)),
            ),
        )

    def _snapshot(self) -> list[Outgoing]:
        self.snapshot_no += 1
        self.turns = []
        self._set_skipped([])
        self.since_snapshot = 0
        if self.snapshots_made is not None:
            self.snapshots_made.inc()
        state = self.dump_core(self.core)
        self._base, self._since_base = state, []
        snapshot = Snapshot(
            key=self.snapshot_key,
            offsets=self._offsets(),
            seq=self.snapshot_no,
            state=state,
        )
        return [snapshot_message(self.snapshots_topic, snapshot), self._turns_message()]

    def _load(self) -> None:
        """Set the state to the latest snapshot plus the turns recorded after it."""
        latest = latest_snapshots(self.bus, self.snapshots_topic)
        snapshot, turn_log = latest.get(self.snapshot_key), latest.get(self.turns_key)
        self.core = self.new_core()
        self.applied = {tp: 0 for tp in self.inputs}
        self.snapshot_no = 0
        self._base, self._since_base = None, []
        if snapshot is not None:
            self.core = self.load_core(snapshot.state)
            self._base = snapshot.state
            self.snapshot_no = snapshot.seq
            for key, off in snapshot.offsets.items():
                topic, _, partition = key.rpartition(":")
                if (topic, int(partition)) in self.applied:
                    self.applied[(topic, int(partition))] = off
        self.turns = []
        turns: list[list[tuple[int, int]]] = []
        skipped: list[tuple[int, int]] = []
        if turn_log is not None:
            recorded = _turns_decoder.decode(turn_log.state)
            if recorded.base == self.snapshot_no:
                turns, skipped = recorded.turns, [tuple(s) for s in recorded.skipped]
        self._set_skipped(skipped)
        self._replay(turns)
        self.since_snapshot = sum(
            off - (snapshot.offsets.get(offsets_key(*tp), 0) if snapshot else 0)
            for tp, off in self.applied.items()
        )

    def _set_skipped(self, skipped: list[tuple[int, int]]) -> None:
        self.skipped = list(skipped)
        self._skip = set(skipped)

    def _replay(self, turns: list[list[tuple[int, int]]]) -> None:
        """Re-apply ``turns`` from the current offsets, each turn exactly as it was recorded."""
        ends: dict[int, int] = {}
        for turn in turns:
            for index, end in turn:
                ends[index] = max(ends.get(index, 0), end)
        pending: dict[int, list[Record]] = {}
        for index, end in ends.items():
            topic, partition = self.inputs[index]
            start = self.applied[(topic, partition)]
            records = []
            for record in self.bus.replay(topic, partition, start):
                if record.offset >= end:
                    break
                records.append(record)
            pending[index] = records
        cursor = dict.fromkeys(pending, 0)
        for turn in turns:
            batch: list[Record] = []
            for index, end in turn:
                records, i = pending[index], cursor[index]
                while i < len(records) and records[i].offset < end:
                    batch.append(records[i])
                    i += 1
                cursor[index] = i
            self._apply_turn(self._fresh(batch), produce=False)
        self.after_replay()
