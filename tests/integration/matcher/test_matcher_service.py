"""The matcher service through real Kafka: same events as the in-process core, digests that
agree, and recovery after kill -9 of either process, of both, and of the broker."""

from __future__ import annotations

import random
import shutil
import subprocess
import tempfile
import time

import pytest

from bench.matcher_core import mixed_flow
from libs.messages import BatchCompleted

from .harness import BTC, ROOT, MatcherRun, free_port, one_by_one, reference_events

COMMANDS = 100_000


@pytest.fixture(scope="module")
def flow() -> list:
    return mixed_flow(BTC, COMMANDS, seed=2026)


@pytest.fixture(scope="module")
def uninterrupted(flow) -> list:
    """What an uninterrupted run emits when every command is its own batch."""
    return one_by_one(flow)


def test_a_100k_command_flow_through_kafka_gives_the_in_process_core_events(
    kafka_bootstrap: str, flow: list
):
    run = MatcherRun(kafka_bootstrap)
    run.produce(flow)
    run.start()
    try:
        run.wait_applied(COMMANDS)
        events = run.read_events()
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        assert sum(e.size for e in events if isinstance(e, BatchCompleted)) == COMMANDS
        assert events == reference_events(flow, events)
        live = run.live_digest()
        assert live["offset"] == COMMANDS - 1
        assert run.rebuilt_digest() == live
    finally:
        run.stop()


@pytest.mark.parametrize("target", ["core", "io", "both"])
def test_kill_9_at_random_points_loses_and_doubles_nothing(
    kafka_bootstrap: str, flow: list, uninterrupted: list, target: str
):
    run = MatcherRun(kafka_bootstrap, max_batch=1, snapshot_every=7_000)
    run.produce(flow)
    rng = random.Random(f"kill-{target}")
    kills = 0
    for fraction in sorted(rng.uniform(0.1, 0.9) for _ in range(3)):
        run.start()
        run.wait_events(int(len(uninterrupted) * fraction))  # no duplicates: a prefix of it
        run.kill(target)
        kills += int(run.applied() < COMMANDS)
    run.start()
    try:
        run.wait_applied(COMMANDS)
        assert kills >= 2, "the kills must land while commands remain"
        assert run.read_events() == uninterrupted
        assert run.rebuilt_digest() == run.live_digest()
    finally:
        run.stop()


def test_the_matcher_rides_out_a_broker_restart(flow: list, uninterrupted: list):
    data = tempfile.mkdtemp(prefix="matcher-broker-")
    port, controller = free_port(), free_port()
    bootstrap = f"127.0.0.1:{port}"

    def start_broker() -> subprocess.Popen:
        broker = subprocess.Popen(
            ["scripts/kafka.sh", "start", data, str(port), str(controller)],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        subprocess.run(["scripts/kafka.sh", "wait", bootstrap, "90"], cwd=ROOT, check=True)
        return broker

    broker = start_broker()
    # the watchdog stays above librdkafka's own bounded waits (init_transactions 30 s,
    # commit 60 s): only a call stuck past its timeout may end the process
    run = MatcherRun(bootstrap, max_batch=1, snapshot_every=7_000, stall_seconds=90)
    try:
        run.produce(flow)
        run.start()
        run.wait_applied(COMMANDS // 3)
        broker.terminate()
        broker.wait(60)
        time.sleep(2)
        broker = start_broker()
        # the same process recovers by itself: losing the broker is an outage to ride out
        run.wait_applied(COMMANDS, timeout=240)
        assert run.process.poll() is None, "the matcher exited"
        assert run.read_events() == uninterrupted
        assert run.rebuilt_digest() == run.live_digest()
    finally:
        run.stop()
        broker.terminate()
        broker.wait(60)
        shutil.rmtree(data, ignore_errors=True)
