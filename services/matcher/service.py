"""The matcher's Kafka handler: commands in, events out, one transaction per turn.

Runs inside ``libs.bus.TransactionalLoop`` in the I/O process. Per turn it groups the
consumed commands by symbol, cuts them into batches of at most ``max_batch``, sends them to
the core (``CoreLink``), and returns the events to produce to the symbol's partition of
``matcher.events``, plus a snapshot when one is due, all committed with the input offsets.
A symbol is loaded (snapshot + replay) the first time its commands arrive and after a rewind.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from libs.bus import Bus, Outgoing, Record, Snapshot, TopicPartition, snapshot_message
from libs.bus.snapshots import offsets_key
from services.matcher import recovery
from services.matcher.host import BATCH, DIGEST, LOAD, SNAPSHOT, UNLOAD, pack, unpack
from services.matcher.link import CoreLink

log = logging.getLogger("matcher")


class MatcherMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.commands = Counter(
            "matcher_commands", "commands applied", ["symbol"], registry=registry
        )
        self.events = Counter("matcher_events", "events produced", ["symbol"], registry=registry)
        self.malformed = Counter(
            "matcher_malformed",
            "commands that did not decode (skipped)",
            ["symbol"],
            registry=registry,
        )
        self.failed = Counter(
            "matcher_failed",
            "commands the core could not apply (undone and skipped)",
            ["symbol"],
            registry=registry,
        )
        self.batch_size = Histogram(
            "matcher_batch_size",
            "commands per core step",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
            registry=registry,
        )
        self.step = Histogram(
            "matcher_core_step_seconds",
            "core time per batch",
            buckets=(1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 1e-3, 5e-3, 2e-2),
            registry=registry,
        )
        self.ring = Gauge(
            "matcher_ring_occupancy_bytes", "bytes waiting in a ring", ["ring"], registry=registry
        )
        self.lag = Gauge(
            "matcher_consumer_lag", "commands not yet applied", ["symbol"], registry=registry
        )
        self.snapshots = Counter(
            "matcher_snapshots", "snapshots written", ["symbol"], registry=registry
        )


class MatcherService:
    def __init__(
        self,
        bus: Bus,
        link: CoreLink,
        symbols: list[str],
        *,
        committed: Callable[[list[TopicPartition]], dict[TopicPartition, int]],
        assigned: Callable[[], list[TopicPartition]] | None = None,
        commands_topic: str = "orders.commands",
        events_topic: str = "matcher.events",
        snapshots_topic: str = "matcher.snapshots",
        max_batch: int = 256,
        snapshot_every: int = 50_000,
        snapshot_seconds: float = 60.0,
        metrics: MatcherMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.bus = bus
        self.link = link
        self.symbols = symbols  # by partition: symbols[p] owns partition p
        self.committed = committed
        self.assigned = assigned  # None: every listed symbol may be served (rebuild, tests)
        self.commands_topic = commands_topic
        self.events_topic = events_topic
        self.snapshots_topic = snapshots_topic
        self.max_batch = max_batch
        self.snapshot_every = snapshot_every
        self.snapshot_seconds = snapshot_seconds
        self.metrics = metrics or MatcherMetrics(CollectorRegistry())
        self.clock = clock
        self.loaded: set[str] = set()
        self._since_snapshot: dict[str, int] = {}
        self._last_snapshot: dict[str, float] = {}
        self._keys = {s: s.encode() for s in symbols}

    # -- the loop's handler ---------------------------------------------------------------
    def handle(self, records: list[Record]) -> list[Outgoing]:
        by_partition: dict[int, list[list]] = {}
        for record in records:
            by_partition.setdefault(record.partition, []).append(
                [record.offset, record.value or b""]
            )
        frames: list[bytes] = []
        for partition, items in by_partition.items():
            symbol = self.symbols[partition]
            self.ensure_loaded(symbol, partition)
            for start in range(0, len(items), self.max_batch):
                batch = items[start : start + self.max_batch]
                frames.append(pack([BATCH, symbol, batch, True]))
                self.metrics.batch_size.observe(len(batch))
        outgoing: list[Outgoing] = []
        metrics = self.metrics
        for reply in self.link.call(frames):
            _, symbol, events, _last_offset, _seq, step_ns, malformed, failed = unpack(reply)
            partition = self._partition(symbol)
            key = self._keys[symbol]
            topic = self.events_topic
            outgoing += [Outgoing(topic, event, key, partition) for event in events]
            metrics.events.labels(symbol).inc(len(events))
            metrics.step.observe(step_ns / 1e9)
            if malformed:
                metrics.malformed.labels(symbol).inc(malformed)
                log.warning("%s: skipped %d malformed command(s)", symbol, malformed)
            if failed:
                metrics.failed.labels(symbol).inc(len(failed))
                log.error(
                    "%s: skipped command(s) the core could not apply: %s[%d]@%s",
                    symbol,
                    self.commands_topic,
                    partition,
                    failed,
                )
        for partition, items in by_partition.items():
            symbol = self.symbols[partition]
            metrics.commands.labels(symbol).inc(len(items))
            self._since_snapshot[symbol] = self._since_snapshot.get(symbol, 0) + len(items)
            if self._snapshot_due(symbol):
                outgoing.append(self._snapshot(symbol, partition))
        inbound, outbound = self.link.occupancy()
        metrics.ring.labels("inbound").set(inbound)
        metrics.ring.labels("outbound").set(outbound)
        return outgoing

    def rewind(self, committed: dict[TopicPartition, int]) -> None:
        """The turn's transaction failed: drop the books, reload them from the log on demand."""
        self._unload(list(self.loaded))

    def revoked(self, partitions: list[TopicPartition]) -> None:
        """A rebalance moved these partitions to another instance: drop their books."""
        self._unload([self.symbols[p] for t, p in partitions if t == self.commands_topic])

    def _unload(self, symbols: list[str]) -> None:
        for symbol in symbols:
            if symbol in self.loaded:
                self.link.call([pack([UNLOAD, symbol])])
                self.loaded.discard(symbol)
                log.info("%s unloaded", symbol)

    # -- loading and snapshots ------------------------------------------------------------
    def _partition(self, symbol: str) -> int:
        return self.symbols.index(symbol)

    def ensure_loaded(self, symbol: str, partition: int) -> None:
        if symbol in self.loaded:
            return
        tp = (self.commands_topic, partition)
        committed = max(self.committed([tp]).get(tp, -1), 0)
        started = time.monotonic()
        last_offset, seq, replayed = self.load(symbol, partition, until=committed)
        if committed and last_offset < committed - 1:
            raise RuntimeError(
                f"{symbol}: replay reached offset {last_offset}, committed input is {committed}"
            )
        self.loaded.add(symbol)
        self._since_snapshot[symbol] = 0
        self._last_snapshot[symbol] = self.clock()
        log.info(
            "%s loaded: snapshot + %d replayed commands in %.2fs, offset %d, seq %d",
            symbol,
            replayed,
            time.monotonic() - started,
            last_offset,
            seq,
        )

    def load(self, symbol: str, partition: int, until: int | None = None) -> tuple[int, int, int]:
        """Restore ``symbol`` from its snapshot and replay its commands up to ``until``
        (exclusive; None = every command a recorded batch covers). Outputs are suppressed:
        they were committed when these commands first ran. Return (last offset, seq, replayed).
        """
        plan = recovery.plan(
            self.bus,
            symbol,
            partition,
            commands_topic=self.commands_topic,
            events_topic=self.events_topic,
            snapshots_topic=self.snapshots_topic,
        )
        state = plan.snapshot.state if plan.snapshot else None
        _, _, last_offset, seq = unpack(self.link.call([pack([LOAD, symbol, state])])[0])
        ranges = recovery.recorded_batches(
            self.bus, self.events_topic, partition, plan.events_from, plan.next_offset
        )
        if until is None:
            until = ranges[-1][1] + 1 if ranges else plan.next_offset
        frames = [
            pack([BATCH, symbol, batch, False])
            for batch in recovery.replay_batches(
                self.bus, self.commands_topic, partition, plan.next_offset, ranges, until
            )
        ]
        replayed = 0
        for start in range(0, len(frames), 64):
            for reply in self.link.call(frames[start : start + 64]):
                _, _, _, last_offset, seq, *_ = unpack(reply)
            replayed += min(64, len(frames) - start)
        return last_offset, seq, replayed

    def _snapshot_due(self, symbol: str) -> bool:
        return (
            self._since_snapshot.get(symbol, 0) >= self.snapshot_every
            or self.clock() - self._last_snapshot.get(symbol, 0.0) >= self.snapshot_seconds
        )

    def _snapshot(self, symbol: str, partition: int) -> Outgoing:
        _, _, state, last_offset, seq = unpack(self.link.call([pack([SNAPSHOT, symbol])])[0])
        # Events of this turn land at or after the current end: a replay from this snapshot
        # finds every later batch boundary from there.
        events_end = self.bus.end_offsets(self.events_topic)[partition]
        snapshot = Snapshot(
            key=symbol,
            offsets={
                offsets_key(self.commands_topic, partition): last_offset + 1,
                offsets_key(self.events_topic, partition): events_end,
            },
            seq=seq,
            state=state,
        )
        self._since_snapshot[symbol] = 0
        self._last_snapshot[symbol] = self.clock()
        self.metrics.snapshots.labels(symbol).inc()
        return snapshot_message(self.snapshots_topic, snapshot)

    def digest(self, symbol: str) -> dict:
        """Return {"symbol", "digest", "offset"} of the live book (loading it if needed)."""
        if symbol not in self.symbols or (
            self.assigned is not None
            and (self.commands_topic, self._partition(symbol)) not in self.assigned()
        ):
            raise LookupError(f"{symbol!r} is not matched by this instance")
        self.ensure_loaded(symbol, self._partition(symbol))
        _, _, digest, last_offset = unpack(self.link.call([pack([DIGEST, symbol])])[0])
        return {"symbol": symbol, "digest": digest, "offset": last_offset}
