"""The matcher service end to end through Kafka: commands produced -> events consumed.

Saturation throughput (100,000 commands: drained as a backlog, and as a live burst) and
command -> event latency at a fixed moderate rate. The matcher runs as its real process (I/O
process + pinned core process); the broker is on the same 2-core machine, as are this
producer and consumer.
"""

from __future__ import annotations

import os
import statistics
import threading
import time
import uuid
from dataclasses import dataclass

from confluent_kafka import Consumer, TopicPartition

from bench.matcher_core import mixed_flow
from bench.stack_cpu import (
    CpuProbe,
    find_infra,
    machine_seconds,
    percent_of_core,
    stolen_percent,
    verdict,
)
from libs.bus import Outgoing, next_offsets
from libs.bus.kafka import KafkaBus
from libs.messages import ANY, BatchCompleted, encode
from libs.ops import calm_gc
from services.matcher.flow import percentile
from services.matcher.settings import MatcherSettings
from tests.integration.matcher.harness import BTC, MatcherRun

BURST = 100_000
BACKLOG_ROUNDS = 3
RATE = 5_000
# A latency round covers one of the symbol's commits, the stall it costs its turns included.
COMMIT_SECONDS = MatcherSettings.model_fields["matcher_commit_seconds"].default
RATE_SECONDS = int(COMMIT_SECONDS)
SNAPSHOT_EVERY = MatcherSettings.model_fields["matcher_snapshot_every"].default
WARMUP_SECONDS = 2
SEND_TICK = 0.001  # seconds: commands due within this of now are sent now
FLOOR_PACE = 0.005  # seconds between records: about the matcher's turn rate at RATE
FLOOR_RECORDS = int((COMMIT_SECONDS + WARMUP_SECONDS) / FLOOR_PACE)  # one commit in it, too
P99_TARGET_MS = 20.0  # at RATE (issue 12)
# The latency is taken warm: rounds at RATE repeat until the broker's JIT compiler used less
# than JIT_QUIET_PERCENT of a core over one (a running exchange's broker has long compiled its
# hot paths; cold, it spent more CPU compiling than serving), at most LATENCY_ROUNDS of them.
JIT_QUIET_PERCENT = 5.0
LATENCY_ROUNDS = 5
# This VM's p99 at RATE moves from run to run (14-46 ms in six runs in one day): the
# figure is the median of WARM_ROUNDS warm rounds, each shown with the share stolen in it.
WARM_ROUNDS = 3


def _consume_batches(run: MatcherRun, until_offset: int, on_batch) -> None:
    """Read matcher events until a BatchCompleted covers ``until_offset``."""
    consumer = run.bus.consumer(f"bench-{run.name}", partitions=[(run.events, 0)])
    try:
        while True:
            for record in consumer.poll_batch(10_000, 0.5):
                if b"BatchCompleted" not in (record.value or b""):
                    continue
                event = ANY.decode(record.value)
                assert isinstance(event, BatchCompleted)
                on_batch(event, time.perf_counter())
                if event.cmd_offset >= until_offset:
                    return
    finally:
        consumer.close()


def _ready(run: MatcherRun) -> None:
    run.start()
    run.live_digest()  # answers once the service is up and its books are loaded


def saturation(bootstrap: str, commands: list, max_poll: int = 2_048) -> float:
    """Commands/s through the service for a burst; ``max_poll`` commands per turn."""
    run = MatcherRun(bootstrap, snapshot_every=10**9, max_poll=max_poll)
    _ready(run)
    try:
        producer = run.bus.producer()
        started = time.perf_counter()
        done: dict[str, float] = {}
        reader = threading.Thread(
            target=_consume_batches,
            args=(run, len(commands) - 1, lambda e, t: done.__setitem__("at", t)),
        )
        reader.start()
        for command in commands:
            producer.produce(Outgoing(run.commands, encode(command), b"BTC-PERP", 0))
        producer.flush()
        reader.join()
        return len(commands) / (done["at"] - started)
    finally:
        run.stop()


