"""A handler for ``JournalLoop`` that journals its turns, so a restart repeats them exactly.

Inputs from several topics interleave differently from run to run, and a service's state can
depend on that interleaving (the wallet's pre-trade check, the position engine's margin checks).
So every turn is recorded in the service's journal (its partition of the journal topic, one
per user shard): for each input partition the turn advanced, its end offset, and the inputs
the turn skipped. A turn applies its records in one canonical order (the order of the input
partitions, then offset).

A turn's journal entry rides with its outputs, as a header (``turns``) on the turn's first
output in each partition: the loop produces them and waits for the acknowledgement before the
next turn goes out, so at most the last turn is ever partly in the log, and whatever part of it
landed names it. Entries are numbered, so their order is known wherever they are found. The
journal topic holds the entries of turns without outputs only: such a turn waits for the next
entry (or for the loop to idle), because nothing outside has seen it, and a restart that
re-reads its inputs in another interleaving contradicts nothing in the log. (librdkafka sends
one partition per produce request, confluentinc/librdkafka#1700, so a journal record of its
own would cost a request per turn.)

Recovery loads the latest snapshot, gathers the entries after it (from the journal topic, and
from the headers of its outputs in every output partition since the snapshot's ends), and
re-applies their turns in order, which gives the state bit for bit and the outputs of those
turns again. The outputs of ours already in each partition (counted by their ``src`` header)
are dropped, and only the rest is produced. So every output is in the log exactly once, and
consumers never see a duplicate.

An input the core cannot apply (its ``apply_record`` or ``outgoing`` raises) is logged, counted
and skipped, atomically: the state goes back to what it was before that input (the base state
of the latest snapshot plus the inputs applied since, kept in memory), and the input is
journaled as skipped, so a recovery or rebuild skips it too without trying again. Nothing of
the service's own I/O runs inside that guard: Kafka errors still stop the turn.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from typing import ClassVar, Generic, Protocol, TypeVar

import msgspec

from libs.bus.base import Bus, Outgoing, Record, TopicPartition
from libs.bus.loop import Turn
from libs.bus.snapshots import Snapshot, latest_snapshots, offsets_key, snapshot_message
from libs.topics import shard_name

log = logging.getLogger(__name__)

Core = TypeVar("Core")  # the pure state the handler drives
Produced = TypeVar("Produced")  # what the core returns for one input


class Tally(Protocol):
    """A counter to bump (a ``prometheus_client.Counter`` fits)."""

    def inc(self, amount: float = 1) -> None: ...


class TurnRecord(msgspec.Struct, array_like=True):
    """One journaled turn: per input it advanced, (input index, end offset); and the inputs
    it skipped because the core could not apply them, as (input index, offset)."""

    ends: list[tuple[int, int]]
    skipped: list[tuple[int, int]] = []


class Entry(msgspec.Struct, array_like=True):
    """What one write journals: its number (1, 2, ... per handler; None: a record from before
    entries were numbered, one turn each, in journal order) and its turns, in order."""

    seq: int | None
    turns: list[TurnRecord]


ENTRY_HEADER = "turns"  # on a turn's first output in each partition: the turn's journal entry

_entry_encoder = msgspec.msgpack.Encoder()
_entry_decoder = msgspec.msgpack.Decoder(Entry)
_turn_decoder = msgspec.msgpack.Decoder(TurnRecord)


def decode_entry(value: bytes) -> Entry:
    """Return one journal entry (a journal record from before entries: one unnumbered turn)."""
    try:
        return _entry_decoder.decode(value)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return Entry(None, [_turn_decoder.decode(value)])


def journaled(
    bus: Bus,
    source: bytes,
    journal: tuple[str, int, int],
    outputs: dict[TopicPartition, int],
    after: int,
) -> tuple[list[TurnRecord], int, dict[TopicPartition, int]]:
    """Read what a handler journaled after a snapshot: its journal partition from ``journal``
    (topic, partition, offset) and each output partition from its offset in ``outputs``.
    Return the turns of the entries numbered above ``after``, in order; the last entry's
    number; and how many records of ``source`` each output partition holds from there."""
    unnumbered: list[TurnRecord] = []
    entries: dict[int, list[TurnRecord]] = {}

    def take(value: bytes, where: str) -> None:
        try:
            entry = decode_entry(value)
        except (msgspec.DecodeError, msgspec.ValidationError):
            log.error("unreadable journal entry in %s: skipped", where)
            return
        if entry.seq is None:
            unnumbered.extend(entry.turns)
        elif entry.seq > after:
            entries.setdefault(entry.seq, entry.turns)

    topic, journal_partition, start = journal
    for record in bus.replay(topic, journal_partition, start):
        take(record.value or b"", f"{topic}@{record.offset}")
    landed: dict[TopicPartition, int] = {}
    for (out_topic, partition), offset in outputs.items():
        n = 0
        for record in bus.replay(out_topic, partition, offset):
            if record.source != source:
                continue
            n += 1
            for name, value in record.headers:
                if name == ENTRY_HEADER:
                    take(value, f"{out_topic}[{partition}]@{record.offset}")
        landed[(out_topic, partition)] = n
    turns, last = unnumbered, after
    for seq in sorted(entries):
        if seq != last + 1:  # one turn in flight at most: the entries found have no gap
            log.error("journal entries %d..%d missing: replaying up to %d", last + 1, seq, last)
            break
        turns += entries[seq]
        last = seq
    return turns, last, landed


class JournaledHandler(ABC, Generic[Core, Produced]):
    """Apply input records to a core in journaled turns; snapshot it; recover it from the log.

    A subclass names its ``snapshot_key`` (and, to count them, the ``snapshots_made`` and
    ``rewinds`` counters) and fills in the hooks: ``new_core``, ``dump_core``, ``load_core``,
    ``apply_record`` and ``outgoing``. ``inputs`` lists the input partitions in their canonical
    order; ``outputs`` the topics ``outgoing`` writes to (each message with its partition set).
    ``shard`` numbers one of several such state machines of a service (one per user partition),
    each with its own snapshot, journal partition and outputs' ``src``.
    ``lock`` guards the state for readers on other threads.
    """

    snapshot_key: ClassVar[str]  # the snapshot's key on the snapshots topic
    snapshots_made: ClassVar[Tally | None] = None
    rewinds: ClassVar[Tally | None] = None

    def __init__(
        self,
        bus: Bus,
        inputs: list[TopicPartition],
        snapshots_topic: str,
        *,
        journal_topic: str,
        outputs: list[str],
        snapshot_every: int,
        snapshot_seconds: float = 0.0,
        shard: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.bus = bus
        self.inputs = inputs
        self.snapshots_topic = snapshots_topic
        self.journal_topic = journal_topic
        # one of several state machines of a service (a user shard): its own snapshot key,
        # src header (``libs.topics.shard_name``) and partition of the journal topic
        self.name = shard_name(self.snapshot_key, shard)
        self.journal_partition = shard
        self.output_topics = outputs
        self.snapshot_every = snapshot_every
        self.snapshot_seconds = snapshot_seconds
        self.clock = clock
        self.source = self.name.encode()  # the src header of every output
        self._rank = {tp: i for i, tp in enumerate(inputs)}
        self.lock = threading.Lock()  # the ops thread reads the state between turns
        self.core: Core = self.new_core()
        self.applied: dict[TopicPartition, int] = {tp: 0 for tp in inputs}
        self.snapshot_no = 0
        self.skipped: list[tuple[int, int]] = []  # (input index, offset) of the current turn
        self._unwritten: list[TurnRecord] = []  # turns without outputs, not journaled yet
        self.entry_seq = 0  # the number of the last journal entry made
        self._skip: set[tuple[int, int]] = set()
        # what the state is rebuilt from when an input fails: the snapshot's state (None: an
        # empty core) and every record applied since, in order (at most a snapshot's worth)
        self._base: bytes | None = None
        self._since_base: list[Record] = []
        self.since_snapshot = 0
        self.last_snapshot = clock()

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

    def count_failure(self, record: Record) -> None:
        """Count an input the core could not apply (the journal has logged and skipped it)."""

    # --- the loop's handler interface -------------------------------------------------------

    def handle(self, records: list[Record]) -> Turn:
        with self.lock:
            fresh = self._fresh(records)
            if not fresh:
                return Turn(None, [])
            self.skipped = []
            ends, out = self._apply_turn(fresh, produce=True)
            self.since_snapshot += len(fresh)
            self._unwritten.append(TurnRecord(ends, self.skipped))
            if not out:
                return Turn(None, [])  # nobody saw it: journaled with the next entry
            return Turn(None, _named(out, self._entry()))  # the outputs carry the entry

    def unwritten(self) -> Outgoing | None:
        """Return the journal record of the turns without outputs not journaled yet (None:
        none)."""
        with self.lock:
            if not self._unwritten:
                return None
            return Outgoing(
                self.journal_topic,
                self._entry(),
                partition=self.journal_partition,
                source=self.source,
            )

    def _entry(self) -> bytes:
        self.entry_seq += 1
        value = _entry_encoder.encode(Entry(self.entry_seq, self._unwritten))
        self._unwritten = []
        return value

    def next_offsets(self) -> dict[TopicPartition, int]:
        with self.lock:
            return dict(self.applied)

    def snapshot_due(self) -> bool:
        return (
            self.since_snapshot >= self.snapshot_every
            and self.clock() - self.last_snapshot >= self.snapshot_seconds
        )

    def snapshot(self) -> list[Outgoing]:
        """Return the snapshot message. The loop calls it when every output so far is durable,
        so the ends of the journal and of the output partitions bound what it covers."""
        with self.lock:
            self.snapshot_no += 1
            self.since_snapshot = 0
            self.last_snapshot = self.clock()
            if self.snapshots_made is not None:
                self.snapshots_made.inc()
            state = self.dump_core(self.core)
            self._base, self._since_base = state, []
            self._unwritten = []  # the snapshot covers them
            snapshot = Snapshot(
                key=self.name,
                offsets=self._offsets(),
                seq=self.snapshot_no,
                state=state,
                journal=self.bus.end_offsets(self.journal_topic)[self.journal_partition],
                entries=self.entry_seq,
                outputs={
                    offsets_key(topic, p): end
                    for topic in self.output_topics
                    for p, end in self.bus.end_offsets(topic).items()
                },
            )
            return [snapshot_message(self.snapshots_topic, snapshot)]

    def recover(self) -> list[Outgoing]:
        """Load the latest snapshot and re-apply the journaled turns: the state the log holds.
        Return the outputs of those turns that are not in the log yet, in order."""
        with self.lock:
            if self.rewinds is not None:
                self.rewinds.inc()
            outputs, landed = self._load(produce=True)
            return self._missing(outputs, landed)

    def rewind(self, committed: dict[TopicPartition, int] | None = None) -> None:
        """Set the state to what the log holds, without producing anything (a rebuild)."""
        with self.lock:
            if self.rewinds is not None:
                self.rewinds.inc()
            self._load(produce=False)

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

    def _apply_turn(
        self, records: list[Record], *, produce: bool
    ) -> tuple[list[tuple[int, int]], list[Outgoing]]:
        out: list[Outgoing] = []
        ends: dict[int, int] = {}
        source = self.source
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
            for m in messages:
                out.append(Outgoing(m.topic, m.value, m.key, m.partition, source))
        return sorted(ends.items()), out

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
        self.skipped.append((index, record.offset))

    # --- snapshots and recovery ---------------------------------------------------------------

    def _offsets(self) -> dict[str, int]:
        return {offsets_key(t, p): off for (t, p), off in self.applied.items()}

    def _load(self, *, produce: bool) -> tuple[list[Outgoing], dict[TopicPartition, int]]:
        """Set the state to the latest snapshot plus the turns journaled after it; return the
        outputs of those turns (when ``produce``) and how many of ours each output partition
        holds after the snapshot."""
        snapshot = latest_snapshots(self.bus, self.snapshots_topic).get(self.name)
        self.core = self.new_core()
        self.applied = {tp: 0 for tp in self.inputs}
        self.snapshot_no = 0
        self._base, self._since_base = None, []
        journal_from, since, after = 0, {}, 0
        if snapshot is not None:
            self.core = self.load_core(snapshot.state)
            self._base = snapshot.state
            self.snapshot_no = snapshot.seq
            journal_from, since, after = snapshot.journal, snapshot.outputs, snapshot.entries
            for key, off in snapshot.offsets.items():
                topic, _, partition = key.rpartition(":")
                if (topic, int(partition)) in self.applied:
                    self.applied[(topic, int(partition))] = off
        start = dict(self.applied)
        self._unwritten = []
        outputs = {
            (topic, p): since.get(offsets_key(topic, p), 0)
            for topic in self.output_topics
            for p in self.bus.end_offsets(topic)
        }
        turns, self.entry_seq, landed = journaled(
            self.bus,
            self.source,
            (self.journal_topic, self.journal_partition, journal_from),
            outputs,
            after,
        )
        self._skip = {s for turn in turns for s in turn.skipped}  # already tuples, as decoded
        replayed = self._replay(turns, produce=produce)
        self._skip = set()
        self.skipped = []
        self.since_snapshot = sum(off - start[tp] for tp, off in self.applied.items())
        self.last_snapshot = self.clock()
        return replayed, landed

    def _replay(self, turns: list[TurnRecord], *, produce: bool) -> list[Outgoing]:
        """Re-apply ``turns`` from the current offsets, each turn exactly as it was journaled."""
        ends: dict[int, int] = {}
        for turn in turns:
            for index, end in turn.ends:
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
        outputs: list[Outgoing] = []
        for turn in turns:
            batch: list[Record] = []
            for index, end in turn.ends:
                records, i = pending[index], cursor[index]
                while i < len(records) and records[i].offset < end:
                    batch.append(records[i])
                    i += 1
                cursor[index] = i
            outputs += self._apply_turn(self._fresh(batch), produce=produce)[1]
        return outputs

    def _missing(
        self, outputs: list[Outgoing], landed: dict[TopicPartition, int]
    ) -> list[Outgoing]:
        """Return ``outputs`` without those already in the log: per partition, the first n of
        ours found after where the snapshot saw it end are these outputs' first n."""
        landed = dict(landed)
        missing = []
        for m in outputs:
            assert m.partition is not None, "journaled outputs name their partition"
            tp = (m.topic, m.partition)
            if landed.get(tp, 0) > 0:
                landed[tp] -= 1
            else:
                missing.append(m)
        if missing:
            log.info(
                "recovery: %d of %d journaled outputs were not in the log",
                len(missing),
                len(outputs),
            )
        return missing


def _named(outputs: list[Outgoing], entry: bytes) -> list[Outgoing]:
    """Put the turn's journal entry on its first output in each partition."""
    seen: set[TopicPartition] = set()
    named = []
    for m in outputs:
        tp = (m.topic, m.partition or 0)
        if tp not in seen:
            seen.add(tp)
            m = Outgoing(m.topic, m.value, m.key, m.partition, m.source, ((ENTRY_HEADER, entry),))
        named.append(m)
    return named
