"""The journaled handler and its loop on their own: a counter over two inputs on the in-memory
bus (which, like Kafka read_uncommitted, shows every written record at once)."""

from __future__ import annotations

from dataclasses import dataclass

from libs.bus import (
    AbortableError,
    JournaledHandler,
    JournalLoop,
    MemoryBus,
    Outgoing,
    Record,
    latest_snapshots,
)
from libs.bus.journal import ENTRY_HEADER, TurnRecord, decode_entry, journaled

FIRST, SECOND = ("count.first", 0), ("count.second", 0)  # the canonical input order
SNAPSHOTS = "count.snapshots"
JOURNAL = "count.journal"
OUT = "count.out"


@dataclass
class Count:
    """The state: a running total and the digits in the order they were applied."""

    total: int = 0
    trail: str = ""


class CountHandler(JournaledHandler[Count, int]):
    """Add each record's digit to the total; produce the new total."""

    snapshot_key = "count"

    def __init__(self, bus: MemoryBus, *, snapshot_every: int = 1000) -> None:
        super().__init__(
            bus,
            [FIRST, SECOND],
            SNAPSHOTS,
            journal_topic=JOURNAL,
            outputs=[OUT],
            snapshot_every=snapshot_every,
        )

    def new_core(self) -> Count:
        return Count()

    def dump_core(self, core: Count) -> bytes:
        return f"{core.total}:{core.trail}".encode()

    def load_core(self, state: bytes) -> Count:
        total, _, trail = state.decode().partition(":")
        return Count(int(total), trail)

    def apply_record(self, record: Record) -> list[int]:
        digit = (record.value or b"").decode()
        if digit[:1] == "q" and digit[1:].isdigit():  # quiet: counted, nothing produced
            self.core.total += int(digit[1:])
            self.core.trail += digit[1:]
            return []
        if not digit.isdigit():
            return []  # malformed: skipped, deterministically
        self.core.total += int(digit)
        self.core.trail += digit
        return [self.core.total]

    def outgoing(self, produced: list[int]) -> list[Outgoing]:
        return [Outgoing(OUT, str(total).encode(), partition=0) for total in produced]


def new_loop(bus: MemoryBus, counter: CountHandler) -> JournalLoop:
    # the consumer hands the second input over first: arrival order is not the canonical one
    return JournalLoop(
        bus,
        counter,
        group_id="count",
        transactional_id="count-0",
        partitions=[SECOND, FIRST],
        poll_timeout=0,
    )


def setup(snapshot_every: int = 1000) -> tuple[MemoryBus, CountHandler, JournalLoop]:
    bus = MemoryBus()
    for topic in (FIRST[0], SECOND[0], SNAPSHOTS, JOURNAL, OUT):
        bus.create_topic(topic, 1)
    counter = CountHandler(bus, snapshot_every=snapshot_every)
    return bus, counter, new_loop(bus, counter)


def send(bus: MemoryBus, tp: tuple[str, int], *digits: str) -> None:
    producer = bus.producer()
    for digit in digits:
        producer.produce(Outgoing(tp[0], digit.encode(), partition=tp[1]))


def totals(bus: MemoryBus) -> list[int]:
    return [int(r.value or b"") for r in bus.replay(OUT, 0)]


def journal(bus: MemoryBus, after: int = 0) -> list[TurnRecord]:
    """The journaled turns of the entries numbered above ``after`` (journal topic and headers)."""
    return journaled(bus, b"count", (JOURNAL, 0, 0), {(OUT, 0): 0}, after)[0]


def journal_records(bus: MemoryBus) -> int:
    """How many records the journal topic holds (turns without outputs only)."""
    return len(list(bus.replay(JOURNAL, 0)))


def test_a_turn_applies_its_records_in_input_order_not_arrival_order() -> None:
    bus, counter, _ = setup()
    send(bus, SECOND, "2")
    send(bus, FIRST, "1", "3")
    arrived = [r for tp in (SECOND, FIRST) for r in bus.replay(*tp)]
    turn = counter.handle(arrived)
    assert counter.core.trail == "132"
    assert [o.value for o in turn.outputs] == [b"1", b"4", b"6"]
    assert {o.source for o in turn.outputs} == {b"count"}  # a recovery counts its own
    assert turn.journal is None  # the outputs carry the entry: no journal record of its own
    # the entry names the turn on its first output in each partition, so a part of it names it
    named = [dict(o.headers).get(ENTRY_HEADER) for o in turn.outputs]
    assert named[1:] == [None, None] and named[0] is not None
    assert decode_entry(named[0]).turns == [TurnRecord([(0, 2), (1, 1)])]


def test_a_turn_whose_journal_record_failed_never_happened() -> None:
    bus, counter, loop = setup()
    send(bus, FIRST, "1", "2")
    assert loop.run_once() == 2
    send(bus, SECOND, "3")
    loop.producer.fail_next_produce = AbortableError("injected")  # the turn's first message
    assert loop.run_once() == 0
    assert counter.core == Count(3, "12")  # recovered from the log: the turn is not in it
    assert loop.run_once() == 1
    assert counter.core == Count(6, "123")
    assert totals(bus) == [1, 3, 6]
    assert [t.ends for t in journal(bus)] == [[(0, 2)], [(1, 1)]]