def backlog_saturation(bootstrap: str, commands: list) -> float:
    """Commands/s of the service alone draining a backlog, as after a restart or a burst that
    outran it: every command is in its input topic before it starts, so no client shares the
    two cores while it runs. Timed by its own events' CreateTimes, from the first event to the
    ``BatchCompleted`` of the last command (the start-up and the recovery are not counted)."""
    run = MatcherRun(bootstrap, snapshot_every=10**9)
    run.produce(commands)
    reader = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": run.name, "enable.auto.commit": False}
    )
    events = TopicPartition(run.events, 0)
    run.start()
    try:
        end, unchanged = -1, 0
        while unchanged < 3:  # drained: the log end has not moved for 1.5 s
            time.sleep(0.5)
            now = reader.get_watermark_offsets(events, timeout=10)[1]
            unchanged = unchanged + 1 if now == end and now > 0 else 0
            end = now
            assert run.process is not None and run.process.poll() is None, "the matcher died"
        reader.assign([TopicPartition(run.events, 0, 0)])
        first = last = None
        while last is None:
            for message in reader.consume(10_000, 1.0):
                stamp = message.timestamp()[1]
                first = stamp if first is None else first
                value = message.value() or b""
                if b"BatchCompleted" in value:
                    event = ANY.decode(value)
                    assert isinstance(event, BatchCompleted)
                    if event.cmd_offset == len(commands) - 1:
                        last = stamp
        return len(commands) / max((last - first) / 1000, 1e-3)
    finally:
        reader.close()
        run.stop()


def latency(bootstrap: str, commands: list) -> tuple[list[int], float]:
    """Send at RATE/s; return per-command latencies (ns) and the achieved send rate."""
    # the service's own snapshot cadence: at RATE its snapshots (each after a commit) fall
    # inside the round too
    run = MatcherRun(bootstrap, snapshot_every=SNAPSHOT_EVERY)
    _ready(run)
    sent: list[float] = []
    latencies: list[int] = []

    warmup = RATE * WARMUP_SECONDS  # coordinator lookups, first fetches: not measured

    def on_batch(event: BatchCompleted, now: float) -> None:
        for offset in range(max(event.first_offset, warmup), event.cmd_offset + 1):
            latencies.append(int((now - sent[offset]) * 1e9))

    try:
        producer = run.bus.producer()
        count = warmup + RATE * RATE_SECONDS
        reader = threading.Thread(target=_consume_batches, args=(run, count - 1, on_batch))
        reader.start()
        interval = 1.0 / RATE
        messages = [Outgoing(run.commands, encode(c), b"BTC-PERP", 0) for c in commands[:count]]
        started = time.perf_counter()
        for index, message in enumerate(messages):
            # a wake-up per millisecond, not per command: what is due within it goes at once.
            # This client shares the two cores with what it measures: in two interleaved runs
            # each, the broker then used 0.43-0.45 of a core against 0.59-0.66, p99 130-159
            # against 263-293 ms (fewer, fuller produce requests)
            ahead = started + index * interval - time.perf_counter()
            if ahead > SEND_TICK:
                time.sleep(ahead)
            sent.append(time.perf_counter())
            producer.produce(message)
        achieved = count / (time.perf_counter() - started)
        producer.flush()
        reader.join()
        return latencies, achieved
    finally:
        run.stop()


@dataclass(frozen=True)
class Round:
    """One latency round at RATE: sorted per-command latencies (ns), the achieved send rate,
    the broker's JIT compiler in % of a core (None: the broker is not on this machine) and
    the share of the machine the hypervisor took meanwhile."""

    latencies: list[int]
    achieved: float
    jit: float | None
    stolen: float

    def p99_ms(self) -> float:
        return percentile(self.latencies, 0.99) / 1e6


def warm_latency(bootstrap: str, commands: list) -> tuple[list[Round], int]:
    """``latency`` once the broker is warm: rounds repeat until its JIT compiler is quiet
    (at most LATENCY_ROUNDS), then WARM_ROUNDS rounds count, the quiet one first. Return the
    counted rounds and how many ran before them."""
    probe = CpuProbe(find_infra(os.environ))
    counted: list[Round] = []
    ran = 0
    while len(counted) < WARM_ROUNDS:
        compiled, machine, started = probe.compiling(), machine_seconds(), time.monotonic()
        latencies, achieved = latency(bootstrap, commands)
        seconds = time.monotonic() - started
        jit = percent_of_core(compiled, probe.compiling(), seconds)["kafka broker"]
        done = Round(sorted(latencies), achieved, jit, stolen_percent(machine, machine_seconds()))
        if counted or jit is None or jit < JIT_QUIET_PERCENT or ran + 1 == LATENCY_ROUNDS:
            counted.append(done)
        else:
            ran += 1
    return counted, ran


