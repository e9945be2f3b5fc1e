"""The loop's error paths, driven by fault injection on the in-memory bus."""

from __future__ import annotations

from libs.bus import AbortableError, FatalError, JournalLoop, MemoryBus, Outgoing
from tests.integration.bus.echo import Echo, create_echo_topics, echoed


def _loop(bus: MemoryBus) -> JournalLoop:
    create_echo_topics(bus, "t", 1)
    producer = bus.producer()
    for i in range(10):
        producer.produce(Outgoing("t-in", b"x%d" % i, partition=0))
    echo = Echo(bus, "t", 1, snapshot_every=3)  # a snapshot every few turns: commits
    return JournalLoop(
        bus, echo, group_id="g", transactional_id="tx", partitions=echo.inputs, max_batch=4
    )


def _drain(loop: JournalLoop) -> None:
    for _ in range(20):
        loop.run_once()


def _exactly_once(bus: MemoryBus) -> None:
    echoes, numbers = echoed(bus, "t", 1)
    assert echoes[0] == [b"0:%d" % i for i in range(10)]
    assert numbers == list(range(1, 11))


def test_an_abortable_failure_recovers_from_the_log_so_nothing_doubles():
    bus = MemoryBus()
    loop = _loop(bus)
    loop.run_once()
    loop.producer.fail_next_commit = AbortableError("broker hiccup")  # type: ignore[union-attr]
    _drain(loop)
    _exactly_once(bus)
    assert loop.stats.aborts == 1


def test_a_fatal_producer_error_recreates_the_producer_and_loses_nothing():
    bus = MemoryBus()
    loop = _loop(bus)
    loop.producer.fail_next_commit = FatalError("producer state lost")  # type: ignore[union-attr]
    _drain(loop)
    _exactly_once(bus)
    assert loop.stats.producer_restarts == 1


def test_a_failed_output_is_produced_once_by_the_recovery():
    bus = MemoryBus()
    loop = _loop(bus)
    loop.run_once()
    # the next turn's journal record goes in; its first output fails (and with it the rest)
    producer = loop.producer
    assert producer is not None
    original = producer.produce
    calls = {"n": 0}

    def flaky(message: Outgoing) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise AbortableError("delivery failed")
        original(message)

    producer.produce = flaky  # type: ignore[method-assign]
    _drain(loop)
    _exactly_once(bus)


STUCK_LOOP = """
import time
from libs.bus import JournalLoop, MemoryBus, Outgoing
from tests.integration.bus.echo import Echo, create_echo_topics

class Stuck(Echo):
    def apply_record(self, record):
        time.sleep(60)  # a call that never returns, as librdkafka's can after a broker loss
        return []

bus = MemoryBus()
create_echo_topics(bus, "t", 1)
bus.producer().produce(Outgoing("t-in", b"x", partition=0))
stuck = Stuck(bus, "t", 1)
loop = JournalLoop(bus, stuck, group_id="g", transactional_id="tx",
                   partitions=stuck.inputs, stall_timeout=1.0)
loop.run_once()
"""


def test_a_turn_stuck_past_the_stall_timeout_exits_the_process_for_a_restart():
    import subprocess
    import sys
    import time

    from libs.bus.loop import Watchdog

    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", STUCK_LOOP], capture_output=True, timeout=30)
    assert done.returncode == Watchdog.EXIT_CODE
    assert time.monotonic() - started < 20
    assert b"stuck" in done.stderr
