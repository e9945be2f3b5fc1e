"""The wallet's composition root: settings -> KafkaBus -> service -> loop -> ops."""

from __future__ import annotations

import logging
import threading

from libs.bus import Bus, JournalLoop
from libs.bus.kafka import KafkaBus
from libs.ops import OpsServer, calm_gc, configure_logging, stop_on_signals
from libs.topics import Topics
from services.wallet.service import WalletService
from services.wallet.settings import WalletSettings

log = logging.getLogger("services.wallet")


def build(settings: WalletSettings, bus: Bus | None = None) -> tuple[Bus, WalletService]:
    # A transaction stays open commit_seconds; a killed wallet's is aborted by its successor
    # at once (the fence), and otherwise times out soon.
    bus = bus or KafkaBus(
        settings.kafka_bootstrap_servers,
        client_id="wallet",
        producer_config={"transaction.timeout.ms": 10000},
    )
    service = WalletService(
        bus,
        Topics(settings.topic_prefix),
        snapshot_every=settings.snapshot_every,
        snapshot_seconds=settings.snapshot_seconds,
    )
    return bus, service


def run(settings: WalletSettings, stop: threading.Event) -> None:
    bus, service = build(settings)
    loop = JournalLoop(  # fences the previous wallet, then recovers the state from the log
        bus,
        service,
        group_id=settings.wallet_group_id,
        transactional_id=settings.wallet_transactional_id,
        partitions=service.inputs,
        max_batch=settings.max_batch,
        commit_seconds=settings.commit_seconds,
        stall_timeout=settings.stall_seconds,
    )
    ops = OpsServer(settings.metrics_port, service.digest_json, host=settings.metrics_host)
    log.info("wallet ready: %s", service.digest_json())
    print("wallet ready", flush=True)
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
    settings = load_settings(WalletSettings)
    calm_gc()
    run(settings, stop)


def rebuild(settings: WalletSettings | None = None, bus: Bus | None = None) -> dict:
    """Return the digest of the state rebuilt from the topics alone (snapshot + journal),
    producing nothing (the live service may run). ``python -m exchange rebuild wallet``."""
    from libs.settings import load_settings

    if settings is None:
        settings = load_settings(WalletSettings)
    _, service = build(settings, bus)
    service.rewind({})
    return service.digest_json()
