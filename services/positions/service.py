"""The position engine's Kafka handler: decode, apply to the core, produce, snapshot, rewind.

Inputs from three topics interleave differently from run to run, and margin checks depend on
that interleaving (a balance against a mark). So, like the wallet, the engine records it: every
transaction also writes, to ``positions.snapshots`` under the key ``positions.turns``, the turns
since the latest snapshot (for each turn, the end offset of every input partition it advanced).
A turn applies its records in one canonical order (``PositionsTopics.inputs`` order, then
offset). Rewinding loads the latest snapshot and re-applies exactly those turns in that order,
so the state after a crash is bit for bit the state whose outputs were committed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

import msgspec
from prometheus_client import Counter, Gauge

from libs.bus import Bus, Outgoing, Record, Snapshot, TopicPartition, snapshot_message
from libs.bus.snapshots import latest_snapshots, offsets_key
from libs.messages import (
    Cause,
    Codec,
    DecodeError,
    IndexPriceTick,
    LiquidationTriggered,
    MatcherEvent,
    WalletEvent,
    encode,
)
from libs.symbols import SymbolSpec, default_symbols
from services.positions.core import Out, PositionsCore
from services.positions.topics import PositionsTopics

log = logging.getLogger(__name__)

SNAPSHOT_KEY = "positions"
TURNS_KEY = "positions.turns"

MALFORMED = Counter(
    "positions_malformed_total", "Input records skipped as malformed or unknown", ["topic"]
)
FAILED = Counter("positions_failed_total", "Inputs the core could not apply (skipped)", ["topic"])
INPUTS = Counter("positions_inputs_total", "Input records applied", ["topic"])
OUTPUTS = Counter("positions_outputs_total", "Messages produced", ["topic"])
SNAPSHOTS = Counter("positions_snapshots_total", "Snapshots produced")
REWINDS = Counter("positions_rewinds_total", "State reloads from snapshot and turn log")
LIQUIDATIONS = Counter("positions_liquidations_total", "Positions sent to liquidation")
OPEN_POSITIONS = Gauge("positions_open", "Open positions", ["symbol"])


def _concrete(base: type) -> tuple[type, ...]:
    found, todo = [], list(base.__subclasses__())
    while todo:
        kind = todo.pop(0)
        subs = kind.__subclasses__()
        (todo.extend(subs) if subs else found.append(kind))
    return tuple(found)


MATCHER_CODEC = Codec(*_concrete(MatcherEvent))
WALLET_CODEC = Codec(*_concrete(WalletEvent))
INDEX_CODEC = Codec(IndexPriceTick)


class TurnLog(msgspec.Struct, array_like=True):
    """The turns applied since snapshot number ``base``: per turn, (input index, end offset)."""

    base: int
    turns: list[list[tuple[int, int]]]


_turns_encoder = msgspec.msgpack.Encoder()
_turns_decoder = msgspec.msgpack.Decoder(TurnLog)


class PositionsService:
    """The handler ``libs.bus.TransactionalLoop`` runs: one instance owns every input."""

    def __init__(
        self,
        bus: Bus,
        topics: PositionsTopics,
        *,
        snapshot_every: int = 1000,
        specs: dict[str, SymbolSpec] | None = None,
        funding_interval_seconds: int | None = None,
        basis_window: int = 60,
    ) -> None:
        self.bus = bus
        self.topics = topics
        self.snapshot_every = snapshot_every
        self.specs = specs or default_symbols()
        self.options = {
            "funding_interval_seconds": funding_interval_seconds,
            "basis_window": basis_window,
        }
        self.inputs: list[TopicPartition] = topics.inputs()
        self._rank = {tp: i for i, tp in enumerate(self.inputs)}
        self.lock = threading.Lock()  # the ops thread reads the state between turns
        self.core = PositionsCore(self.specs, **self.options)  # type: ignore[arg-type]
        self.applied: dict[TopicPartition, int] = {tp: 0 for tp in self.inputs}
        self.snapshot_no = 0
        self.turns: list[list[tuple[int, int]]] = []
        self.since_snapshot = 0
        self.full_publish = True  # after a (re)load: write every user to the read model

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
            produced = self._apply_record(record)
            if produce:
                out += self._outgoing(produced)
        self.turns.append(sorted(ends.items()))
        return out

    def _apply_record(self, record: Record) -> list[Out]:
        topics, label = self.topics, self.topics.logical(record.topic)
        try:
            if record.topic == topics.matcher_events:
                message = MATCHER_CODEC.decode(record.value)
            elif record.topic == topics.wallet_events:
                message = WALLET_CODEC.decode(record.value)
            else:
                message = INDEX_CODEC.decode(record.value)
        except DecodeError as error:
            MALFORMED.labels(label).inc()
            log.warning(
                "skipping malformed %s[%d]@%d: %s",
                record.topic, record.partition, record.offset, error,
            )
            return []
        INPUTS.labels(label).inc()
        cause = Cause(label, record.partition, record.offset)
        try:
            if record.topic == topics.matcher_events:
                return self.core.apply_matcher(message, cause)  # type: ignore[arg-type]
            if record.topic == topics.wallet_events:
                return self.core.apply_wallet(message, cause)  # type: ignore[arg-type]
            return self.core.apply_index(message, cause)  # type: ignore[arg-type]
        except Exception:  # deterministic, so a replay skips it the same way
            FAILED.labels(label).inc()
            log.exception(
                "could not apply %s[%d]@%d", record.topic, record.partition, record.offset
            )
            return []

    def _outgoing(self, produced: list[Out]) -> list[Outgoing]:
        out = []
        for item in produced:
            topic = self.topics.physical(item.topic)
            out.append(Outgoing(topic, encode(item.message), item.key, item.partition))
            OUTPUTS.labels(item.topic).inc()
            if type(item.message) is LiquidationTriggered:
                LIQUIDATIONS.inc()
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
            key=SNAPSHOT_KEY,
            offsets=self._offsets(),
            seq=self.snapshot_no,
            state=self.core.snapshot(),
        )
        return [snapshot_message(self.topics.snapshots, snapshot), self._turns_message()]

    def _load(self) -> None:
        """Set the state to the latest snapshot plus the turns recorded after it."""
        latest = latest_snapshots(self.bus, self.topics.snapshots)
        snapshot, turn_log = latest.get(SNAPSHOT_KEY), latest.get(TURNS_KEY)
        self.core = PositionsCore(self.specs, **self.options)  # type: ignore[arg-type]
        self.applied = {tp: 0 for tp in self.inputs}
        self.snapshot_no = 0
        if snapshot is not None:
            self.core = PositionsCore.restore(self.specs, snapshot.state, **self.options)
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
        self.core.dirty.clear()

    # --- views -------------------------------------------------------------------------------

    def digest_json(self, query: dict[str, str] | None = None) -> dict:
        """The state's digest and what it covers (``/digest`` and ``rebuild`` print this)."""
        with self.lock:
            core = self.core
            for name, market in core.markets.items():
                OPEN_POSITIONS.labels(name).set(len(market.holders))
            return {
                "digest": core.digest(),
                "accounts": len(core.accounts),
                "positions": sum(len(m.holders) for m in core.markets.values()),
                "insurance": core.insurance,
                "offsets": {offsets_key(t, p): o for (t, p), o in self.applied.items() if o},
            }

    def take_dirty(self) -> list[int] | None:
        """Return the users to write to the read model (None: every user), and forget them."""
        with self.lock:
            if self.full_publish:
                self.full_publish = False
                self.core.dirty.clear()
                return None
            dirty, self.core.dirty = sorted(self.core.dirty), set()
            return dirty
