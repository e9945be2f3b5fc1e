"""Produce -> consume throughput through the real broker: plain, transactional, and the
exactly-once consume-process-produce loop of libs.bus."""

from __future__ import annotations

import os
import time
import uuid

from libs.bus import JournalLoop, Outgoing
from libs.bus.kafka import KafkaBus
from libs.messages import OrderFilled, Side, encode

MESSAGES = 200_000
TRANSACTION_SIZE = 1_000


def _payload() -> bytes:
    return encode(
        OrderFilled(
            symbol="BTC-PERP",
            seq=1,
            cmd_offset=1,
            trade_id=1,
            price=500001,
            qty=500,
            taker_order_id=2,
            taker_user_id=43,
            taker_side=Side.SELL,
            taker_remaining=0,
            maker_order_id=1,
            maker_user_id=42,
            maker_remaining=1000,
        )
    )


def _consume_all(bus: KafkaBus, topic: str, count: int) -> float:
    """Return the time at which the last of ``count`` records was consumed."""
    consumer = bus.consumer(f"bench-{uuid.uuid4().hex}", partitions=[(topic, 0)])
    seen = 0
    while seen < count:
        seen += len(consumer.poll_batch(10_000, 1.0))
    done = time.perf_counter()
    consumer.close()
    return done


def _plain(bus: KafkaBus, topic: str, value: bytes) -> float:
    producer = bus.producer()
    start = time.perf_counter()
    for _ in range(MESSAGES):
        producer.produce(Outgoing(topic, value, partition=0))
    producer.flush()
    return MESSAGES / (_consume_all(bus, topic, MESSAGES) - start)


def _transactional(bus: KafkaBus, topic: str, value: bytes) -> float:
    producer = bus.producer(f"bench-{uuid.uuid4().hex}")
    consumer = bus.consumer(f"bench-{uuid.uuid4().hex}", partitions=[(topic, 0)])
    start = time.perf_counter()
    for _ in range(MESSAGES // TRANSACTION_SIZE):
        producer.begin()
        for _ in range(TRANSACTION_SIZE):
            producer.produce(Outgoing(topic, value, partition=0))
        producer.commit({}, consumer)
    consumer.close()
    return MESSAGES / (_consume_all(bus, topic, MESSAGES) - start)


def _loop(bus: KafkaBus, name: str, value: bytes) -> float:
    from tests.integration.bus.echo import Echo, create_echo_topics

    create_echo_topics(bus, name, 1)
    producer = bus.producer()
    for _ in range(MESSAGES):
        producer.produce(Outgoing(f"{name}-in", value, partition=0))
    producer.flush()
    echo = Echo(bus, name, 1, snapshot_every=MESSAGES)
    loop = JournalLoop(
        bus,
        echo,
        group_id=f"bench-{uuid.uuid4().hex}",
        transactional_id=f"bench-{uuid.uuid4().hex}",
        partitions=echo.inputs,
        max_batch=TRANSACTION_SIZE,
    )
    start = time.perf_counter()
    while loop.stats.records < MESSAGES:
        loop.run_once()
    elapsed = time.perf_counter() - start
    loop.close()
    return MESSAGES / elapsed


def run() -> str:
    bootstrap = os.environ["KAFKA_BOOTSTRAP_SERVERS"]
    bus = KafkaBus(bootstrap)
    value = _payload()
    names = {kind: f"bench-{kind}-{uuid.uuid4().hex[:8]}" for kind in ("plain", "tx", "out")}
    for topic in names.values():
        bus.create_topic(topic, 1)
    plain = _plain(bus, names["plain"], value)
    transactional = _transactional(bus, names["tx"], value)
    loop = _loop(bus, f"bench-echo-{uuid.uuid4().hex[:8]}", value)
    return "\n".join(
        [
            "## Kafka produce -> consume (one partition, broker on the same machine)",
            "",
            f"{MESSAGES:,} `OrderFilled` records of {len(value)} bytes; time from the first "
            "produce to the last record consumed (read_uncommitted, as every consumer now; "
            "the transactional row reads what its commits made visible).",
            "",
            "| path | messages/s |",
            "| --- | ---: |",
            f"| plain producer (idempotent, acks=all) | {plain:,.0f} |",
            f"| transactional producer, {TRANSACTION_SIZE:,} messages per transaction | "
            f"{transactional:,.0f} |",
            f"| `JournalLoop` consume -> journal -> produce two outputs per input, turns of "
            f"up to {TRANSACTION_SIZE:,} (inputs/s) | {loop:,.0f} |",
        ]
    )


if __name__ == "__main__":
    print(run())