def _round(result: Round) -> str:
    jit = "" if result.jit is None else f", JIT {result.jit:.1f}%"
    return f"{result.p99_ms():.2f} ms ({result.stolen:.0f}% stolen{jit})"


def produce_floor(bootstrap: str) -> tuple[list[int], list[int]]:
    """The least an event costs on the matcher's path, with no matching at all: one-record
    produces of a transactional producer whose transaction stays open, paced like the
    matcher's turns, committed with an input offset every ``COMMIT_SECONDS`` as the matcher
    commits them. Return per-record nanoseconds from produce to the record reaching a
    read_uncommitted consumer, and per-commit nanoseconds (a commit is off the event's path,
    but the turn that commits waits for it)."""
    bus = KafkaBus(bootstrap, producer_config={"linger.ms": 1})
    name = f"floor-{uuid.uuid4().hex[:8]}"
    source, sink = f"{name}.in", f"{name}.out"
    bus.create_topic(source, 1)
    bus.create_topic(sink, 1)
    feeder = bus.producer()
    feeder.produce(Outgoing(source, b"0", partition=0))
    feeder.flush()
    consumer = bus.consumer(f"{name}.loop", partitions=[(source, 0)])
    inputs: list = []
    while not inputs:
        inputs = consumer.poll_batch(1, 1.0)
    producer = bus.producer(f"{name}.tx")
    sent: dict[int, float] = {}
    seen: dict[int, float] = {}

    def read() -> None:
        reader = bus.consumer(f"{name}.reader", partitions=[(sink, 0)])
        while len(seen) < FLOOR_RECORDS:
            for record in reader.poll_batch(1_000, 0.5):
                seen[int(record.value or b"")] = time.perf_counter()
        reader.close()

    reader = threading.Thread(target=read)
    reader.start()
    commits: list[int] = []
    producer.begin()
    opened = time.perf_counter()
    for index in range(FLOOR_RECORDS):
        sent[index] = started = time.perf_counter()
        producer.produce(Outgoing(sink, str(index).encode(), partition=0))
        if started - opened >= COMMIT_SECONDS:
            producer.commit(next_offsets(inputs), consumer)
            commits.append(int((time.perf_counter() - started) * 1e9))
            producer.begin()
            opened = time.perf_counter()
        time.sleep(max(0.0, started + FLOOR_PACE - time.perf_counter()))
    producer.commit(next_offsets(inputs), consumer)
    reader.join()
    producer.close()
    consumer.close()
    visible = [int((seen[i] - sent[i]) * 1e9) for i in range(FLOOR_RECORDS)]
    skip = FLOOR_RECORDS // 10  # coordinator lookups, first fetches
    return sorted(visible[skip:]), sorted(commits)


