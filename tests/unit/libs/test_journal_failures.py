"""The journal's guard: an input the core cannot apply, or whose output cannot be encoded, is
undone, logged, counted and skipped; a recovery skips it again from the journal."""

from __future__ import annotations

from libs.bus import JournalLoop, Outgoing, Record, latest_snapshots
from tests.unit.libs.test_journal import (
    FIRST,
    SECOND,
    SNAPSHOTS,
    Count,
    CountHandler,
    journal,
    send,
    setup,
    totals,
)

POISON = "!"  # adds 100 to the state, then raises: a core that fails half-way
LIMIT = 1000  # an output above this "cannot be encoded" (a 64-bit overflow in miniature)


class FragileCount(CountHandler):
    """The counter, with a poison input, multi-digit numbers, and a limit on what it emits."""

    def __init__(self, bus, *, snapshot_every: int = 1000) -> None:
        super().__init__(bus, snapshot_every=snapshot_every)
        self.failures: list[tuple[str, int, int]] = []

    def apply_record(self, record: Record) -> list[int]:
        text = (record.value or b"").decode()
        if text == POISON:
            self.core.total += 100
            self.core.trail += POISON
            raise ValueError("poison")
        if not text.isdigit():
            return []
        self.core.total += int(text)
        self.core.trail += text + ","
        return [self.core.total]

    def outgoing(self, produced: list[int]) -> list[Outgoing]:
        if any(total > LIMIT for total in produced):
            raise OverflowError("total does not fit")
        return super().outgoing(produced)

    def count_failure(self, record: Record) -> None:
        self.failures.append((record.topic, record.partition, record.offset))


def fragile(snapshot_every: int = 1000):
    bus, _, _ = setup()
    handler = FragileCount(bus, snapshot_every=snapshot_every)
    loop = JournalLoop(
        bus,
        handler,
        group_id="fragile",
        transactional_id="fragile-0",
        partitions=[SECOND, FIRST],
        poll_timeout=0,
    )
    return bus, handler, loop


def test_a_core_that_raises_half_way_is_put_back_and_the_input_skipped_and_counted() -> None:
    bus, handler, loop = fragile()
    send(bus, FIRST, "1", POISON, "2")
    loop.run_once()
    assert handler.core == Count(3, "1,2,")  # nothing of the poison's +100
    assert handler.failures == [(FIRST[0], 0, 1)]
    assert totals(bus) == [1, 3]
    assert journal(bus)[-1].skipped == [(0, 1)]


def test_an_output_that_cannot_be_encoded_skips_its_input_with_its_effect() -> None:
    bus, handler, loop = fragile()
    send(bus, FIRST, "600")
    send(bus, SECOND, "600", "7")
    loop.run_once()
    assert handler.core == Count(607, "600,7,")
    assert handler.failures == [(SECOND[0], 0, 0)]
    assert totals(bus) == [600, 607]


def test_a_recovery_and_a_rebuild_skip_the_same_inputs_from_the_journal() -> None:
    bus, handler, loop = fragile(snapshot_every=4)
    send(bus, FIRST, "1", "2", "3")
    loop.run_once()
    send(bus, SECOND, POISON, "4")  # undone to the empty state plus the three before it
    loop.run_once()  # 5 inputs: snapshot 1, which the poison is not in
    send(bus, FIRST, POISON, "5")  # undone to snapshot 1
    send(bus, SECOND, "990")  # 1005 > LIMIT: its output cannot be encoded
    loop.run_once()
    assert handler.core == Count(15, "1,2,3,4,5,")
    assert len(handler.failures) == 3
    snapshot = latest_snapshots(bus, SNAPSHOTS)["count"]
    assert snapshot.state == b"10:1,2,3,4,"
    since = journal(bus, snapshot.entries)
    assert [s for t in since for s in t.skipped] == [(0, 3), (1, 2)]  # not SECOND@0: before it
    rebuilt = FragileCount(bus, snapshot_every=4)
    rebuilt.rewind()
    assert rebuilt.core == handler.core
    assert rebuilt.applied == handler.applied
    assert rebuilt.failures == []  # skipped by the log: never tried again
