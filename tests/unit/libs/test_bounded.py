"""``libs.bus.kafka.bounded``: a call librdkafka may block in past its timeout is given up on."""

from __future__ import annotations

import threading
import time

import pytest

from libs.bus.kafka import AbortableError, Stuck, bounded


def test_a_call_that_returns_in_time_returns_and_its_error_reaches_the_caller() -> None:
    seen = []
    bounded("ok", lambda: seen.append(1), 5)
    assert seen == [1]

    def fails() -> None:
        raise ValueError("refused")

    with pytest.raises(ValueError, match="refused"):
        bounded("fails", fails, 5)


def test_a_call_that_never_returns_is_given_up_on_as_an_abortable_error() -> None:
    release = threading.Event()
    started = time.monotonic()
    with pytest.raises(Stuck, match="no answer within") as raised:
        bounded("hangs", release.wait, 0.2)
    assert isinstance(raised.value, AbortableError)  # the loop recovers as from any failure
    assert time.monotonic() - started < 2
    release.set()  # the abandoned call's thread ends when the call does
