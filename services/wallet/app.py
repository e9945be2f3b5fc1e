"""The wallet's composition root: settings -> KafkaBus -> a service per user shard -> ops."""

from __future__ import annotations

import threading

from libs.bus import Bus
from libs.bus.kafka import KafkaBus
from libs.bus.shards import serve_shards
from libs.ops import calm_gc, configure_logging, stop_on_signals
from libs.topics import ALL_USERS, Shard, Topics, user_partitions
from services.wallet.service import WalletService
from services.wallet.settings import WalletSettings


def build(
    settings: WalletSettings, bus: Bus | None = None, shard: Shard = ALL_USERS
) -> tuple[Bus, WalletService]:
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
        shard=shard,
    )
    return bus, service


def run(settings: WalletSettings, stop: threading.Event) -> None:
    serve_shards(
        "wallet",
        settings,
        lambda shard: build(settings, shard=shard),
        group_id=settings.wallet_group_id,
        transactional_id=settings.wallet_transactional_id,
        shards_topic=Topics(settings.topic_prefix).wallet_journal,  # a partition per shard
        ops=(settings.metrics_port, settings.metrics_host),
        stop=stop,
    )


def main() -> None:
    from libs.settings import load_settings

    configure_logging()
    stop = stop_on_signals()
    settings = load_settings(WalletSettings)
    calm_gc()
    run(settings, stop)


def rebuild(
    settings: WalletSettings | None = None, bus: Bus | None = None, shard: Shard | None = None
) -> dict:
    """Return the digest of a user shard's state (default: the first of USER_PARTITIONS)
    rebuilt from the topics alone (snapshot + journal), producing nothing (the live service
    may run).
    ``python -m exchange rebuild wallet [--shard N]``."""
    from libs.settings import load_settings

    if settings is None:
        settings = load_settings(WalletSettings)
    _, service = build(settings, bus, shard or Shard(0, user_partitions()))
    service.rewind({})
    return service.digest_json()