def test_a_turn_in_the_journal_gets_its_outputs_once_whatever_failed_after_it() -> None:
    bus, counter, loop = setup(snapshot_every=2)
    send(bus, FIRST, "1", "2")
    send(bus, SECOND, "3")
    assert loop.run_once() == 3  # a snapshot follows (commit first, so its outputs are durable)
    send(bus, SECOND, "4")
    loop.producer.fail_next_flush = AbortableError("injected")  # the turn is in, unconfirmed
    assert loop.run_once() == 0
    assert counter.core == Count(10, "1234")  # the journal holds the turn: recovery applied it
    assert totals(bus) == [1, 3, 6, 10]  # and found its output in the log: not produced again
    assert loop.run_once() == 0  # nothing is consumed twice
    assert totals(bus) == [1, 3, 6, 10]


def test_a_successor_produces_only_the_outputs_its_predecessor_did_not() -> None:
    bus, counter, _ = setup()
    send(bus, FIRST, "1", "2", "3")
    turn = counter.handle([r for tp in (FIRST, SECOND) for r in bus.replay(*tp)])
    writer = bus.producer()  # the predecessor: two of three outputs in, then killed
    writer.produce(turn.outputs[0])
    writer.produce(turn.outputs[1])
    fresh = CountHandler(bus)
    loop = new_loop(bus, fresh)  # fences, recovers, produces what is missing
    assert fresh.core == Count(6, "123")
    assert totals(bus) == [1, 3, 6]
    send(bus, SECOND, "4")
    loop.run_once()
    assert totals(bus) == [1, 3, 6, 10]


def test_a_turn_cut_short_is_finished_by_the_successor_as_it_was_split() -> None:
    bus, counter, _ = setup()
    send(bus, SECOND, "q5")
    assert counter.handle(list(bus.replay(*SECOND))) == (None, [])  # no outputs: not written yet
    send(bus, FIRST, "1", "2", "3")
    turn = counter.handle(list(bus.replay(*FIRST)))
    entry = decode_entry(dict(turn.outputs[0].headers)[ENTRY_HEADER])
    assert (entry.seq, len(entry.turns)) == (1, 2)  # the quiet turn rides with this one
    writer = bus.producer()  # the predecessor: the first of three outputs landed, then killed
    writer.produce(turn.outputs[0])
    fresh = CountHandler(bus)
    new_loop(bus, fresh)  # finds the turns in that output's header and finishes them
    assert fresh.core == Count(11, "5123")  # the quiet turn first, as it ran (not "1235")
    assert totals(bus) == [6, 8, 11]
    assert [t.ends for t in journal(bus)] == [[(1, 1)], [(0, 3)]]


def test_a_turn_without_outputs_is_journaled_with_the_next_entry_or_when_the_loop_idles() -> None:
    bus, counter, loop = setup()
    send(bus, FIRST, "q1")
    loop.run_once()
    assert journal(bus) == []  # nobody saw it: a restart may re-read it in any interleaving
    send(bus, SECOND, "2")
    loop.run_once()
    assert [t.ends for t in journal(bus)] == [[(0, 1)], [(1, 1)]]  # one entry, two turns
    assert journal_records(bus) == 0  # in the output's header
    send(bus, SECOND, "q4")
    loop.run_once()
    assert len(journal(bus)) == 2
    loop.run_once(timeout=0)  # a short look (a caller gathering turns) is not idling
    assert len(journal(bus)) == 2
    loop.run_once()  # a whole poll timeout and nothing came: the loop writes what it holds
    assert [t.ends for t in journal(bus)] == [[(0, 1)], [(1, 1)], [(1, 2)]]
    assert journal_records(bus) == 1
    fresh = CountHandler(bus)
    fresh.rewind()
    assert fresh.core == counter.core == Count(7, "124")


def test_a_zombie_that_resumes_after_its_successor_took_over_doubles_nothing() -> None:
    bus, zombie, old = setup()
    send(bus, FIRST, "1")
    old.run_once()
    successor = CountHandler(bus)
    new = new_loop(bus, successor)  # same transactional id: the old producer is fenced
    send(bus, SECOND, "2")
    new.run_once()
    send(bus, FIRST, "3")
    with_fence = old.producer
    old.run_once()  # its first write fails; it recovers from the log (fencing the other)
    assert with_fence is not old.producer
    new.run_once()  # fenced in turn: recovers from the log
    send(bus, SECOND, "4")
    new.run_once()
    old.run_once()
    assert totals(bus) == [1, 3, 6, 10]  # each total once, in order: no effect twice
    assert successor.core == zombie.core == Count(10, "1234")


def test_a_restart_loads_the_snapshot_then_replays_the_journaled_turns() -> None:
    bus, counter, loop = setup(snapshot_every=3)
    send(bus, FIRST, "1")
    send(bus, SECOND, "2", "5")
    loop.run_once()  # three inputs: a snapshot of "125"
    send(bus, SECOND, "4")
    loop.run_once()
    send(bus, FIRST, "3")
    loop.run_once()
    assert counter.core.trail == "12543"
    snapshot = latest_snapshots(bus, SNAPSHOTS)["count"]
    assert snapshot.state == b"8:125"
    assert [t.ends for t in journal(bus, snapshot.entries)] == [[(1, 3)], [(0, 2)]]
    # read as one turn, the same records would apply in another order ...
    naive = CountHandler(bus)
    naive.handle([r for tp in (SECOND, FIRST) for r in bus.replay(*tp)])
    assert naive.core.trail == "13254"
    # ... the restart repeats the turns as they were journaled
    fresh = CountHandler(bus, snapshot_every=3)
    fresh.rewind()
    assert fresh.core == counter.core
    assert fresh.applied == counter.applied
    assert (fresh.snapshot_no, fresh.since_snapshot) == (1, 2)
