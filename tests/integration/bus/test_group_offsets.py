"""An observer's view of a group's offsets must not wait on a crashed producer's transaction."""

from __future__ import annotations

import time

from confluent_kafka import Consumer, Producer, TopicPartition

from libs.bus import Outgoing
from libs.bus.kafka import KafkaBus


def test_group_offsets_answers_at_once_while_a_transaction_holds_pending_offsets(
    kafka_bootstrap: str, name: str
):
    bus = KafkaBus(kafka_bootstrap)
    bus.create_topic(name, 1)
    producer = bus.producer()
    producer.produce(Outgoing(name, b"x", partition=0))
    producer.flush()
    producer.close()

    group = f"{name}-g"
    consumer = Consumer(
        {"bootstrap.servers": kafka_bootstrap, "group.id": group, "enable.auto.commit": False}
    )
    consumer.assign([TopicPartition(name, 0, 0)])
    assert consumer.poll(10) is not None
    # A producer that sends offsets and then "dies" before committing: the broker keeps
    # the offsets pending until the transaction is fenced or times out (60 s by default).
    doomed = Producer({"bootstrap.servers": kafka_bootstrap, "transactional.id": f"{name}-tx"})
    doomed.init_transactions(10)
    doomed.begin_transaction()
    doomed.send_offsets_to_transaction(
        [TopicPartition(name, 0, 1)], consumer.consumer_group_metadata(), 10
    )
    doomed.flush(10)

    started = time.monotonic()
    assert bus.group_offsets(group, [(name, 0)]) == {(name, 0): -1}
    assert time.monotonic() - started < 5

    doomed.commit_transaction(10)
    assert bus.group_offsets(group, [(name, 0)]) == {(name, 0): 1}
    consumer.close()
