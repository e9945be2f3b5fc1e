"""A broker lost under load on the three-broker cluster, and nothing lost or doubled.

The exchange's producers are idempotent with acks=all and its topics keep three copies of which
two must have each write (scripts/kafka.sh). So when a node is killed -9 (the leader of the
partition being written, or the active controller), writes go on to a new leader, every
acknowledged record is there once and in order, and the node the supervisor restarts catches up
into the in-sync set again.
"""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource

from libs.bus.kafka import KafkaBus
from libs.topics import exchange_topics
from tests.cluster.conftest import kill_node

RATE = 200  # records/s, as the order path at the broker target's rate
SECONDS = 12
KILL_AFTER = 3.0
CATCH_UP_SECONDS = 90


def _admin(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap})


def _in_sync(bootstrap: str, topic: str) -> list[int]:
    partition = _admin(bootstrap).list_topics(topic, timeout=10).topics[topic].partitions[0]
    return sorted(partition.isrs)


def test_the_exchange_topics_keep_three_copies_two_in_sync(cluster_bootstrap: str) -> None:
    admin = _admin(cluster_bootstrap)
    metadata = admin.list_topics(timeout=10)
    assert len(metadata.brokers) == 3
    names = [topic.name for topic in exchange_topics()]
    for name in names:
        for partition in metadata.topics[name].partitions.values():
            assert len(partition.replicas) == 3, (name, partition)
            assert len(partition.isrs) == 3, (name, partition)
    resources = [ConfigResource(ConfigResource.Type.TOPIC, name) for name in names]
    for resource, future in admin.describe_configs(resources).items():
        assert future.result()["min.insync.replicas"].value == "2", resource


@pytest.mark.parametrize("victim", ["leader", "controller"])
def test_a_node_killed_under_load_loses_and_doubles_nothing(
    cluster_bootstrap: str, victim: str
) -> None:
    topic = f"cluster-test.{victim}.{uuid.uuid4().hex[:8]}"
    KafkaBus(cluster_bootstrap).create_topic(topic, 1)
    admin = _admin(cluster_bootstrap)
    if victim == "leader":
        node = admin.list_topics(topic, timeout=10).topics[topic].partitions[0].leader
    else:
        node = admin.describe_cluster(request_timeout=10).result().controller.id

    producer = Producer(
        {
            "bootstrap.servers": cluster_bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 1,
            "message.timeout.ms": 60_000,
        }
    )
    acknowledged: list[int] = []
    failed: list[str] = []

    def delivered(error, message) -> None:
        if error is None:
            acknowledged.append(int(message.value()))
        else:
            failed.append(str(error))

    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            producer.poll(0.05)

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    sent, start = 0, time.monotonic()
    killed = False
    while time.monotonic() - start < SECONDS:
        if not killed and time.monotonic() - start >= KILL_AFTER:
            kill_node(node)
            killed = True
        producer.produce(topic, value=str(sent).encode(), on_delivery=delivered)
        sent += 1
        time.sleep(max(0.0, start + sent / RATE - time.monotonic()))
    stop.set()
    server.join()  # one thread serves the callbacks at a time: they come in order
    assert producer.flush(60) == 0, "records still unacknowledged a minute after the last"

    assert failed == [], failed[:5]
    assert acknowledged == list(range(sent)), "acknowledged out of order or not all"
    consumer = Consumer(
        {
            "bootstrap.servers": cluster_bootstrap,
            "group.id": f"cluster-test-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "isolation.level": "read_uncommitted",
        }
    )
    consumer.assign([TopicPartition(topic, 0, 0)])
    read: list[int] = []
    deadline = time.monotonic() + 60
    while len(read) < sent and time.monotonic() < deadline:
        for message in consumer.consume(1000, timeout=1.0):
            if message.error() is None:
                read.append(int(message.value()))
    consumer.close()
    assert read == list(range(sent)), "the log lost, doubled or reordered a record"

    # The supervisor restarts the node; it catches up into the in-sync set.
    deadline = time.monotonic() + CATCH_UP_SECONDS
    while _in_sync(cluster_bootstrap, topic) != [1, 2, 3]:
        assert time.monotonic() < deadline, f"node {node} not back in sync"
        time.sleep(1)
