"""The position engine's composition root: settings -> KafkaBus -> a service per user shard
-> ops."""

from __future__ import annotations

import threading

from libs.bus import Bus
from libs.bus.kafka import BATCHED_FETCH, KafkaBus
from libs.bus.shards import serve_shards
from libs.ops import calm_gc, configure_logging, lower_priority, stop_on_signals
from libs.topics import ALL_USERS, Shard, Topics, user_partitions
from services.positions.service import PositionsService
from services.positions.settings import PositionsSettings


def build(
    settings: PositionsSettings, bus: Bus | None = None, shard: Shard = ALL_USERS
) -> tuple[Bus, PositionsService]:
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
        shard=shard,
        funding_interval_seconds=settings.funding_interval_seconds,
        basis_window=settings.basis_window,
    )
    return bus, service


def run(settings: PositionsSettings, stop: threading.Event) -> None:
    serve_shards(
        "positions",
        settings,
        lambda shard: build(settings, shard=shard),
        group_id=settings.positions_group_id,
        transactional_id=settings.positions_transactional_id,
        shards_topic=Topics(settings.topic_prefix).positions_journal,  # a partition per shard
        ops=(settings.metrics_port, settings.metrics_host),
        stop=stop,
    )


def main() -> None:
    from libs.settings import load_settings

    configure_logging()
    stop = stop_on_signals()
    settings = load_settings(PositionsSettings)
    lower_priority(settings.niceness)
    calm_gc()
    run(settings, stop)


def rebuild(
    settings: PositionsSettings | None = None, bus: Bus | None = None, shard: Shard | None = None
) -> dict:
    """Return the digest of a user shard's state (default: the first of USER_PARTITIONS)
    rebuilt from the topics alone (snapshot + journal), producing nothing (the live service
    may run).
    ``python -m exchange rebuild positions [--shard N]``."""
    from libs.settings import load_settings

    if settings is None:
        settings = load_settings(PositionsSettings)
    _, service = build(settings, bus, shard or Shard(0, user_partitions()))
    service.rewind({})
    return service.digest_json()
