"""A bounded, lock-free single-producer single-consumer ring of byte records in shared memory.

Layout of the shared block (every counter on its own 64-byte cache line, so the producer's
and the consumer's writes never share a line):

    0    head   bytes ever written (producer writes, consumer reads)
    64   tail   bytes ever read    (consumer writes, producer reads)
    128  consumer_sleeping flag    (consumer writes, producer reads)
    192  producer_sleeping flag    (producer writes, consumer reads)
    256  data   ``capacity`` bytes, a power of two; position = counter & (capacity - 1)

A record is a 4-byte little-endian length and its payload, padded to 8 bytes. A record never
straddles the end of the data area: when it would, the producer writes a wrap marker and
starts again at position 0. Head and tail only grow (64-bit), so full and empty are never
confused.

Memory ordering: the producer writes the record bytes, then publishes ``head``; the consumer
reads ``head``, then the record bytes. That is correct on x86-64, whose stores are not
reordered with earlier stores and whose loads are not reordered with earlier loads (TSO),
and because each counter is one aligned 8-byte store/load. CPython offers no fences, so on a
weakly ordered CPU (ARM) this ring would need them.

Waiting: neither side spins without bound. A waiter spins briefly, then raises its
``sleeping`` flag, checks once more, and blocks on an eventfd doorbell that the other side
rings only when that flag is up. x86 may reorder the flag store after the re-check load
(store->load), so a wake-up can be missed: the blocking wait therefore also times out after
``SAFETY_WAIT`` and re-checks, which bounds that rare delay instead of hanging. Only a push
that races the raising of the flag can miss it, so the consumer keeps its flag up while it
waits and, after that first short wait, sleeps until its deadline (an idle matcher core would
otherwise wake 200 times a second).
"""

from __future__ import annotations

import contextlib
import os
import select
import struct
import time
from multiprocessing import shared_memory
from typing import cast

HEADER = 256
_HEAD, _TAIL, _CONSUMER_SLEEPING, _PRODUCER_SLEEPING = 0, 8, 16, 24  # indexes in a 'Q' view
_LENGTH = struct.Struct("<I")
_WRAP = 0xFFFFFFFF
SPIN = 200
SAFETY_WAIT = 0.005
IDLE_WAIT = 1.0  # a consumer's later waits, once its sleeping flag has long been visible


class RingClosed(Exception):
    """The other side is gone; nothing more will arrive."""


def _padded(size: int) -> int:
    return (4 + size + 7) & ~7


