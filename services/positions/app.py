"""The position engine's composition root: settings -> KafkaBus -> service -> loop -> ops."""

from __future__ import annotations

import logging
import threading

from libs.bus import Bus, JournalLoop
from libs.bus.kafka import BATCHED_FETCH, KafkaBus
from libs.ops import OpsServer, calm_gc, configure_logging, lower_priority, stop_on_signals
from libs.topics import Topics
from services.positions.service import PositionsService
from services.positions.settings import PositionsSettings

log = logging.getLogger("services.positions")


def build(settings: PositionsSettings, bus: Bus | None = None) -> tuple[Bus, PositionsService]:
    # A killed engine's open transaction blocks committed-offset reads until its successor
    # aborts it or it times out: keep the timeout short.
    bus = bus or KafkaBus(
        settings.kafka_bootstrap_servers,
        client_id="positions",
        producer_config={"transaction.timeout.ms": 10000},
        consumer_config=BATCHED_FETCH,  # off the reply path: larger turns, fewer fetches
    )
    service = PositionsService(
        bus,
        Topics(settings.topic_prefix),
        snapshot_every=settings.snapshot_every,
        snapshot_seconds=settings.snapshot_seconds,
        funding_interval_seconds=settings.funding_interval_seconds,
        basis_window=settings.basis_window,
    )
    return bus, service


def run(settings: PositionsSettings, stop: threading.Event) -> None:
    bus, service = build(settings)
    loop = JournalLoop(  # fences the previous engine, then recovers the state from the log
        bus,
        service,
        group_id=settings.positions_group_id,
        transactional_id=settings.positions_transactional_id,
        partitions=service.inputs,
        max_batch=settings.max_batch,
        commit_seconds=settings.commit_seconds,
        stall_timeout=settings.stall_seconds,
    )
    ops = OpsServer(settings.metrics_port, service.digest_json, host=settings.metrics_host)
    log.info("positions ready: %s", service.digest_json())
    print("positions ready", flush=True)
    try:
        while not stop.is_set():
            loop.run_once()
    finally:
        ops.close()
        loop.close()


def main() -> None:
    from libs.settings import load_settings

    configure_logging()
    stop = stop_on_signals()
    settings = load_settings(PositionsSettings)
    lower_priority(settings.niceness)
    calm_gc()
    run(settings, stop)


def rebuild(settings: PositionsSettings | None = None, bus: Bus | None = None) -> dict:
    """Return the digest of the state rebuilt from the topics alone (snapshot + journal),
    producing nothing (the live service may run). ``python -m exchange rebuild positions``."""
    from libs.settings import load_settings

    if settings is None:
        settings = load_settings(PositionsSettings)
    _, service = build(settings, bus)
    service.rewind({})
    return service.digest_json()
