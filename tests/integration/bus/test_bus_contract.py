"""One contract for every Bus implementation: what the services rely on."""

from __future__ import annotations

import pytest

from libs.bus import (
    Bus,
    FencedError,
    JournalLoop,
    Outgoing,
    Record,
    Snapshot,
    latest_snapshots,
    load_snapshot,
    next_offsets,
    snapshot_message,
)
from tests.integration.bus.echo import Echo, create_echo_topics, echoed


def _poll_all(consumer, expected: int, attempts: int = 100) -> list[Record]:
    records: list[Record] = []
    for _ in range(attempts):
        records += consumer.poll_batch(1000, 0.2)
        if len(records) >= expected:
            break
    return records


def _eventually(check, seconds: float = 10.0) -> None:
    import time

    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "not within the deadline"
        time.sleep(0.05)


def _produce(bus: Bus, topic: str, values: list[bytes], partition: int | None = 0) -> None:
    producer = bus.producer()
    for value in values:
        producer.produce(Outgoing(topic, value, key=b"k", partition=partition))
    producer.flush()
    producer.close()


def test_records_come_back_in_order_with_their_offsets(bus: Bus, name: str):
    bus.create_topic(name, 2)
    _produce(bus, name, [b"a", b"b", b"c"], partition=1)
    consumer = bus.consumer(f"{name}-g", partitions=[(name, 1)])
    records = _poll_all(consumer, 3)
    consumer.close()
    assert [(r.partition, r.offset, r.value) for r in records] == [
        (1, 0, b"a"),
        (1, 1, b"b"),
        (1, 2, b"c"),
    ]


def test_a_committed_transaction_publishes_outputs_and_input_offsets_together(bus: Bus, name: str):
    source, sink = f"{name}-in", f"{name}-out"
    bus.create_topic(source, 1)
    bus.create_topic(sink, 1)
    _produce(bus, source, [b"1", b"2"])
    consumer = bus.consumer(f"{name}-g", partitions=[(source, 0)])
    records = _poll_all(consumer, 2)
    producer = bus.producer(f"{name}-tx")
    producer.begin()
    producer.produce(Outgoing(sink, b"out", partition=0))
    producer.commit(next_offsets(records), consumer)
    # read_uncommitted asks without waiting for the commit marker: offsets show soon after
    _eventually(lambda: consumer.committed() == {(source, 0): 2})
    _eventually(lambda: bus.group_offsets(f"{name}-g", [(source, 0)]) == {(source, 0): 2})
    assert [r.value for r in bus.replay(sink, 0)] == [b"out"]
    consumer.close()
    producer.close()


def test_an_aborted_transaction_commits_no_offsets_and_takes_no_record_back(bus: Bus, name: str):
    # Consumers read uncommitted: what was written is in the log (libs/bus/base.py).
    source, sink = f"{name}-in", f"{name}-out"
    bus.create_topic(source, 1)
    bus.create_topic(sink, 1)
    _produce(bus, source, [b"1"])
    consumer = bus.consumer(f"{name}-g", partitions=[(source, 0)])
    _poll_all(consumer, 1)
    producer = bus.producer(f"{name}-tx")
    producer.begin()
    producer.produce(Outgoing(sink, b"written", partition=0))
    producer.flush()
    producer.abort()
    producer.begin()
    producer.produce(Outgoing(sink, b"visible", partition=0))
    producer.commit({}, consumer)
    assert consumer.committed() == {(source, 0): -1}
    assert bus.group_offsets(f"{name}-g", [(source, 0)]) == {(source, 0): -1}
    assert [r.value for r in bus.replay(sink, 0)] == [b"written", b"visible"]
    consumer.close()
    producer.close()


def test_a_new_consumer_resumes_from_the_group_committed_offsets(bus: Bus, name: str):
    bus.create_topic(name, 1)
    _produce(bus, name, [b"a", b"b", b"c"])
    first = bus.consumer(f"{name}-g", partitions=[(name, 0)])
    producer = bus.producer(f"{name}-tx")
    records = _poll_all(first, 3)
    producer.begin()
    producer.commit(next_offsets(records[:2]), first)
    _eventually(lambda: bus.group_offsets(f"{name}-g", [(name, 0)]) == {(name, 0): 2})
    first.close()
    second = bus.consumer(f"{name}-g", partitions=[(name, 0)])
    assert [r.value for r in _poll_all(second, 1)] == [b"c"]
    second.close()
    producer.close()


