"""The journaled handler on its own: a counter over two inputs on the in-memory bus."""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from libs.bus import (
    AbortableError,
    JournaledHandler,
    MemoryBus,
    Outgoing,
    Record,
    TransactionalLoop,
    latest_snapshots,
)
from libs.bus.journal import TurnLog

FIRST, SECOND = ("count.first", 0), ("count.second", 0)  # the canonical input order
SNAPSHOTS = "count.snapshots"
OUT = "count.out"


@dataclass
class Count:
    """The state: a running total and the digits in the order they were applied."""

    total: int = 0
    trail: str = ""


class CountHandler(JournaledHandler[Count, int]):
    """Add each record's digit to the total; produce the new total."""

    snapshot_key = "count"
    turns_key = "count.turns"

    def __init__(self, bus: MemoryBus, *, snapshot_every: int = 1000) -> None:
        super().__init__(bus, [FIRST, SECOND], SNAPSHOTS, snapshot_every=snapshot_every)

    def new_core(self) -> Count:
        return Count()

    def dump_core(self, core: Count) -> bytes:
        return f"{core.total}:{core.trail}".encode()

    def load_core(self, state: bytes) -> Count:
        total, _, trail = state.decode().partition(":")
        return Count(int(total), trail)

    def apply_record(self, record: Record) -> list[int]:
        digit = (record.value or b"").decode()
        if not digit.isdigit():
            return []  # malformed: skipped, deterministically
        self.core.total += int(digit)
        self.core.trail += digit
        return [self.core.total]

    def outgoing(self, produced: list[int]) -> list[Outgoing]:
        return [Outgoing(OUT, str(total).encode(), partition=0) for total in produced]


def setup(snapshot_every: int = 1000) -> tuple[MemoryBus, CountHandler, TransactionalLoop]:
    bus = MemoryBus()
    for topic in (FIRST[0], SECOND[0], SNAPSHOTS, OUT):
        bus.create_topic(topic, 1)
    counter = CountHandler(bus, snapshot_every=snapshot_every)
    # the consumer hands the second input over first: arrival order is not the canonical one
    loop = TransactionalLoop(
        bus,
        counter,
        group_id="count",
        transactional_id="count-0",
        partitions=[SECOND, FIRST],
        poll_timeout=0,
    )
    return bus, counter, loop


def send(bus: MemoryBus, tp: tuple[str, int], *digits: str) -> None:
    producer = bus.producer()
    for digit in digits:
        producer.produce(Outgoing(tp[0], digit.encode(), partition=tp[1]))


def totals(bus: MemoryBus) -> list[int]:
    return [int(r.value or b"") for r in bus.replay(OUT, 0)]


def turn_log(bus: MemoryBus) -> TurnLog:
    state = latest_snapshots(bus, SNAPSHOTS)["count.turns"].state
    return msgspec.msgpack.decode(state, type=TurnLog)


def test_a_turn_applies_its_records_in_input_order_not_arrival_order() -> None:
    bus, counter, _ = setup()
    send(bus, SECOND, "2")
    send(bus, FIRST, "1", "3")
    arrived = [r for tp in (SECOND, FIRST) for r in bus.replay(*tp)]
    out = counter.handle(arrived)
    assert counter.core.trail == "132"
    assert [o.value for o in out if o.topic == OUT] == [b"1", b"4", b"6"]
    assert out[-1].topic == SNAPSHOTS  # the turn log rides in the same transaction
    assert counter.turns == [[(0, 2), (1, 1)]]


def test_an_aborted_transaction_rewinds_to_the_committed_state() -> None:
    bus, counter, loop = setup(snapshot_every=2)
    send(bus, FIRST, "1", "2")
    send(bus, SECOND, "3")
    assert loop.run_once() == 3
    committed = Count(6, "123")
    assert counter.core == committed
    send(bus, SECOND, "4")
    loop.producer.fail_next_commit = AbortableError("injected")
    assert loop.run_once() == 0
    assert counter.core == committed
    assert counter.applied == {FIRST: 2, SECOND: 1}
    assert loop.run_once() == 1
    assert counter.core == Count(10, "1234")
    assert totals(bus) == [1, 3, 6, 10]  # the aborted turn's output never shows


def test_a_restart_loads_the_snapshot_then_replays_the_recorded_turns() -> None:
    bus, counter, loop = setup(snapshot_every=3)
    send(bus, FIRST, "1")
    send(bus, SECOND, "2", "5")
    loop.run_once()  # three inputs: a snapshot of "125"
    send(bus, SECOND, "4")
    loop.run_once()
    send(bus, FIRST, "3")
    loop.run_once()
    assert counter.core.trail == "12543"
    assert latest_snapshots(bus, SNAPSHOTS)["count"].state == b"8:125"
    assert turn_log(bus) == TurnLog(1, [[(1, 3)], [(0, 2)]])
    # read as one turn, the same records would apply in another order ...
    naive = CountHandler(bus)
    naive.handle([r for tp in (SECOND, FIRST) for r in bus.replay(*tp)])
    assert naive.core.trail == "13254"
    # ... the restart repeats the turns as they were committed
    fresh = CountHandler(bus, snapshot_every=3)
    fresh.rewind(loop.consumer.committed())
    assert fresh.core == counter.core
    assert fresh.applied == counter.applied
    assert (fresh.snapshot_no, fresh.since_snapshot) == (1, 2)
    assert fresh.full_publish
