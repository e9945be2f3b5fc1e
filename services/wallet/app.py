"""The wallet's composition root: settings -> KafkaBus -> service -> loop -> ops -> Redis."""

from __future__ import annotations

import logging
import threading
import time

from libs.bus import Bus, JournalLoop
from libs.bus.kafka import KafkaBus
from libs.ops import OpsServer, calm_gc, configure_logging, stop_on_signals
from libs.topics import Topics
from services.wallet.read_model import RedisReadModel, picture
from services.wallet.service import WalletService
from services.wallet.settings import WalletSettings

log = logging.getLogger("services.wallet")

LOOK_EVERY_SECONDS = 1.0  # how often an idle wallet asks Redis whether it lost the picture


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


def publish(service: WalletService, model: RedisReadModel | None, *, look: bool = True) -> None:
    """Write what changed since the last publish (everything after a reload or a lost Redis)
    and the input offsets it reflects. A write finds out itself whether Redis lost the picture;
    with nothing to write, Redis is asked only when ``look`` (the loop asks about once a second,
    not on every idle turn)."""
    if model is None:
        return
    users = service.take_dirty()
    with service.lock:
        idle = users == [] and service.applied_offsets() == service.published_offsets
    if idle:
        if not (look and model.lost()):
            return
        service.full_publish = True
        users = service.take_dirty()
    with service.lock:
        applied = service.applied_offsets()
        full = users is None
        shown = service.core.users() if users is None else users
        pictures = picture(service.core, shown)
        known = service.core.caused
        caused = {user: dict(known[user]) for user in shown if user in known}
    if model.write(pictures, full=full, applied=applied, caused=caused):
        service.published_offsets = applied
    else:
        service.full_publish = True


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
    model = RedisReadModel(settings.redis_url) if settings.redis_url else None
    log.info("wallet ready: %s", service.digest_json())
    print("wallet ready", flush=True)
    next_look = 0.0
    try:
        while not stop.is_set():
            loop.run_gathered()  # one write for the few turns an order causes here
            now = time.monotonic()
            look = now >= next_look
            if look:
                next_look = now + LOOK_EVERY_SECONDS
            publish(service, model, look=look)
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