def test_seek_rewinds_a_consumer(bus: Bus, name: str):
    bus.create_topic(name, 1)
    _produce(bus, name, [b"a", b"b"])
    consumer = bus.consumer(f"{name}-g", partitions=[(name, 0)])
    assert len(_poll_all(consumer, 2)) == 2
    consumer.seek({(name, 0): 1})
    assert [r.value for r in _poll_all(consumer, 1)] == [b"b"]
    consumer.close()


def test_replay_reads_a_partition_from_an_offset_to_its_end(bus: Bus, name: str):
    bus.create_topic(name, 2)
    _produce(bus, name, [b"a", b"b", b"c"], partition=0)
    assert [r.value for r in bus.replay(name, 0, start=1)] == [b"b", b"c"]
    assert list(bus.replay(name, 1)) == []
    assert bus.end_offsets(name) == {0: 3, 1: 0}


def test_a_closed_bus_lets_its_lookups_go_and_can_look_again(bus: Bus, name: str):
    bus.create_topic(name, 1)
    _produce(bus, name, [b"a"])
    assert bus.end_offsets(name) == {0: 1}
    bus.close()  # the Kafka bus closes the consumer it kept for lookups
    bus.close()  # twice is harmless
    _produce(bus, name, [b"b"])
    assert bus.end_offsets(name) == {0: 2}  # a new lookup client when asked again
    bus.close()


def test_a_newer_producer_with_the_same_transactional_id_fences_the_older(bus: Bus, name: str):
    bus.create_topic(name, 1)
    consumer = bus.consumer(f"{name}-g", partitions=[(name, 0)])
    zombie = bus.producer(f"{name}-tx")
    zombie.begin()
    zombie.produce(Outgoing(name, b"zombie", partition=0))
    zombie.flush()  # in the log before the successor came: it stays
    successor = bus.producer(f"{name}-tx")  # the fence
    with pytest.raises(FencedError):  # whichever call finds out first
        zombie.produce(Outgoing(name, b"late", partition=0))
        zombie.flush()
        zombie.commit({}, consumer)
    successor.begin()
    successor.produce(Outgoing(name, b"successor", partition=0))
    successor.commit({}, consumer)
    assert [r.value for r in bus.replay(name, 0)] == [b"zombie", b"successor"]  # never "late"
    consumer.close()
    successor.close()


def test_a_fenced_producer_served_as_it_goes_finds_out_without_a_flush(bus: Bus, name: str):
    # the matcher serves its producers' delivery reports every turn and flushes only to
    # commit: a fence must surface there, not 20 s later
    bus.create_topic(name, 1)
    zombie = bus.producer(f"{name}-tx")
    zombie.begin()
    successor = bus.producer(f"{name}-tx")  # the fence
    with pytest.raises(FencedError):  # the late record's report, or the produce itself
        zombie.produce(Outgoing(name, b"late", partition=0))
        _eventually(lambda: zombie.serve() or False)
    successor.close()


def test_the_latest_snapshot_of_each_key_wins(bus: Bus, name: str):
    bus.create_topic(name, 1, {"cleanup.policy": "compact"})
    consumer = bus.consumer(f"{name}-g", partitions=[(name, 0)])
    producer = bus.producer(f"{name}-tx")
    producer.begin()
    for seq, key in enumerate(["BTC-PERP", "ETH-PERP", "BTC-PERP"]):
        snap = Snapshot(key=key, offsets={"orders.commands:0": seq}, seq=seq, state=b"s%d" % seq)
        producer.produce(snapshot_message(name, snap))
    producer.commit({}, consumer)
    assert {k: s.seq for k, s in latest_snapshots(bus, name).items()} == {
        "BTC-PERP": 2,
        "ETH-PERP": 1,
    }
    assert load_snapshot(bus, name, "SOL-PERP") is None
    consumer.close()
    producer.close()


def test_the_journal_loop_turns_every_input_into_its_outputs_once(bus: Bus, name: str):
    create_echo_topics(bus, name, 1)
    _produce(bus, f"{name}-in", [b"x%d" % i for i in range(50)])
    echo = Echo(bus, name, 1, snapshot_every=20)
    loop = JournalLoop(
        bus,
        echo,
        group_id=f"{name}-g",
        transactional_id=f"{name}-tx",
        partitions=echo.inputs,
        max_batch=7,
    )
    for _ in range(200):
        loop.run_once()
        if loop.stats.records == 50:
            break
    loop.close()
    echoes, numbers = echoed(bus, name, 1)
    assert echoes[0] == [b"0:%d" % i for i in range(50)]
    assert numbers == list(range(1, 51))
