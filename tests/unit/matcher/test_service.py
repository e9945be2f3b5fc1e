"""The matcher service over the in-memory bus, with the core inline: batching, exactly-once
events, snapshots and recovery, without Kafka or a second process (failures, zombies and
recovery that completes a partly landed batch: test_recovery.py)."""

from __future__ import annotations

import msgspec
import pytest

from bench.matcher_core import mixed_flow
from libs.bus import MemoryBus, Outgoing
from libs.messages import ANY, BatchCompleted, encode
from libs.symbols import default_symbols, get_symbol
from services.matcher.core import MatchingCore
from services.matcher.link import InlineLink
from services.matcher.service import MatcherService

SYMBOLS = list(default_symbols())
BTC = get_symbol("BTC-PERP")


def _bus_with_flow(commands: list) -> MemoryBus:
    bus = MemoryBus()
    for topic, partitions in (
        ("orders.commands", 3),
        ("matcher.events", 3),
        ("matcher.snapshots", 1),
    ):
        bus.create_topic(topic, partitions)
    producer = bus.producer()
    for command in commands:
        producer.produce(Outgoing("orders.commands", encode(command), b"BTC-PERP", 0))
    return bus


def _matcher(
    bus: MemoryBus,
    *,
    max_poll: int = 100,
    snapshot_every: int = 10**9,
    commit_seconds: float = 0.0,
    clock=lambda: 0.0,
) -> MatcherService:
    service = MatcherService(
        bus,
        InlineLink(default_symbols()),
        SYMBOLS,
        max_batch=64,
        max_poll=max_poll,
        poll_timeout=0,
        snapshot_every=snapshot_every,
        snapshot_seconds=10**9,
        commit_seconds=commit_seconds,
        retry_seconds=0.0,
        clock=clock,
    )
    service.consumer = bus.consumer("matcher", partitions=[("orders.commands", 0)])
    return service


def _drain(service: MatcherService, total: int) -> None:
    for _ in range(total * 2 + 10):
        lane = service.lanes.get("BTC-PERP")
        if lane is not None and lane.next_offset == total and not lane.dirty:
            return
        service.run_once()
    raise AssertionError("the matcher did not consume the whole flow")


def _events(bus: MemoryBus) -> list:
    return [ANY.decode(r.value) for r in bus.replay("matcher.events", 0)]


def _reference(commands: list, events: list) -> list:
    """Run the flow through one in-process core in the batches the service recorded."""
    core = MatchingCore(BTC)
    out = []
    for event in events:
        if isinstance(event, BatchCompleted):
            batch = [(o, commands[o]) for o in range(event.first_offset, event.cmd_offset + 1)]
            out += core.process_batch(batch)
    return out


@pytest.fixture(scope="module")
def flow() -> list:
    return mixed_flow(BTC, 3000, seed=11)


def test_events_through_the_service_equal_the_in_process_core_in_the_same_batches(flow):
    bus = _bus_with_flow(flow)
    service = _matcher(bus)
    _drain(service, len(flow))
    events = _events(bus)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert events == _reference(flow, events)
    assert bus.group_offsets("matcher", [("orders.commands", 0)]) == {
        ("orders.commands", 0): len(flow)
    }
    covered = sum(e.size for e in events if isinstance(e, BatchCompleted))
    assert covered == len(flow)
    assert max(e.size for e in events if isinstance(e, BatchCompleted)) <= 64


def test_a_new_instance_recovers_from_snapshot_and_replay_to_the_live_digest(flow):
    bus = _bus_with_flow(flow)
    live = _matcher(bus, snapshot_every=700)
    _drain(live, len(flow))
    assert len(list(bus.replay("matcher.snapshots", 0))) >= 3
    fresh = MatcherService(bus, InlineLink(default_symbols()), SYMBOLS)
    last_offset, seq, replayed = fresh.load("BTC-PERP", 0)
    assert last_offset == len(flow) - 1
    assert 0 < replayed < 700 / 64  # replay starts at the snapshot, not at the beginning
    assert fresh.book_digest("BTC-PERP") == live.digest("BTC-PERP")
    assert seq == _events(bus)[-1].seq


def test_a_malformed_command_is_skipped_and_counted_without_touching_the_book(flow):
    commands = flow[:50]
    bus = _bus_with_flow(commands)
    bus.producer().produce(Outgoing("orders.commands", b"\x93garbage", b"BTC-PERP", 0))
    bus.producer().produce(Outgoing("orders.commands", encode(flow[50]), b"BTC-PERP", 0))
    service = _matcher(bus)
    _drain(service, 52)
    assert service.metrics.malformed.labels("BTC-PERP")._value.get() == 1
    events = _events(bus)
    expected = MatchingCore(BTC)
    reference = []
    for event in events:
        if isinstance(event, BatchCompleted):
            batch = [
                (o, [*commands, None, flow[50]][o])
                for o in range(event.first_offset, event.cmd_offset + 1)
            ]
            reference += expected.process_batch([item for item in batch if item[1] is not None])
    assert events == reference
    assert service.digest("BTC-PERP")["offset"] == 51


def test_digest_names_symbol_offset_and_a_hex_hash(flow):
    bus = _bus_with_flow(flow[:10])
    service = _matcher(bus)
    _drain(service, 10)
    answer = service.digest("BTC-PERP")
    assert answer["symbol"] == "BTC-PERP" and answer["offset"] == 9
    assert int(answer["digest"], 16) >= 0
    with pytest.raises(LookupError):
        service.digest("DOGE-PERP")


def test_frames_stay_in_wire_encoding_so_the_io_side_never_decodes():
    from services.matcher.host import BATCH, LOAD, CoreHost, pack, unpack

    host = CoreHost(default_symbols())
    host.handle(pack([LOAD, "BTC-PERP", None]))
    reply = unpack(
        host.handle(pack([BATCH, "BTC-PERP", [[0, encode(mixed_flow(BTC, 1)[0])]], True]))
    )
    assert all(isinstance(event, bytes) for event in reply[2])
    assert isinstance(msgspec.msgpack.decode(reply[2][-1]), dict)
