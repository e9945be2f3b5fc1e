"""The matcher's Kafka side: commands in, events out, exactly once, no transaction per turn.

Runs in the I/O process. Per turn it polls commands, groups them by symbol, cuts them into
batches of at most ``max_batch``, sends them to the core (``CoreLink``) and produces each
batch's events to the symbol's partition of ``matcher.events`` at once: consumers read
uncommitted, so an event is a fact as soon as it is in the log.

Each owned symbol has a ``Lane``: ONE transactional producer whose id names the deployment
and the symbol, so only one writer of a symbol's events can live. It is created when the
symbol is loaded, before the log is read (that is the fence: every later write of a zombie
with the same id fails), and closed when the symbol is dropped. Its transaction stays open
and is committed every ``commit_seconds`` and right before a snapshot, with the input offset
(for observers: lag, tests; recovery does not use it).

The batch cut is journaled in the output: the first event of every batch carries the header
``cut = b"<first>,<last>"`` (``recovery``). A recovery (on load, and after any produce, flush
or commit error) fences, loads the snapshot, replays the cut batches after it, counts the
events in the log after the snapshot against the events the replay made, produces only the
missing suffix (a partly landed last batch is completed with the same events and seqs) and
seeks the consumer to the command after the last cut.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from libs.bus import (
    Bus,
    BusError,
    Consumer,
    FencedError,
    Outgoing,
    Producer,
    Record,
    Snapshot,
    TopicPartition,
    snapshot_message,
)
from libs.bus.snapshots import offsets_key
from libs.topics import Topics
from services.matcher import recovery
from services.matcher.host import BATCH, DIGEST, LOAD, SNAPSHOT, UNLOAD, pack, unpack
from services.matcher.link import CoreLink

log = logging.getLogger("matcher")

REPLAY_FRAMES = 64  # frames per link call during a replay


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
        self.recoveries = Counter(
            "matcher_recoveries",
            "symbol loads from the log (start, takeover, after a bus error)",
            ["symbol"],
            registry=registry,
        )
        self.completed = Counter(
            "matcher_completed_events",
            "events a recovery found missing after the last cut and produced",
            ["symbol"],
            registry=registry,
        )


@dataclass
class Lane:
    """One owned symbol's I/O state."""

    producer: Producer  # the symbol's only writer: its transaction is always open
    next_offset: int  # the first command not applied
    opened: float  # when the open transaction began
    dirty: bool = False  # produced or applied since the last commit
    since_snapshot: int = 0
    last_snapshot: float = 0.0


@dataclass(frozen=True)
class Replayed:
    last_offset: int
    seq: int
    batches: int
    next_offset: int  # the command after the last cut: where live matching continues
    missing: list[bytes]  # the last batch's events that are not in the log, in order
    tail: tuple[int, int] | None  # the last cut


