"""Exactly once without a transaction per turn: whatever fails (a produce half-way through a
batch, a flush, a commit, a zombie fenced by its successor), matcher.events ends up holding
every seq once, in order, and equal to the in-process core run in the recorded batches.

The in-memory bus has Kafka's read_uncommitted semantics: a produced record is in the log at
once and an abort takes nothing back."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.matcher_core import mixed_flow
from libs.bus import AbortableError, BusError, FatalError, FencedError, MemoryBus
from libs.messages import BatchCompleted
from libs.symbols import get_symbol
from services.matcher.service import MatcherService
from tests.unit.matcher.test_service import _bus_with_flow, _drain, _events, _matcher, _reference

BTC = get_symbol("BTC-PERP")
FLOW = mixed_flow(BTC, 1500, seed=5)


def _assert_exactly_once(bus: MemoryBus, flow: list) -> list:
    events = _events(bus)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert events == _reference(flow, events)
    assert sum(e.size for e in events if isinstance(e, BatchCompleted)) == len(flow)
    return events


def _fail_produce_at(service: MatcherService, nth: int, error: Exception) -> None:
    """Make the symbol's producer raise ``error`` on its ``nth`` produce from now (nothing of
    that message is written; what came before stays in the log)."""
    producer = service.lanes["BTC-PERP"].producer
    original, calls = producer.produce, [0]

    def produce(message):
        calls[0] += 1
        if calls[0] == nth:
            raise error
        original(message)

    producer.produce = produce  # type: ignore[method-assign]


def _uninterrupted() -> list:
    bus = _bus_with_flow(FLOW)
    _drain(_matcher(bus), len(FLOW))
    return _events(bus)


@pytest.mark.parametrize("nth", [2, 3, 17])
@pytest.mark.parametrize("error", [AbortableError("hiccup"), FatalError("gone"), FencedError("x")])
def test_a_produce_failing_half_way_through_a_batch_is_completed_by_the_recovery(nth, error):
    bus = _bus_with_flow(FLOW)
    service = _matcher(bus)
    for _ in range(4):
        service.run_once()
    _fail_produce_at(service, nth, error)
    service.run_once()  # the batch's first nth - 1 events landed, its cut among them
    assert "BTC-PERP" not in service.lanes
    landed = len(_events(bus))
    _drain(service, len(FLOW))
    # the interrupted batch completed with the very events (and seqs) its replay makes
    events = _assert_exactly_once(bus, FLOW)
    assert service.metrics.completed.labels("BTC-PERP")._value.get() > 0
    assert service.metrics.recoveries.labels("BTC-PERP")._value.get() == 2
    assert landed < len(events)


@pytest.mark.parametrize("where", ["flush", "commit"])
def test_a_failed_flush_or_commit_keeps_what_the_log_holds_and_doubles_nothing(where):
    bus = _bus_with_flow(FLOW)
    service = _matcher(bus, snapshot_every=400)
    for _ in range(6):
        service.run_once()
    setattr(service.lanes["BTC-PERP"].producer, f"fail_next_{where}", AbortableError("hiccup"))
    service.run_once()
    assert "BTC-PERP" not in service.lanes
    _drain(service, len(FLOW))
    assert service.metrics.recoveries.labels("BTC-PERP")._value.get() == 2
    assert _assert_exactly_once(bus, FLOW) == _uninterrupted()


def test_events_are_out_at_once_and_the_transaction_commits_only_every_commit_seconds():
    now = [0.0]
    bus = _bus_with_flow(FLOW)
    service = _matcher(bus, commit_seconds=1.0, clock=lambda: now[0])
    commits = []
    service.run_once()  # loads BTC-PERP
    producer = service.lanes["BTC-PERP"].producer
    original = producer.commit
    producer.commit = lambda offsets, consumer: (
        commits.append(offsets),
        original(offsets, consumer),
    )  # type: ignore[method-assign]
    for _ in range(5):
        service.run_once()
        now[0] += 0.1
    assert commits == []
    assert len(_events(bus)) > 0  # visible to read_uncommitted consumers without a commit
    assert bus.group_offsets("matcher", [("orders.commands", 0)])[("orders.commands", 0)] == -1
    now[0] += 1.0
    service.run_once()
    assert commits == [{("orders.commands", 0): service.lanes["BTC-PERP"].next_offset}]


def test_a_successor_continues_after_the_last_cut_not_from_the_lagging_committed_offset():
    bus = _bus_with_flow(FLOW)
    crashed = _matcher(bus, commit_seconds=10**9)  # dies before its first commit
    for _ in range(8):
        crashed.run_once()
    assert bus.group_offsets("matcher", [("orders.commands", 0)])[("orders.commands", 0)] == -1
    successor = _matcher(bus)
    _drain(successor, len(FLOW))
    assert _assert_exactly_once(bus, FLOW) == _uninterrupted()


def test_a_zombie_fenced_by_its_successor_gets_nothing_into_the_log():
    bus = _bus_with_flow(FLOW)
    zombie = _matcher(bus)
    for _ in range(3):
        zombie.run_once()
    successor = _matcher(bus)
    assert successor.ensure_loaded("BTC-PERP")  # fences the zombie's producer
    before = len(_events(bus))
    zombie.run_once()  # resumes: its first write fails
    assert "BTC-PERP" not in zombie.lanes
    assert len(_events(bus)) == before
    zombie.retry_at.clear()  # it stops here (its group generation is gone)
    _drain(successor, len(FLOW))
    assert _assert_exactly_once(bus, FLOW) == _uninterrupted()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    schedule=st.lists(
        st.tuples(
            st.sampled_from(["a", "b"]),  # whose turn
            st.sampled_from([None, "produce", "flush", "commit"]),  # what fails in it
            st.integers(1, 40),  # which produce fails
        ),
        min_size=1,
        max_size=30,
    ),
    snapshot_every=st.sampled_from([150, 400, 10**9]),
    max_poll=st.sampled_from([7, 50, 300]),
)
def test_two_instances_taking_the_symbol_from_each_other_with_failures_keep_every_seq_once(
    schedule, snapshot_every, max_poll
):
    """Each instance fences the other when it (re)loads the symbol, as a zombie and its
    successor do when both still think they own it: the log stays exactly once."""
    flow = FLOW[:600]
    bus = _bus_with_flow(flow)
    instances = {
        name: _matcher(bus, snapshot_every=snapshot_every, max_poll=max_poll) for name in "ab"
    }
    for name, fault, nth in schedule:
        service = instances[name]
        lane = service.lanes.get("BTC-PERP")
        if lane is not None and fault == "produce":
            _fail_produce_at(service, nth, AbortableError("hiccup"))
        elif lane is not None and fault is not None:
            setattr(lane.producer, f"fail_next_{fault}", AbortableError("hiccup"))
        service.run_once()
    last = instances[schedule[-1][0]]
    _drain(last, len(flow))
    _assert_exactly_once(bus, flow)


def test_the_broker_away_is_survived_consume_and_recovery_errors_are_retried(monkeypatch):
    bus = _bus_with_flow(FLOW)
    service = _matcher(bus)
    for _ in range(3):
        service.run_once()
    consumer = service.consumer
    assert consumer is not None
    real_poll, real_producer = consumer.poll_batch, bus.producer
    away = [True]

    def poll(max_records, timeout):
        if away[0]:
            raise BusError("consume: Local: All broker connections are down")
        return real_poll(max_records, timeout)

    def producer(transactional_id=None):
        if away[0] and transactional_id is not None:
            raise BusError("init transactions: timed out")
        return real_producer(transactional_id)

    service.lanes["BTC-PERP"].producer.fail_next_flush = AbortableError("not delivered")
    service.run_once()  # the commit's flush fails: the symbol is dropped
    assert "BTC-PERP" not in service.lanes
    monkeypatch.setattr(consumer, "poll_batch", poll)
    monkeypatch.setattr(bus, "producer", producer)
    for _ in range(5):
        service.run_once()  # neither the consume error nor the failed recoveries escape
    assert "BTC-PERP" not in service.lanes and "BTC-PERP" in service.retry_at
    away[0] = False
    _drain(service, len(FLOW))
    assert _assert_exactly_once(bus, FLOW) == _uninterrupted()


@pytest.mark.parametrize(
    ("error", "recovered"),
    [
        (AbortableError("3 messages not delivered within 5.0s"), {"BTC-PERP", "ETH-PERP"}),
        (FencedError("fenced by a newer instance"), {"BTC-PERP"}),
    ],
)
def test_a_write_failing_with_the_broker_away_recovers_every_symbol_a_fenced_one_only_its_own(
    error, recovered
):
    # a producer that lived through a broker restart can block in its next commit (librdkafka
    # #5456): when one symbol finds the broker away, every symbol gets a new producer
    bus = _bus_with_flow(FLOW)
    service = _matcher(bus)
    service.consumer = bus.consumer(
        "matcher", partitions=[("orders.commands", 0), ("orders.commands", 1)]
    )
    service.run_once()
    assert service.ensure_loaded("ETH-PERP")
    before = {symbol: lane.producer for symbol, lane in service.lanes.items()}
    assert set(before) == {"BTC-PERP", "ETH-PERP"}
    service.lanes["BTC-PERP"].producer.fail_next_flush = error
    service.run_once()  # the commit's flush fails
    assert set(service.retry_at) == recovered
    assert set(service.lanes) == {"BTC-PERP", "ETH-PERP"} - recovered
    _drain(service, len(FLOW))
    assert service.ensure_loaded("ETH-PERP")
    renewed = {s for s, lane in service.lanes.items() if lane.producer is not before[s]}
    assert renewed == recovered
    assert _assert_exactly_once(bus, FLOW) == _uninterrupted()
