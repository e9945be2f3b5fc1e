"""Does ``fetch.wait.max.ms`` add produce -> consume latency? Measure it on the real broker.

    python scripts/fetch_wait_latency.py [--waits 10,100,500] [--records 2000] [--gapped 150]

For each wait, and for a transactional producer (one record per transaction, as the services'
turns) read by a read_committed consumer and for a plain idempotent producer read by a
read_uncommitted one, it measures the time from handing a record to the producer until the
consumer returns it: at a steady rate (``--rate``, default 200/s) and one record at a time
with idle gaps of 100-500 ms (where a broker holding an empty fetch would show). Prints p50,
p99 and max in ms per case. The consumer polls the way the services do (``fetch_ready``).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import struct
import threading
import time
import uuid

from confluent_kafka import Consumer, Producer, TopicPartition

from libs.bus.kafka import KafkaBus, fetch_ready

STAMP = struct.Struct("<q")


def _consumer(bootstrap: str, topic: str, wait_ms: int, committed: bool) -> Consumer:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"fetch-wait-{uuid.uuid4().hex}",
            "isolation.level": "read_committed" if committed else "read_uncommitted",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "fetch.wait.max.ms": wait_ms,
        }
    )
    consumer.assign([TopicPartition(topic, 0, 0)])
    return consumer


def _producer(bootstrap: str, transactional: bool) -> Producer:
    config = {
        "bootstrap.servers": bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 2,
        "retry.backoff.ms": 5,
        "compression.type": "lz4",
    }
    if transactional:
        config["transactional.id"] = f"fetch-wait-{uuid.uuid4().hex}"
    producer = Producer(config)
    if transactional:
        producer.init_transactions(30)
    return producer


def run_case(bootstrap: str, wait_ms: int, transactional: bool, gaps: list[float]) -> list[float]:
    """Send ``len(gaps)`` records, sleeping ``gaps[i]`` s before record i; return latencies (ms)."""
    topic = f"fetch-wait-{uuid.uuid4().hex[:10]}"
    KafkaBus(bootstrap).create_topic(topic, 1)
    producer = _producer(bootstrap, transactional)
    consumer = _consumer(bootstrap, topic, wait_ms, committed=transactional)
    latencies: list[float] = []
    done = threading.Event()

    def consume() -> None:
        while len(latencies) < len(gaps):
            for message in fetch_ready(consumer, 1000, 0.1):
                if message.error() is None:
                    (sent,) = STAMP.unpack(message.value()[:8])
                    latencies.append((time.perf_counter_ns() - sent) / 1e6)
        done.set()

    # warm up the connection and the first fetch before measuring
    reader = threading.Thread(target=consume, daemon=True)
    time.sleep(1.0)
    consumer.poll(0.5)
    reader.start()
    padding = os.urandom(120)
    for gap in gaps:
        due = time.perf_counter() + gap
        while (left := due - time.perf_counter()) > 0:
            time.sleep(left)
        value = STAMP.pack(time.perf_counter_ns()) + padding
        if transactional:
            producer.begin_transaction()
            producer.produce(topic, value)
            producer.commit_transaction(30)
        else:
            producer.produce(topic, value)
            producer.poll(0)
    producer.flush(30)
    done.wait(60)
    consumer.close()
    KafkaBus(bootstrap).admin.delete_topics([topic])
    return latencies


def _summary(latencies: list[float]) -> str:
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    return (
        f"n={len(ordered):5d} p50={statistics.median(ordered):7.2f} "
        f"p99={p99:7.2f} max={ordered[-1]:7.2f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS"))
    parser.add_argument("--waits", default="10,100,500")
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--records", type=int, default=2000, help="records at --rate")
    parser.add_argument("--gapped", type=int, default=150, help="records with 100-500 ms gaps")
    parser.add_argument("--modes", default="txn,plain")
    args = parser.parse_args()
    waits = [int(w) for w in args.waits.split(",")]
    rng = random.Random(7)
    steady = [1 / args.rate] * args.records
    gapped = [rng.uniform(0.1, 0.5) for _ in range(args.gapped)]
    for mode in args.modes.split(","):
        transactional = mode == "txn"
        label = "txn -> read_committed" if transactional else "idempotent -> read_uncommitted"
        for wait_ms in waits:
            for name, gaps in (("steady", steady), ("gapped", gapped)):
                if not gaps:
                    continue
                latencies = run_case(args.bootstrap, wait_ms, transactional, gaps)
                print(
                    f"{label:32s} fetch.wait.max.ms={wait_ms:4d} {name:6s} {_summary(latencies)}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