def run() -> str:
    bootstrap = os.environ["KAFKA_BOOTSTRAP_SERVERS"]
    commands = mixed_flow(BTC, BURST, seed=7)
    calm_gc()  # this producer and consumer as the services run: no long collector pauses
    backlog = [backlog_saturation(bootstrap, commands) for _ in range(BACKLOG_ROUNDS)]
    drained = statistics.median(backlog)
    burst = saturation(bootstrap, commands)
    burst_per_batch = saturation(bootstrap, commands, max_poll=256)
    paced = mixed_flow(BTC, RATE * (WARMUP_SECONDS + RATE_SECONDS), seed=7)
    rounds, cold = warm_latency(bootstrap, paced)
    shown = sorted(rounds, key=Round.p99_ms)[len(rounds) // 2]  # the median p99's round
    achieved = shown.achieved
    p50, p99, p999 = (percentile(shown.latencies, q) / 1e6 for q in (0.5, 0.99, 0.999))
    visible, commits = produce_floor(bootstrap)
    floor = [percentile(visible, q) / 1e6 for q in (0.5, 0.99, 0.999)]
    commit = [percentile(commits, q) / 1e6 for q in (0.5, 0.99)] if commits else [0.0, 0.0]
    return "\n".join(
        [
            "## Matcher service through Kafka",
            "",
            "The real service (I/O process + pinned core process + shared-memory rings) on its own "
            "topics; a producer and a consumer in this process; broker on the same machine. "
            "Mixed flow (limits, markets, cancels; ~1,000 resting orders). Latency: from the "
            "producer's `produce()` call to the consumer receiving the `BatchCompleted` that "
            "covers the command (so it includes producer batching, the matcher's turn and the "
            "read_uncommitted fetch; no transaction commit is on the way, but a round of "
            f"{RATE_SECONDS} s holds one of the symbol's commits, every {COMMIT_SECONDS:g} s, "
            f"and its snapshots, every {SNAPSHOT_EVERY:,} commands, each after a commit: the "
            "flush and round trips of a commit hold the symbol's turns meanwhile). "
            "Saturation is the "
            "service alone draining a backlog (`backlog_saturation`: the commands are in its "
            "input topic before it starts; timed by its events' own CreateTimes, first event to "
            "the last command's `BatchCompleted`); produced live instead, this process's "
            "producer and its consumer of every event share the two cores with it.",
            "",
            "| measure | result |",
            "| --- | ---: |",
            f"| saturation: a backlog of {BURST:,} commands drained (median of "
            f"{BACKLOG_ROUNDS}: " + ", ".join(f"{r:,.0f}" for r in backlog) + ") | "
            f"{drained:,.0f} commands/s |",
            f"| the same burst produced as fast as possible while the service runs | "
            f"{burst:,.0f} commands/s |",
            f"| the same with one core batch (256 commands) per turn "
            f"(`MATCHER_MAX_POLL=256`) | {burst_per_batch:,.0f} commands/s |",
            f"| latency at {achieved:,.0f} commands/s for {RATE_SECONDS} s "
            f"(after {WARMUP_SECONDS} s of warm-up): p50 | {p50:.2f} ms |",
            f"| p99 | {p99:.2f} ms |",
            f"| p99.9 | {p999:.2f} ms |",
            "",
            f"The latency above is from the round with the median p99 of {len(rounds)} warm "
            f"rounds at that rate (p99 " + ", ".join(_round(r) for r in rounds) + "), after "
            f"{cold} round{'' if cold == 1 else 's'} that warmed the broker. A round counts "
            f"once the broker's JIT compiler threads use under {JIT_QUIET_PERCENT:.0f}% of a "
            f"core in one (or after {LATENCY_ROUNDS - 1} rounds): a broker just started spends "
            "as much CPU compiling its hot paths as serving them.",
            "",
            f"The floor, measured in the same run with no matching at all: {FLOOR_RECORDS:,} "
            f"one-record produces, one every {FLOOR_PACE * 1e3:.0f} ms, by a transactional "
            f"producer whose transaction stays open and commits an input offset every "
            f"{COMMIT_SECONDS:.0f} s, as the matcher writes (`produce_floor`):",
            "",
            "| from produce to | p50 | p99 | p99.9 |",
            "| --- | ---: | ---: | ---: |",
            f"| record visible to a read_uncommitted consumer | {floor[0]:.2f} ms | "
            f"{floor[1]:.2f} ms | {floor[2]:.2f} ms |",
            "",
            f"Its {len(commits)} commits took p50 {commit[0]:.2f} ms, p99 {commit[1]:.2f} ms; "
            f"the turn that commits waits for that, once every {COMMIT_SECONDS:g} s per symbol.",
            "",
            f"Against the issue's targets: saturation {drained:,.0f} commands/s "
            f"({verdict(drained >= 40_000)} >= 40,000); p99 {p99:.2f} ms at "
            f"{RATE:,} commands/s ({verdict(p99 <= P99_TARGET_MS)} <= {P99_TARGET_MS:g} ms).",
        ]
    )


if __name__ == "__main__":
    print(run())
