"""The loop's error paths, driven by fault injection on the in-memory bus."""

from __future__ import annotations

from libs.bus import AbortableError, FatalError, MemoryBus, Outgoing, TransactionalLoop

from .test_bus_contract import Doubler


def _loop(bus: MemoryBus, sink: str) -> TransactionalLoop:
    bus.create_topic("in", 1)
    bus.create_topic(sink, 1)
    producer = bus.producer()
    for i in range(10):
        producer.produce(Outgoing("in", b"x%d" % i, partition=0))
    return TransactionalLoop(
        bus, Doubler(sink), group_id="g", transactional_id="tx", partitions=[("in", 0)], max_batch=4
    )


def _drain(loop: TransactionalLoop) -> None:
    for _ in range(20):
        loop.run_once()


def test_an_abortable_failure_rewinds_input_and_state_so_nothing_doubles():
    bus = MemoryBus()
    loop = _loop(bus, "out")
    loop.run_once()
    loop.producer.fail_next_commit = AbortableError("broker hiccup")  # type: ignore[attr-defined]
    _drain(loop)
    values = [r.value for r in bus.replay("out", 0)]
    assert values[0::2] == [b"x%d" % i for i in range(10)]
    assert values[1::2] == [b"#%d" % i for i in range(1, 11)]
    assert loop.stats.aborts == 1


def test_a_fatal_producer_error_recreates_the_producer_and_loses_nothing():
    bus = MemoryBus()
    loop = _loop(bus, "out")
    loop.producer.fail_next_commit = FatalError("producer state lost")  # type: ignore[attr-defined]
    _drain(loop)
    values = [r.value for r in bus.replay("out", 0)]
    assert values[0::2] == [b"x%d" % i for i in range(10)]
    assert loop.stats.producer_restarts == 1


STUCK_LOOP = """
import time
from libs.bus import MemoryBus, Outgoing, TransactionalLoop

class Stuck:
    def handle(self, records):
        time.sleep(60)  # a call that never returns, as librdkafka's can after a broker loss
        return []
    def rewind(self, committed):
        pass

bus = MemoryBus()
bus.create_topic("in", 1)
bus.producer().produce(Outgoing("in", b"x", partition=0))
loop = TransactionalLoop(bus, Stuck(), group_id="g", transactional_id="tx",
                         partitions=[("in", 0)], stall_timeout=1.0)
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
