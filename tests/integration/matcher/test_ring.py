"""The shared-memory ring between two real processes: no loss, no duplicate, no reordering,
through wrap-around and a full ring."""

from __future__ import annotations

import multiprocessing
import struct
import time

import pytest

from services.matcher import ring as ring_module
from services.matcher.ring import Ring

FORK = multiprocessing.get_context("fork")
RECORD = struct.Struct("<Q")


def _record(seq: int) -> bytes:
    # a sequence number plus 0..36 bytes of a pattern derived from it: records of many sizes
    return RECORD.pack(seq) + bytes([seq & 0xFF]) * (seq % 37)


def _produce(ring: Ring, count: int, batch: int) -> None:
    for start in range(0, count, batch):
        ring.push_batch([_record(seq) for seq in range(start, min(start + batch, count))])


def _consume_and_check(ring: Ring, count: int) -> int:
    expected = 0
    while expected < count:
        records = ring.pop_batch(256, timeout=10)
        assert records, f"nothing arrived for 10 s after record {expected}"
        for record in records:
            assert record == _record(expected), f"record {expected} lost, doubled or reordered"
            expected += 1
    return expected


@pytest.mark.parametrize(
    ("capacity", "batch"),
    [(1 << 10, 1), (1 << 12, 64), (1 << 20, 256)],
    ids=["tiny-ring-single-pushes", "small-ring-batches", "large-ring-batches"],
)
def test_two_processes_exchange_a_million_records_in_order(capacity: int, batch: int):
    count = 1_000_000
    ring = Ring(capacity)
    producer = FORK.Process(target=_produce, args=(ring, count, batch))
    producer.start()
    try:
        assert _consume_and_check(ring, count) == count
        producer.join(30)
        assert producer.exitcode == 0
        assert ring.occupancy() == 0
    finally:
        if producer.is_alive():
            producer.kill()
        ring.close()


def test_a_full_ring_makes_the_producer_wait_instead_of_dropping():
    ring = Ring(1 << 8)
    producer = FORK.Process(target=_produce, args=(ring, 10_000, 16))
    producer.start()
    try:
        producer.join(0.5)
        assert producer.is_alive(), "the producer should be blocked on a full ring"
        assert ring.occupancy() > ring.capacity - 64
        assert _consume_and_check(ring, 10_000) == 10_000
        producer.join(10)
        assert producer.exitcode == 0
    finally:
        if producer.is_alive():
            producer.kill()
        ring.close()


def test_a_pop_on_an_empty_ring_times_out_with_nothing():
    ring = Ring(1 << 8)
    try:
        assert ring.pop_batch(10, timeout=0.05) == []
    finally:
        ring.close()


def _push_later(ring: Ring, delays: list[float]) -> None:
    for delay in delays:
        time.sleep(delay)
        ring.push(struct.pack("<d", time.monotonic()))


def test_an_idle_consumer_sleeps_on_the_doorbell_and_still_wakes_at_once(monkeypatch):
    """An idle matcher core must not wake every SAFETY_WAIT (it did: 200 wake-ups a second);
    a record pushed by the other process after a long idle wait still arrives at once (a missed
    doorbell would leave it for IDLE_WAIT, a second; the bound leaves room for a loaded box)."""
    blocks = []
    block = ring_module._block
    monkeypatch.setattr(ring_module, "_block", lambda fd, t: (blocks.append(t), block(fd, t)))
    ring = Ring(1 << 8)
    try:
        assert ring.pop_batch(10, timeout=0.5) == []
        assert len(blocks) <= 3, f"{len(blocks)} wake-ups in 0.5 s of idling"
        delays = [0.3, 0.01, 0.002, 0.5]
        producer = FORK.Process(target=_push_later, args=(ring, delays))
        producer.start()
        for _ in delays:
            [record] = ring.pop_batch(10, timeout=5)
            late = time.monotonic() - struct.unpack("<d", record)[0]
            assert late < 0.5, f"the record waited {late * 1000:.0f} ms after its push"
        producer.join(5)
    finally:
        ring.close()


def test_records_larger_than_half_the_ring_are_refused():
    ring = Ring(1 << 8)
    try:
        with pytest.raises(ValueError, match="exceeds"):
            ring.push(b"x" * 200)
    finally:
        ring.close()


def test_capacity_must_be_a_power_of_two():
    with pytest.raises(ValueError, match="power of two"):
        Ring(1000)
