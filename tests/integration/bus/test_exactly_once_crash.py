"""kill -9 a journaled worker mid-flow, again and again: every input still appears in the
output exactly once and in order, and the state the outputs carry (a running count) never
repeats or skips a number, because each turn is journaled before its outputs go out and a
successor fences, then produces only what is missing."""

from __future__ import annotations

import collections
import os
import random
import signal
import subprocess
import sys
import time

from libs.bus import Outgoing
from libs.bus.kafka import KafkaBus
from tests.integration.bus.echo import create_echo_topics, echoed

INPUTS_PER_PARTITION = 1500
PARTITIONS = 2


def _start_worker(bootstrap: str, name: str) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.integration.bus.echo_worker",
            bootstrap,
            name,
            str(PARTITIONS),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _done(bus: KafkaBus, name: str) -> bool:
    offsets = bus.group_offsets(f"{name}-g", [(f"{name}-in", p) for p in range(PARTITIONS)])
    return all(o == INPUTS_PER_PARTITION for o in offsets.values())


def test_kill_9_mid_transaction_loses_nothing_and_doubles_nothing(kafka_bootstrap: str, name: str):
    bus = KafkaBus(kafka_bootstrap)
    create_echo_topics(bus, name, PARTITIONS)
    producer = bus.producer()
    for _offset in range(INPUTS_PER_PARTITION):
        for partition in range(PARTITIONS):
            producer.produce(Outgoing(f"{name}-in", b"v", key=b"k", partition=partition))
    producer.flush()

    rng = random.Random(7)
    kills_mid_flow = 0
    for _ in range(4):
        worker = _start_worker(kafka_bootstrap, name)
        time.sleep(rng.uniform(1.5, 3.0))
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait()
        if _done(bus, name):
            break
        kills_mid_flow += 1

    worker = _start_worker(kafka_bootstrap, name)
    try:
        deadline = time.monotonic() + 120
        while not _done(bus, name):
            assert time.monotonic() < deadline, "the restarted worker did not finish the input"
            assert worker.poll() is None, "the worker died"
            time.sleep(0.5)
    finally:
        worker.terminate()
        worker.wait(10)

    assert kills_mid_flow >= 1, "no kill landed while input remained: the test proved nothing"
    echoes, numbers = echoed(bus, name, PARTITIONS)
    seen = collections.Counter()
    for partition in range(PARTITIONS):
        expected = [b"%d:%d" % (partition, o) for o in range(INPUTS_PER_PARTITION)]
        assert echoes[partition] == expected, f"partition {partition}: outputs differ from inputs"
        seen.update(echoes[partition])
    assert all(count == 1 for count in seen.values())
    assert numbers == list(range(1, PARTITIONS * INPUTS_PER_PARTITION + 1))
