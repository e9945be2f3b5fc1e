"""A zombie matcher (an instance paused while its replacement took the symbol over, then
resuming) cannot get an event into matcher.events twice or out of order: through real Kafka,
two services in one process on the same symbol fence each other by loading it."""

from __future__ import annotations

import time

from bench.matcher_core import mixed_flow
from libs.bus.kafka import KafkaBus
from libs.messages import BatchCompleted
from libs.symbols import default_symbols
from services.matcher.app import KAFKA_ERRORS
from services.matcher.link import InlineLink
from services.matcher.service import MatcherService

from .harness import BTC, MatcherRun, reference_events

COMMANDS = 3_000


def _instance(run: MatcherRun) -> MatcherService:
    service = MatcherService(
        KafkaBus(run.bootstrap),
        InlineLink(default_symbols()),
        list(default_symbols()),
        topics=run.topics,
        max_batch=16,
        max_poll=200,
        snapshot_every=700,
        commit_seconds=0.0,  # every turn flushes: a fenced write shows at once
        retry_seconds=0.0,
        bus_errors=KAFKA_ERRORS,
    )
    service.consumer = service.bus.consumer(run.group, partitions=[(run.commands, 0)])
    return service


def _run_until(service: MatcherService, offset: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while (lane := service.lanes.get("BTC-PERP")) is None or lane.next_offset < offset:
        assert time.monotonic() < deadline, "the matcher made no progress"
        service.run_once()


def _recoveries(service: MatcherService) -> float:
    return service.metrics.recoveries.labels("BTC-PERP")._value.get()


def _close(service: MatcherService) -> None:
    service.retry_at.clear()  # a zombie that stood down: it would fence its successor again
    service.close()
    assert service.consumer is not None
    service.consumer.close()


def test_a_zombie_fenced_by_its_successor_gets_no_event_into_the_log(kafka_bootstrap: str):
    flow = mixed_flow(BTC, COMMANDS, seed=44)
    run = MatcherRun(kafka_bootstrap)
    run.produce(flow)
    zombie, successor = _instance(run), _instance(run)
    try:
        _run_until(zombie, 800)
        # the zombie pauses; its successor loads the symbol: that fences the zombie's producer
        assert successor.ensure_loaded("BTC-PERP")
        landed = len(run.read_events())
        for _ in range(5):  # the zombie resumes: it polls, matches and tries to write
            zombie.run_once()
            if "BTC-PERP" not in zombie.lanes:
                break
        assert "BTC-PERP" not in zombie.lanes, "the zombie's writes did not fail"
        assert len(run.read_events()) == landed, "a write of the zombie landed"
        _close(zombie)

        _run_until(successor, COMMANDS)
        events = run.read_events()
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        assert sum(e.size for e in events if isinstance(e, BatchCompleted)) == COMMANDS
        assert events == reference_events(flow, events)
    finally:
        for service in (zombie, successor):
            if service.lanes:
                _close(service)


def test_two_instances_taking_the_symbol_from_each_other_keep_every_seq_once(
    kafka_bootstrap: str,
):
    """Both keep thinking they own the symbol (manual assignment twice): each load fences the
    other, which recovers from the log and fences back. Slow, but exactly once throughout."""
    flow = mixed_flow(BTC, COMMANDS, seed=45)
    run = MatcherRun(kafka_bootstrap)
    run.produce(flow)
    first, second = _instance(run), _instance(run)
    try:
        for round_ in range(6):
            service = (first, second)[round_ % 2]
            recovered = _recoveries(service)
            for _ in range(3):
                service.run_once()
            # a fenced instance notices at its next write's answer, which a slow fetch can
            # hold past three turns: give it a few more, never an unbounded number
            for _ in range(20):
                if _recoveries(service) > recovered:
                    break
                service.run_once()
        _close(first)
        _run_until(second, COMMANDS)
        events = run.read_events()
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        assert sum(e.size for e in events if isinstance(e, BatchCompleted)) == COMMANDS
        assert events == reference_events(flow, events)
        assert _recoveries(first) >= 2
        assert _recoveries(second) >= 2
    finally:
        for service in (first, second):
            if service.lanes:
                _close(service)
