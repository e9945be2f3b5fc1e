"""The wallet's Kafka handler: decode, apply to the core, produce, snapshot, rewind.

Inputs from three topics interleave differently from run to run, and the pre-trade check
depends on that interleaving. So the wallet records it: every transaction also writes, to
``wallet.snapshots`` under the key ``wallet.turns``, the list of turns since the latest
snapshot (for each turn, the end offset of every input partition it advanced). A turn applies
its records in one canonical order (``WalletTopics.inputs`` order, then offset). Rewinding
loads the latest snapshot and re-applies exactly those turns in that order, so the state
after a crash is bit for bit the state whose outputs were committed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

import msgspec
from prometheus_client import Counter

from libs.bus import Bus, Outgoing, Record, Snapshot, TopicPartition, snapshot_message
from libs.bus.snapshots import latest_snapshots, offsets_key
from libs.messages import (
    AmendOrder,
    CancelAll,
    CancelOrder,
    Cause,
    Codec,
    DecodeError,
    Deposit,
    MatcherEvent,
    Message,
    PlaceOrder,
    PositionEvent,
    SetLeverage,
    WalletEvent,
    Withdraw,
    encode,
)
from libs.topics import symbol_partition, user_partition
from services.wallet.core import WalletCore, digest, dump, load
from services.wallet.core.engine import _user_of
from services.wallet.topics import WalletTopics

log = logging.getLogger(__name__)

SNAPSHOT_KEY = "wallet"
TURNS_KEY = "wallet.turns"

MALFORMED = Counter(
    "wallet_malformed_total", "Input records skipped as malformed or unknown", ["topic"]
)
FAILED = Counter("wallet_failed_total", "Inputs the core could not apply (skipped)", ["topic"])
INPUTS = Counter("wallet_inputs_total", "Input records applied", ["topic"])
OUTPUTS = Counter("wallet_outputs_total", "Messages produced", ["topic"])
SNAPSHOTS = Counter("wallet_snapshots_total", "Snapshots produced")
REWINDS = Counter("wallet_rewinds_total", "State reloads from snapshot and turn log")

REQUEST_CODEC = Codec(
    PlaceOrder, CancelOrder, CancelAll, AmendOrder, Deposit, Withdraw, SetLeverage
)


def _concrete(base: type) -> tuple[type, ...]:
    found, todo = [], list(base.__subclasses__())
    while todo:
        kind = todo.pop(0)
        subs = kind.__subclasses__()
        (todo.extend(subs) if subs else found.append(kind))
    return tuple(found)


MATCHER_CODEC = Codec(*_concrete(MatcherEvent))
POSITION_CODEC = Codec(*_concrete(PositionEvent))


class TurnLog(msgspec.Struct, array_like=True):
    """The turns applied since snapshot number ``base``: per turn, (input index, end offset)."""

    base: int
    turns: list[list[tuple[int, int]]]


_turns_encoder = msgspec.msgpack.Encoder()
_turns_decoder = msgspec.msgpack.Decoder(TurnLog)


class WalletService:
    """The handler ``libs.bus.TransactionalLoop`` runs: one instance owns every input partition."""

    def __init__(self, bus: Bus, topics: WalletTopics, *, snapshot_every: int = 1000) -> None:
        self.bus = bus
        self.topics = topics
        self.snapshot_every = snapshot_every
        self.inputs: list[TopicPartition] = topics.inputs()
        self._rank = {tp: i for i, tp in enumerate(self.inputs)}
        self._codecs = {
            topics.requests: REQUEST_CODEC,
            topics.matcher_events: MATCHER_CODEC,
            topics.position_events: POSITION_CODEC,
        }
        self.lock = threading.Lock()  # the ops thread reads the state between turns
        self.core = WalletCore()
        self.applied: dict[TopicPartition, int] = {tp: 0 for tp in self.inputs}
        self.snapshot_no = 0
        self.turns: list[list[tuple[int, int]]] = []
        self.since_snapshot = 0
        self.dirty: set[int] = set()  # users whose read model changed since the last publish
        self.full_publish = True  # after a (re)load: write every user

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
            REWINDS.inc()
            self._load()
            behind = {tp: off for tp, off in committed.items() if off > self.applied.get(tp, 0)}
            if behind:
                log.error("committed offsets beyond the turn log (state may lag): %s", behind)
            self.full_publish = True

    # --- turns -------------------------------------------------------------------------------

    def _fresh(self, records: Iterable[Record]) -> list[Record]:
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
            ends[self._rank[tp]] = record.offset + 1
            self.applied[tp] = record.offset + 1
            messages = self._apply_record(record)
            if produce:
                out += self._outgoing(messages)
        self.turns.append(sorted(ends.items()))
        return out

    def _apply_record(self, record: Record) -> list[Message]:
        label = self.topics.logical(record.topic)
        try:
            message = self._codecs[record.topic].decode(record.value)
        except DecodeError as error:
            MALFORMED.labels(label).inc()
            log.warning(
                "skipping malformed %s[%d]@%d: %s",
                record.topic,
                record.partition,
                record.offset,
                error,
            )
            return []
        INPUTS.labels(label).inc()
        try:
            messages = self.core.apply(
                Cause(record.topic, record.partition, record.offset), message
            )
        except Exception:  # deterministic, so a replay skips it the same way
            FAILED.labels(label).inc()
            log.exception(
                "could not apply %s[%d]@%d", record.topic, record.partition, record.offset
            )
            return []
        for m in messages:
            if isinstance(m, WalletEvent):
                self.dirty.add(_user_of(m))
        return messages

    def _outgoing(self, messages: list[Message]) -> list[Outgoing]:
        out = []
        for m in messages:
            if isinstance(m, WalletEvent):
                user = _user_of(m)
                topic = self.topics.events
                out.append(Outgoing(topic, encode(m), str(user).encode(), user_partition(user)))
            else:  # a command for the symbol's book
                symbol = m.symbol  # type: ignore[attr-defined]
                topic = self.topics.commands
                out.append(Outgoing(topic, encode(m), symbol.encode(), symbol_partition(symbol)))
            OUTPUTS.labels(self.topics.logical(topic)).inc()
        return out

    # --- snapshots and the turn log ---------------------------------------------------------

    def _offsets(self) -> dict[str, int]:
        return {offsets_key(t, p): off for (t, p), off in self.applied.items()}

    def _turns_message(self) -> Outgoing:
        return snapshot_message(
            self.topics.snapshots,
            Snapshot(
                key=TURNS_KEY,
                offsets=self._offsets(),
                seq=self.snapshot_no,
                state=_turns_encoder.encode(TurnLog(self.snapshot_no, self.turns)),
            ),
        )

    def _snapshot(self) -> list[Outgoing]:
        self.snapshot_no += 1
        self.turns = []
        self.since_snapshot = 0
        SNAPSHOTS.inc()
        snapshot = Snapshot(
            key=SNAPSHOT_KEY, offsets=self._offsets(), seq=self.snapshot_no, state=dump(self.core)
        )
        return [snapshot_message(self.topics.snapshots, snapshot), self._turns_message()]

    def _load(self) -> None:
        """Set the state to the latest snapshot plus the turns recorded after it."""
        latest = latest_snapshots(self.bus, self.topics.snapshots)
        snapshot, turn_log = latest.get(SNAPSHOT_KEY), latest.get(TURNS_KEY)
        self.core = WalletCore()
        self.applied = {tp: 0 for tp in self.inputs}
        self.snapshot_no = 0
        if snapshot is not None:
            self.core = load(snapshot.state, WalletCore())
            self.snapshot_no = snapshot.seq
            for key, off in snapshot.offsets.items():
                topic, _, partition = key.rpartition(":")
                if (topic, int(partition)) in self.applied:
                    self.applied[(topic, int(partition))] = off
        self.turns = []
        turns: list[list[tuple[int, int]]] = []
        if turn_log is not None:
            recorded = _turns_decoder.decode(turn_log.state)
            if recorded.base == self.snapshot_no:
                turns = recorded.turns
        self._replay(turns)
        self.since_snapshot = sum(
            off - (snapshot.offsets.get(offsets_key(*tp), 0) if snapshot else 0)
            for tp, off in self.applied.items()
        )

    def _replay(self, turns: list[list[tuple[int, int]]]) -> None:
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
        cursor = {index: 0 for index in pending}
        for turn in turns:
            batch: list[Record] = []
            for index, end in turn:
                records, i = pending[index], cursor[index]
                while i < len(records) and records[i].offset < end:
                    batch.append(records[i])
                    i += 1
                cursor[index] = i
            self._apply_turn(self._fresh(batch), produce=False)
        self.dirty.clear()

    # --- views -------------------------------------------------------------------------------

    def digest_json(self, query: dict[str, str] | None = None) -> dict:
        """The state's digest and what it covers (``/digest`` and ``rebuild`` print this)."""
        with self.lock:
            return {
                "digest": digest(self.core),
                "entries": self.core.ledger.entry_id,
                "users": len(self.core.users()),
                "open_holds": len(self.core.holds.by_order),
                "offsets": {offsets_key(t, p): o for (t, p), o in self.applied.items() if o},
            }

    def take_dirty(self) -> list[int] | None:
        """Return the users to write to the read model (None: every user), and forget them."""
        with self.lock:
            if self.full_publish:
                self.full_publish = False
                self.dirty.clear()
                return None
            dirty, self.dirty = sorted(self.dirty), set()
            return dirty
