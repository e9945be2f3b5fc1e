"""The consume -> process -> produce loop, exactly once, without a transaction per turn.

Each turn reads a batch and hands it to a handler (pure state transition plus the messages
it implies); the turn's messages, which carry its journal entry, are acknowledged before the
next turn's go out, and a recovery produces only what the log lacks
(docs/adr/0001-exactly-once-on-the-order-path.md).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple, Protocol

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
)

log = logging.getLogger(__name__)

FLUSH_TIMEOUT_SECONDS = 10.0  # a turn unacknowledged this long: the broker is away


@dataclass
class LoopStats:
    turns: int = 0
    records: int = 0
    produced: int = 0
    aborts: int = 0
    producer_restarts: int = 0
    commits: int = 0


class Turn(NamedTuple):
    """What a handler makes of one batch: a journal record to write with it (None: none; a
    handler may journal in the outputs' headers instead) and the messages the turn produces."""

    journal: Outgoing | None
    outputs: list[Outgoing]


class JournalHandler(Protocol):
    """A state machine that ``JournalLoop`` runs (``libs.bus.JournaledHandler`` is one)."""

    def recover(self) -> list[Outgoing]:
        """Set the state to what the log holds (snapshot + journal) and return the outputs of
        the journaled turns that are not in the log yet, in order."""

    def handle(self, records: list[Record]) -> Turn:
        """Apply ``records``; return the turn's journal entry and outputs."""

    def unwritten(self) -> Outgoing | None:
        """Return the journal entry of the turns not written yet (None: none); the loop
        writes it when it idles."""

    def snapshot_due(self) -> bool: ...

    def snapshot(self) -> list[Outgoing]:
        """Return the snapshot messages; called when every earlier output is in the log."""

    def next_offsets(self) -> dict[TopicPartition, int]:
        """Return, per input partition, the next offset the state has not applied."""


class JournalLoop:
    """Run a handler exactly once without a transaction per turn.

    Per turn: the handler applies the batch; the turn's outputs (which carry its journal
    entry) are produced and acknowledged (``flush``) before the next turn goes out, so at most
    the last turn is partly in the log, and whatever part of it landed names it
    (``libs.bus.journal``): a restart repeats it exactly. Outputs are released at once:
    consumers read uncommitted. The producer is transactional only to fence a
    zombie (``init_transactions`` by a successor makes every later write of the old instance
    fail) and to commit the input offsets for observers; a transaction stays open for
    ``commit_seconds`` and is committed before a snapshot, so that every output the snapshot
    covers is durable. Recovery (at start, and after any produce error) fences first, then
    reads the log, so nothing a predecessor wrote can land after it was read.
    """

    def __init__(
        self,
        bus: Bus,
        handler: JournalHandler,
        *,
        group_id: str,
        transactional_id: str,
        partitions: list[TopicPartition],
        max_batch: int = 500,
        poll_timeout: float = 0.1,
        commit_seconds: float = 1.0,
        stall_timeout: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.bus = bus
        self.handler = handler
        self.group_id = group_id
        self.transactional_id = transactional_id
        self.max_batch = max_batch
        self.poll_timeout = poll_timeout
        self.commit_seconds = commit_seconds
        self.clock = clock
        self.stats = LoopStats()
        self.consumer: Consumer = bus.consumer(
            group_id, partitions=partitions, instance_id=transactional_id
        )
        self.producer: Producer | None = None
        self.turn_started: float | None = None
        self._opened = 0.0
        self._changed = True  # since the last commit: something consumed or produced
        self._start()
        self.watchdog = Watchdog(self, stall_timeout) if stall_timeout is not None else None
        if self.watchdog is not None:
            self.watchdog.start()

    def _start(self) -> None:
        """Fence, recover the state from the log, and produce what recovery found missing."""
        while True:
            # each attempt is bounded by librdkafka's timeouts: the watchdog watches one
            # attempt, not a recovery that waits for the broker to come back
            if self.turn_started is not None:
                self.turn_started = self.clock()
            try:
                if self.producer is None:
                    self.producer = self.bus.producer(self.transactional_id)  # fences
                pending = self.handler.recover()
                self.consumer.seek(self.handler.next_offsets())
                self.producer.begin()
                self._opened = self.clock()
                for message in pending:
                    self.producer.produce(message)
                if pending:  # in the log before any new turn goes out
                    self.producer.flush(FLUSH_TIMEOUT_SECONDS)
                self.stats.produced += len(pending)
                log.info("state recovered from the log; %d missing outputs produced", len(pending))
                return
            except BusError as error:
                log.warning("recovery failed (%s): trying again", error)
                self._drop_producer(error)
                time.sleep(0.5)  # the broker is away: try again (the watchdog bounds it)

    def run_once(self, timeout: float | None = None) -> int:
        """Process one batch (if any arrives within ``timeout``, by default the poll timeout);
        return its size."""
        idle = timeout is None
        records = self.consumer.poll_batch(
            self.max_batch, self.poll_timeout if timeout is None else timeout
        )
        self.turn_started = self.clock()
        try:
            return self._turn(records, idle=idle and not records)
        except (AbortableError, FencedError, FatalError) as error:
            log.warning("produce failed (%s): recovering from the log", error)
            self._drop_producer(error)
            self._start()
            return 0
        finally:
            self.turn_started = None

    def _turn(self, records: list[Record], *, idle: bool = False) -> int:
        producer = self.producer
        assert producer is not None
        if records:
            turn = self.handler.handle(records)
        elif idle:  # a whole poll timeout without input: journal the turns left unwritten
            turn = Turn(self.handler.unwritten(), [])
        else:
            turn = Turn(None, [])
        messages = turn.outputs if turn.journal is None else [*turn.outputs, turn.journal]
        for message in messages:
            producer.produce(message)
        if messages:
            producer.flush(FLUSH_TIMEOUT_SECONDS)  # all of this turn in the log before the next
        self._changed = self._changed or bool(records) or bool(messages)
        if self.handler.snapshot_due():
            self._commit()
            for message in self.handler.snapshot():
                producer.produce(message)
        elif self._changed and self.clock() - self._opened >= self.commit_seconds:
            self._commit()  # an idle loop commits nothing: no broker work when nothing moves
        self.stats.records += len(records)
        self.stats.produced += len(turn.outputs)
        if messages:
            self.stats.turns += 1
        return len(records)

    def _commit(self) -> None:
        producer = self.producer
        assert producer is not None
        producer.flush(FLUSH_TIMEOUT_SECONDS)  # a broker that is away fails here, in seconds
        producer.commit(self.handler.next_offsets(), self.consumer)
        self.stats.commits += 1
        self._changed = False
        producer.begin()
        self._opened = self.clock()

    def _drop_producer(self, error: BusError) -> None:
        """Drop the producer: its successor's fence aborts the open transaction on the broker.
        (An explicit abort could wait out its whole timeout while the coordinator is away, and
        what the transaction wrote stays in the log either way.)"""
        self.stats.aborts += 1
        if self.producer is None:
            return
        self.stats.producer_restarts += 1
        with contextlib.suppress(BusError):
            self.producer.close()
        self.producer = None

    def run(self, stop: threading.Event) -> None:
        """Loop until ``stop`` is set."""
        while not stop.is_set():
            self.run_once()

    def close(self) -> None:
        if self.watchdog is not None:  # a user shard's loop closes on a rebalance
            self.watchdog.stop()
        self.consumer.close()
        if self.producer is not None:
            self.producer.close()


class Stalling(Protocol):
    turn_started: float | None  # monotonic time the current turn began; None between turns


class Watchdog(threading.Thread):
    """Crash the process when one turn runs longer than ``limit`` seconds.

    librdkafka can block inside a transactional call well past its timeout when the broker
    it knew goes away (confluentinc/librdkafka#5456, #5511). A stuck service is worse than a
    dead one: dying hands over to the supervisor's restart and the normal recovery, which
    loses nothing because nothing of the stuck turn was committed.
    """

    EXIT_CODE = 5

    def __init__(self, loop: Stalling, limit: float) -> None:
        super().__init__(name="bus-watchdog", daemon=True)
        self.loop = loop
        self.limit = limit
        self._stopped = threading.Event()

    def stop(self) -> None:
        """Stop watching (the loop is closed)."""
        self._stopped.set()

    def run(self) -> None:
        while not self._stopped.wait(min(1.0, self.limit / 4)):
            started = self.loop.turn_started
            if started is not None and time.monotonic() - started > self.limit:
                log.critical(
                    "a turn has been stuck for over %.0fs: exiting for a clean restart", self.limit
                )
                logging.shutdown()
                os._exit(self.EXIT_CODE)
