"""The wallet's composition root: settings -> KafkaBus -> service -> loop -> ops."""

from __future__ import annotations

import logging
import threading

from libs.bus import Bus, JournalLoop
from libs.bus.kafka import KafkaBus
from libs.bus.shards import ShardHost
from libs.ops import OpsServer, calm_gc, configure_logging, stop_on_signals
from libs.topics import ALL_USERS, Shard, Topics, shard_name, user_partitions
from services.wallet.service import WalletService
from services.wallet.settings import WalletSettings

log = logging.getLogger("services.wallet")


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
    partitions = user_partitions()

    def start(partition: int) -> tuple[JournalLoop, WalletService]:
        bus, service = build(settings, shard=Shard(partition, partitions))
        loop = JournalLoop(  # fences the shard's previous owner, then recovers it from the log
            bus,
            service,
            group_id=shard_name(settings.wallet_group_id, partition),
            transactional_id=shard_name(settings.wallet_transactional_id, partition),
            partitions=service.inputs,
            max_batch=settings.max_batch,
            commit_seconds=settings.commit_seconds,
            stall_timeout=settings.stall_seconds,
        )
        log.info("wallet shard %d of %d ready: %s", partition, partitions, service.digest_json())
        return loop, service

    bus = KafkaBus(settings.kafka_bootstrap_servers, client_id="wallet")
    shards_topic = Topics(settings.topic_prefix).wallet_journal  # a partition per shard
    host = ShardHost(
        "wallet",
        lambda revoked: bus.membership(f"{settings.wallet_group_id}.shards", shards_topic, revoked),
        start,
        partitions=partitions,
    )
    ops = OpsServer(settings.metrics_port, host.digest_json, host=settings.metrics_host)
    print("wallet ready", flush=True)
    try:
        host.run(stop)
    finally:
        ops.close()
        host.close()


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
    rebuilt from the topics alone
    (snapshot + journal), producing nothing (the live service may run).
    ``python -m exchange rebuild wallet [--shard N]``."""
    from libs.settings import load_settings

    if settings is None:
        settings = load_settings(WalletSettings)
    _, service = build(settings, bus, shard or Shard(0, user_partitions()))
    service.rewind({})
    return service.digest_json()