class Ring:
    """One direction of traffic between two processes. Create it before forking both."""

    def __init__(self, capacity: int = 1 << 20) -> None:
        if capacity < 64 or capacity & (capacity - 1):
            raise ValueError("capacity must be a power of two >= 64")
        self.capacity = capacity
        self.mask = capacity - 1
        self.max_record = capacity // 2 - 8
        self._shm = shared_memory.SharedMemory(create=True, size=HEADER + capacity)
        self._buf = cast(memoryview, self._shm.buf)  # None only once the mapping is closed
        self._words = self._buf[:HEADER].cast("Q")
        for index in (_HEAD, _TAIL, _CONSUMER_SLEEPING, _PRODUCER_SLEEPING):
            self._words[index] = 0
        self._data = self._buf[HEADER:]
        self._data_ready = os.eventfd(0, os.EFD_NONBLOCK)
        self._space_ready = os.eventfd(0, os.EFD_NONBLOCK)
        self._owner = os.getpid()
        # producer-local cache of head; consumer-local cache of tail
        self._head = 0
        self._tail = 0

    # -- producer side ------------------------------------------------------------------
    def push(self, record: bytes, timeout: float | None = None) -> None:
        """Append one record; wait while the ring is full (back-pressure, never drop)."""
        self.push_batch((record,), timeout)

    def push_batch(
        self, records: list[bytes] | tuple[bytes, ...], timeout: float | None = None
    ) -> None:
        """Append records in order, publishing ``head`` once per run that fits."""
        words, data, mask, capacity = self._words, self._data, self.mask, self.capacity
        head = self._head
        tail = words[_TAIL]
        for record in records:
            size = len(record)
            if size > self.max_record:
                raise ValueError(f"record of {size} bytes exceeds {self.max_record}")
            need = _padded(size)
            position = head & mask
            wrap = capacity - position if position + need > capacity else 0
            while head + wrap + need - tail > capacity:
                words[_HEAD] = head  # publish what we have before waiting for space
                self._ring_data()
                tail = self._wait_for_space(head + wrap + need - capacity, timeout)
            if wrap:
                _LENGTH.pack_into(data, position, _WRAP)
                head += wrap
                position = 0
            _LENGTH.pack_into(data, position, size)
            data[position + 4 : position + 4 + size] = record
            head += need
        words[_HEAD] = head  # x86 TSO: the record bytes above are visible before this store
        self._head = head
        self._ring_data()

    def _ring_data(self) -> None:
        if self._words[_CONSUMER_SLEEPING]:
            os.eventfd_write(self._data_ready, 1)

    def _wait_for_space(self, needed_tail: int, timeout: float | None) -> int:
        words = self._words
        deadline = None if timeout is None else time.monotonic() + timeout
        for _ in range(SPIN):
            tail = words[_TAIL]
            if tail >= needed_tail:
                return tail
        while True:
            words[_PRODUCER_SLEEPING] = 1
            tail = words[_TAIL]
            if tail >= needed_tail:
                words[_PRODUCER_SLEEPING] = 0
                return tail
            _block(self._space_ready, SAFETY_WAIT)
            words[_PRODUCER_SLEEPING] = 0
            tail = words[_TAIL]
            if tail >= needed_tail:
                return tail
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError("ring full: the consumer is not draining")

    # -- consumer side ------------------------------------------------------------------
    def pop_batch(self, max_records: int = 256, timeout: float | None = None) -> list[bytes]:
        """Return 1..max_records records, waiting up to ``timeout`` s ([] on timeout)."""
        records = self.try_pop_batch(max_records)
        if records or timeout == 0:
            return records
        words = self._words
        deadline = None if timeout is None else time.monotonic() + timeout
        for _ in range(SPIN):
            if words[_HEAD] != self._tail:
                return self.try_pop_batch(max_records)
        # The flag stays up until we return: only a push racing the raising of it can miss the
        # doorbell, and the re-checks during the first SAFETY_WAIT find that one. Later pushes
        # see the flag and ring, so later waits may run to the deadline (an idle core wakes
        # once per timeout, not every SAFETY_WAIT).
        words[_CONSUMER_SLEEPING] = 1
        raised = time.monotonic()
        try:
            while True:
                if words[_HEAD] != self._tail:
                    return self.try_pop_batch(max_records)
                now = time.monotonic()
                wait = SAFETY_WAIT if now - raised < SAFETY_WAIT else IDLE_WAIT
                if deadline is not None:
                    wait = min(wait, deadline - now)
                    if wait <= 0:
                        return []
                _block(self._data_ready, wait)
        finally:
            words[_CONSUMER_SLEEPING] = 0

    def try_pop_batch(self, max_records: int = 256) -> list[bytes]:
        """Return up to ``max_records`` records without waiting."""
        words, data, mask = self._words, self._data, self.mask
        tail = self._tail
        head = words[_HEAD]  # x86 TSO: record bytes read below are at least this new
        records: list[bytes] = []
        while tail != head and len(records) < max_records:
            position = tail & mask
            (size,) = _LENGTH.unpack_from(data, position)
            if size == _WRAP:
                tail += self.capacity - position
                continue
            records.append(bytes(data[position + 4 : position + 4 + size]))
            tail += _padded(size)
        if tail != self._tail:
            self._tail = tail
            words[_TAIL] = tail
            if words[_PRODUCER_SLEEPING]:
                os.eventfd_write(self._space_ready, 1)
        return records

    # -- both ---------------------------------------------------------------------------
    def occupancy(self) -> int:
        """Bytes written and not yet read."""
        return self._words[_HEAD] - self._words[_TAIL]

    def close(self) -> None:
        """Release this process's mapping; the creating process also frees the memory."""
        self._words.release()
        self._data.release()
        self._buf = None  # type: ignore[assignment]  # released: nothing reads it after close
        self._shm.close()
        if os.getpid() == self._owner:
            self._shm.unlink()
            os.close(self._data_ready)
            os.close(self._space_ready)


def _block(fd: int, timeout: float) -> None:
    """Sleep until the doorbell ``fd`` rings or ``timeout`` passes; consume the ring."""
    readable, _, _ = select.select([fd], [], [], timeout)
    if readable:
        with contextlib.suppress(BlockingIOError):
            os.eventfd_read(fd)
