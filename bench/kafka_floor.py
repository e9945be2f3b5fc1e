"""The plain Kafka floor of the order path: a record relayed through three hops.

The order path is gateway -> wallet -> matcher -> gateway: three produce -> consume legs,
each produced by another process. The floor does the same with no work and no transactions:
this process produces record i to topic 0 when it is due (``i / RATE`` s), a relay process
copies topic 0 to topic 1, another copies 1 to 2, and a reader thread here takes it from
topic 2; latency runs from when the record was due. Idempotent producers, acks=all, the
bus's read_committed consumers, ``linger.ms`` 0 (the least a hop can cost).

``python -m bench.kafka_floor BOOTSTRAP SOURCE SINK`` runs one relay.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import threading
import time
import uuid

from bench.http_load import quantile
from bench.stack_cpu import CpuProbe, find_infra, ms_per_order
from libs.bus import Outgoing
from libs.bus.kafka import KafkaBus

RATE = 500
SECONDS = 10
WARMUP_SECONDS = 2  # metadata, first fetches: sent, not measured
HOPS = 3
PRODUCER = {"linger.ms": 0}


def relay(bootstrap: str, source: str, sink: str) -> None:
    """Copy every record of ``source`` to ``sink`` (partition 0), forever."""
    bus = KafkaBus(bootstrap, client_id="floor-relay", producer_config=PRODUCER)
    consumer = bus.consumer(f"{source}.relay", partitions=[(source, 0)])
    producer = bus.producer()
    print("ready", flush=True)
    while True:
        records = consumer.poll_batch(1_000, 0.5)
        for record in records:
            producer.produce(Outgoing(sink, record.value, partition=0))
        if records:
            producer.flush()  # sends at once and serves the delivery callbacks


def measure(bootstrap: str, rate: int = RATE, seconds: float = SECONDS) -> dict:
    """Send ``rate`` records/s for ``WARMUP_SECONDS + seconds``; return latency quantiles
    (ms) of the measured ones and each process's CPU ms per measured record."""
    bus = KafkaBus(bootstrap, client_id="floor", producer_config=PRODUCER)
    name = f"floor-{uuid.uuid4().hex[:8]}"
    topics = [f"{name}.{n}" for n in range(HOPS)]
    for topic in topics:
        bus.create_topic(topic, 1)
    relays = [
        subprocess.Popen(
            [sys.executable, "-m", "bench.kafka_floor", bootstrap, source, sink],
            stdout=subprocess.PIPE,
        )
        for source, sink in itertools.pairwise(topics)
    ]
    try:
        for process in relays:
            if process.stdout is None or b"ready" not in process.stdout.readline():
                raise RuntimeError("a floor relay did not start")
        return _send(bus, topics, rate, seconds, relays)
    finally:
        for process in relays:
            process.terminate()
            process.wait(10)


def _send(
    bus: KafkaBus, topics: list[str], rate: int, seconds: float, relays: list[subprocess.Popen]
) -> dict:
    warmup = int(rate * WARMUP_SECONDS)
    total = warmup + int(rate * seconds)
    arrived: dict[int, float] = {}

    def read() -> None:
        reader = bus.consumer(f"{topics[-1]}.reader", partitions=[(topics[-1], 0)])
        deadline = time.monotonic() + WARMUP_SECONDS + seconds + 30
        while len(arrived) < total and time.monotonic() < deadline:
            for record in reader.poll_batch(1_000, 0.5):
                arrived[int(record.value or b"")] = time.perf_counter()
        reader.close()

    pids: dict[str, int | None] = {f"relay {n + 1}": p.pid for n, p in enumerate(relays)}
    pids |= {"kafka broker": find_infra(os.environ)["kafka broker"], "origin": os.getpid()}
    probe = CpuProbe(pids)
    reader = threading.Thread(target=read)
    reader.start()
    producer = bus.producer()
    started = time.perf_counter()
    cpu_before: dict[str, float | None] = {}
    for i in range(total):
        if i == warmup:
            cpu_before = probe.read()
        due = started + i / rate
        while (now := time.perf_counter()) < due:
            time.sleep(min(due - now, 0.001))
        producer.produce(Outgoing(topics[0], str(i).encode(), partition=0))
    producer.flush()
    reader.join()
    cpu = ms_per_order(cpu_before, probe.read(), total - warmup)
    measured = [i for i in range(warmup, total) if i in arrived]
    ms = sorted((arrived[i] - (started + i / rate)) * 1000 for i in measured)
    return {
        "rate": rate,
        "records": total - warmup,
        "lost": total - warmup - len(ms),
        "p50": quantile(ms, 0.5),
        "p90": quantile(ms, 0.9),
        "p99": quantile(ms, 0.99),
        "cpu": cpu,
    }


if __name__ == "__main__":
    relay(*sys.argv[1:4])