class MatcherService:
    def __init__(
        self,
        bus: Bus,
        link: CoreLink,
        symbols: list[str],
        *,
        consumer: Consumer | None = None,
        topics: Topics | None = None,
        max_batch: int = 256,
        max_poll: int = 2_048,
        poll_timeout: float = 0.05,
        snapshot_every: int = 250_000,
        snapshot_seconds: float = 60.0,
        commit_seconds: float = 1.0,
        retry_seconds: float = 1.0,
        flush_seconds: float = 5.0,
        bus_errors: tuple[type[BaseException], ...] = (BusError,),
        metrics: MatcherMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.bus = bus
        self.link = link
        self.symbols = symbols  # by partition: symbols[p] owns partition p
        self.consumer = consumer  # None: nothing live (rebuild)
        topics = topics or Topics()
        self.commands_topic = topics.commands
        self.events_topic = topics.matcher_events
        self.snapshots_topic = topics.matcher_snapshots
        self.max_batch = max_batch
        self.max_poll = max_poll
        self.poll_timeout = poll_timeout
        self.snapshot_every = snapshot_every
        self.snapshot_seconds = snapshot_seconds
        self.commit_seconds = commit_seconds
        self.retry_seconds = retry_seconds
        self.flush_seconds = flush_seconds
        # what a broker away or a fenced producer raises (app.py adds KafkaException, which
        # some librdkafka calls raise untranslated)
        self.bus_errors = bus_errors
        self.metrics = metrics or MatcherMetrics(CollectorRegistry())
        self.clock = clock
        self.lanes: dict[str, Lane] = {}
        self.retry_at: dict[str, float] = {}  # symbols to recover again, and from when
        self.turn_started: float | None = None  # for libs.bus.loop.Watchdog
        self._keys = {s: s.encode() for s in symbols}

    @property
    def loaded(self) -> set[str]:
        return set(self.lanes)

    def transactional_id(self, symbol: str) -> str:
        """One per deployment (the events topic) and symbol: a successor fences a zombie."""
        return f"{self.events_topic}.{symbol}"

    # -- the turn -------------------------------------------------------------------------
    def run_once(self) -> int:
        """Poll, recover what is due, match, commit what is due; return the commands polled."""
        assert self.consumer is not None, "a live matcher has a consumer"
        self.turn_started = time.monotonic()
        try:
            # before the poll: a recovery seeks the consumer, so what it polled before the
            # seek would skip commands
            self._retry_pending()
            try:
                records = self.consumer.poll_batch(self.max_poll, self.poll_timeout)
            except self.bus_errors as error:
                # the broker away or a topic's metadata missing: an outage, not a reason
                # to exit; the consumer reconnects by itself
                log.warning("consume failed (%s): retrying", error)
                time.sleep(self.retry_seconds)
                records = []
            if records:
                self.handle(records)
            self._each_lane(self._serve)
            self._each_lane(self._commit_if_due)
            return len(records)
        finally:
            self.turn_started = None

    def handle(self, records: list[Record]) -> None:
        by_partition: dict[int, list[list]] = {}
        for record in records:
            if record.topic == self.commands_topic:
                by_partition.setdefault(record.partition, []).append(
                    [record.offset, record.value or b""]
                )
        frames: list[bytes] = []
        spans: list[tuple[str, int, int, int]] = []  # per frame: symbol, first, last, size
        for partition, items in by_partition.items():
            symbol = self.symbols[partition]
            if symbol not in self.lanes:
                # the load seeks the consumer to the command after the last cut: what was
                # polled for this symbol comes again from there
                self.ensure_loaded(symbol)
                continue
            fresh = [item for item in items if item[0] >= self.lanes[symbol].next_offset]
            for start in range(0, len(fresh), self.max_batch):
                batch = fresh[start : start + self.max_batch]
                frames.append(pack([BATCH, symbol, batch, True]))
                spans.append((symbol, batch[0][0], batch[-1][0], len(batch)))
                self.metrics.batch_size.observe(len(batch))
        if not frames:
            return
        metrics = self.metrics
        touched: dict[str, None] = {}
        for (symbol, first, last, size), reply in zip(spans, self.link.call(frames), strict=True):
            lane = self.lanes.get(symbol)
            if lane is None:
                continue  # its producer failed earlier in this turn: the recovery redoes it
            _, _, events, _, _, step_ns, malformed, failed, _ = unpack(reply)
            try:
                self._produce(lane, symbol, events, first, last)
            except self.bus_errors as error:
                self._fail(symbol, error)
                continue
            lane.next_offset = last + 1
            lane.dirty = True
            lane.since_snapshot += size
            touched[symbol] = None
            metrics.commands.labels(symbol).inc(size)
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
                    self._partition(symbol),
                    failed,
                )
        for symbol in touched:
            if symbol in self.lanes and self._snapshot_due(symbol):
                try:
                    self._snapshot(symbol)
                except self.bus_errors as error:
                    self._fail(symbol, error)
        inbound, outbound = self.link.occupancy()
        metrics.ring.labels("inbound").set(inbound)
        metrics.ring.labels("outbound").set(outbound)

    def _produce(self, lane: Lane, symbol: str, events: list[bytes], first: int, last: int) -> None:
        if not events:
            return  # only malformed commands: no event, so no cut (a replay skips them alone)
        topic, key, partition = self.events_topic, self._keys[symbol], self._partition(symbol)
        produce = lane.producer.produce
        # the cut rides the batch's first event: whatever of the batch lands, it lands first
        produce(
            Outgoing(topic, events[0], key, partition, headers=(recovery.cut_header(first, last),))
        )
        for event in events[1:]:
            produce(Outgoing(topic, event, key, partition))

    # -- commits --------------------------------------------------------------------------
    def _each_lane(self, action: Callable[[str, Lane], None]) -> None:
        """``action`` on every symbol's lane; a bus error fails that symbol."""
        for symbol, lane in list(self.lanes.items()):
            if symbol not in self.lanes:
                continue  # dropped by another symbol's failure in this loop
            try:
                action(symbol, lane)
            except self.bus_errors as error:
                self._fail(symbol, error)

    def _serve(self, _symbol: str, lane: Lane) -> None:
        # the delivery reports as they come, a Python call each: left to the commit's flush,
        # 20 s of them held every command behind it for 90-130 ms (ADR 0001 point 7)
        lane.producer.serve()

    def _commit_if_due(self, symbol: str, lane: Lane) -> None:
        if lane.dirty and self.clock() - lane.opened >= self.commit_seconds:
            self._commit(symbol)

    def _commit(self, symbol: str) -> None:
        """Make every event so far durable and commit the input offset; open the next."""
        lane = self.lanes[symbol]
        # a bounded flush first: with the broker away, commit_transaction would block for
        # a minute; this fails in seconds and the symbol recovers when the broker is back
        lane.producer.flush(self.flush_seconds)
        assert self.consumer is not None, "only a live matcher writes"
        tp = (self.commands_topic, self._partition(symbol))
        lane.producer.commit({tp: lane.next_offset}, self.consumer)
        lane.producer.begin()
        lane.opened = self.clock()
        lane.dirty = False

    # -- failures, revocation -------------------------------------------------------------
    def _fail(self, symbol: str, error: BaseException) -> None:
        """A write of ``symbol`` failed: drop its producer and book and recover it from the
        log (fencing again). Unless a newer instance fenced it, the broker was away, and then
        every symbol is recovered with a new producer: one that lived through a broker restart
        can block in its next commit for the whole bound (librdkafka #5456), and one thread
        runs every book, so three such commits kept the books from trading for a minute."""
        others = [] if isinstance(error, FencedError) else [s for s in self.lanes if s != symbol]
        failed = [symbol, *others]
        log.warning("%s: %s; recovering %s from the log", symbol, error, ", ".join(failed))
        for each in failed:
            self._drop(each)
            self.retry_at[each] = self.clock()

    def _drop(self, symbol: str) -> None:
        lane = self.lanes.pop(symbol, None)
        if lane is None:
            return
        with contextlib.suppress(*self.bus_errors):
            lane.producer.close()
        self.link.call([pack([UNLOAD, symbol])])

    def revoked(self, partitions: list[TopicPartition]) -> None:
        """A rebalance moved these partitions to another instance: drop their books (the new
        owner fences this instance's producers and reads the log)."""
        for topic, partition in partitions:
            if topic == self.commands_topic:
                symbol = self.symbols[partition]
                self._drop(symbol)
                self.retry_at.pop(symbol, None)
                log.info("%s revoked", symbol)

    def close(self) -> None:
        """Commit every open transaction (a clean stop leaves offsets current) and close."""
        for symbol in list(self.lanes):
            with contextlib.suppress(*self.bus_errors):
                if self.lanes[symbol].dirty:
                    self._commit(symbol)
            self._drop(symbol)

    # -- loading and recovery -------------------------------------------------------------
    def _partition(self, symbol: str) -> int:
        return self.symbols.index(symbol)

    def owns(self, symbol: str) -> bool:
        if symbol not in self.symbols:
            return False
        if self.consumer is None:
            return True
        return (self.commands_topic, self._partition(symbol)) in self.consumer.assignment()

    def _retry_pending(self) -> None:
        for symbol in list(self.retry_at):
            if not self.owns(symbol):
                self.retry_at.pop(symbol)
            elif not self.ensure_loaded(symbol):
                return  # the broker is still away: the others would fail the same way

    def ensure_loaded(self, symbol: str) -> bool:
        """Recover ``symbol`` unless it is loaded; return whether it is. A bus error leaves
        it to be tried again after ``retry_seconds``."""
        if symbol in self.lanes:
            return True
        if self.clock() < self.retry_at.get(symbol, float("-inf")):
            return False
        if self.turn_started is not None:
            self.turn_started = time.monotonic()  # each attempt's calls are bounded
        try:
            self._recover(symbol)
        except self.bus_errors as error:
            log.warning("%s: recovery failed (%s): trying again", symbol, error)
            self.retry_at[symbol] = self.clock() + self.retry_seconds
            return False
        self.retry_at.pop(symbol, None)
        return True

    def _recover(self, symbol: str) -> None:
        partition = self._partition(symbol)
        started = time.monotonic()
        # a cheap question first: with the broker away it fails in seconds, where the
        # producer's init_transactions would block for its full timeout
        self.bus.end_offsets(self.events_topic)
        producer = self.bus.producer(self.transactional_id(symbol))  # fences, BEFORE the read
        try:
            producer.begin()
            replayed = self._replay(symbol, partition, complete=True)
            topic, key = self.events_topic, self._keys[symbol]
            for event in replayed.missing:
                producer.produce(Outgoing(topic, event, key, partition))
            if self.consumer is not None:
                positions = {
                    (self.commands_topic, self._partition(s)): lane.next_offset
                    for s, lane in self.lanes.items()
                }
                positions[(self.commands_topic, partition)] = replayed.next_offset
                self.consumer.seek(positions)
        except BaseException:
            with contextlib.suppress(*self.bus_errors):
                producer.close()
            raise
        now = self.clock()
        self.lanes[symbol] = Lane(
            producer, replayed.next_offset, opened=now, dirty=True, last_snapshot=now
        )
        self.metrics.recoveries.labels(symbol).inc()
        if replayed.missing:
            self.metrics.completed.labels(symbol).inc(len(replayed.missing))
        log.info(
            "%s loaded: snapshot + %d replayed batches in %.2fs, offset %d, seq %d; "
            "%d missing events of the last batch %s produced",
            symbol,
            replayed.batches,
            time.monotonic() - started,
            replayed.last_offset,
            replayed.seq,
            len(replayed.missing),
            replayed.tail,
        )

    def load(self, symbol: str, partition: int) -> tuple[int, int, int]:
        """Restore ``symbol`` from its snapshot and replay its cut batches, producing nothing
        (the rebuild, tests). Return (last offset, seq, batches replayed)."""
        replayed = self._replay(symbol, partition, complete=False)
        return replayed.last_offset, replayed.seq, replayed.batches

    def _replay(self, symbol: str, partition: int, *, complete: bool) -> Replayed:
        """Load the snapshot and replay the batches cut after it. With ``complete``, return
        the events of the last batch that are not in the log (the partition has one writer,
        which keeps its order, so what landed is a prefix of what the replay makes)."""
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
        landed = recovery.landed(
            self.bus, self.events_topic, partition, plan.events_from, plan.next_offset
        )
        until = landed.cuts[-1][1] + 1 if landed.cuts else plan.next_offset
        batches = list(
            recovery.replay_batches(
                self.bus, self.commands_topic, partition, plan.next_offset, landed.cuts, until
            )
        )
        made, tail = 0, []
        for start in range(0, len(batches), REPLAY_FRAMES):
            chunk = batches[start : start + REPLAY_FRAMES]
            frames = [pack([BATCH, symbol, batch, False]) for batch in chunk]
            if complete and start + len(chunk) == len(batches) and landed.cuts:
                frames[-1] = pack([BATCH, symbol, chunk[-1], True])  # the last cut batch
            for reply in self.link.call(frames):
                _, _, tail, last_offset, seq, *_, count = unpack(reply)
                made += count
        missing: list[bytes] = []
        if complete:
            short = made - landed.events
            # the cut event of the last batch landed, so at most the rest of it is missing
            if short < 0 or (short and short >= len(tail)):
                raise RuntimeError(
                    f"{symbol}: {self.events_topic}[{partition}] holds {landed.events} events "
                    f"after the snapshot, the replay of its {len(landed.cuts)} cut batches "
                    f"made {made}"
                )
            missing = tail[len(tail) - short :] if short else []
        return Replayed(
            last_offset,
            seq,
            len(batches),
            until,
            missing,
            landed.cuts[-1] if landed.cuts else None,
        )

    # -- snapshots ------------------------------------------------------------------------
    def _snapshot_due(self, symbol: str) -> bool:
        lane = self.lanes[symbol]
        return (
            lane.since_snapshot >= self.snapshot_every
            or self.clock() - lane.last_snapshot >= self.snapshot_seconds
        )

    def _snapshot(self, symbol: str) -> None:
        partition = self._partition(symbol)
        self._commit(symbol)  # every event so far is in the log: the end below covers them
        lane = self.lanes[symbol]
        events_end = self.bus.end_offsets(self.events_topic)[partition]
        _, _, state, last_offset, seq = unpack(self.link.call([pack([SNAPSHOT, symbol])])[0])
        snapshot = Snapshot(
            key=symbol,
            offsets={
                offsets_key(self.commands_topic, partition): last_offset + 1,
                offsets_key(self.events_topic, partition): events_end,
            },
            seq=seq,
            state=state,
        )
        lane.producer.produce(snapshot_message(self.snapshots_topic, snapshot))
        lane.dirty = True
        lane.since_snapshot = 0
        lane.last_snapshot = self.clock()
        self.metrics.snapshots.labels(symbol).inc()

    # -- ops ------------------------------------------------------------------------------
    def digest(self, symbol: str) -> dict:
        """Return {"symbol", "digest", "offset"} of the live book (loading it if needed)."""
        if not self.owns(symbol):
            raise LookupError(f"{symbol!r} is not matched by this instance")
        if not self.ensure_loaded(symbol):
            raise LookupError(f"{symbol!r} is recovering (the broker may be away)")
        return self.book_digest(symbol)

    def book_digest(self, symbol: str) -> dict:
        """The digest of the book the core holds for ``symbol`` as it is (after ``load``)."""
        _, _, digest, last_offset = unpack(self.link.call([pack([DIGEST, symbol])])[0])
        return {"symbol": symbol, "digest": digest, "offset": last_offset}

    def lag(self) -> dict[str, int]:
        """Per loaded symbol, the commands in the log not yet applied."""
        ends = self.bus.end_offsets(self.commands_topic)
        return {
            symbol: max(ends.get(self._partition(symbol), 0) - lane.next_offset, 0)
            for symbol, lane in self.lanes.items()
        }
