"""Order ids: unique, increasing, clear of the position engine's id space."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.gateway.ids import EPOCH_MS, OrderIds


def test_ids_increase_and_stay_below_the_liquidation_bits():
    ids = OrderIds(7)
    drawn = [ids.next() for _ in range(10_000)]
    assert drawn == sorted(set(drawn))
    assert all(0 < i < 2**61 for i in drawn)


def test_more_than_4096_ids_in_one_millisecond_borrow_the_next_one():
    ids = OrderIds(1, clock_ms=lambda: EPOCH_MS + 5)
    drawn = [ids.next() for _ in range(10_000)]
    assert drawn == sorted(set(drawn))


def test_a_clock_stepping_back_never_repeats_an_id():
    times = iter([EPOCH_MS + 100, EPOCH_MS + 50, EPOCH_MS + 50, EPOCH_MS + 101])
    ids = OrderIds(0, clock_ms=lambda: next(times))
    drawn = [ids.next() for _ in range(4)]
    assert drawn == sorted(set(drawn))


@given(st.integers(0, 1023), st.integers(0, 1023))
def test_two_gateways_never_share_an_id(a: int, b: int):
    if a == b:
        return
    clock = lambda: EPOCH_MS + 42  # noqa: E731 - the same millisecond for both
    first, second = OrderIds(a, clock_ms=clock), OrderIds(b, clock_ms=clock)
    assert not {first.next() for _ in range(50)} & {second.next() for _ in range(50)}


def test_threads_drawing_together_get_distinct_ids():
    ids = OrderIds(3)
    drawn: list[int] = []

    def draw() -> None:
        mine = [ids.next() for _ in range(5000)]
        drawn.extend(mine)

    threads = [threading.Thread(target=draw) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(drawn)) == 20_000


def test_instance_out_of_range_is_refused():
    with pytest.raises(ValueError, match=r"0\.\.1023"):
        OrderIds(1024)
