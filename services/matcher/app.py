"""The matcher's composition root: settings -> core process and rings -> Kafka -> service -> ops.

Order matters: the core process is forked before any Kafka client exists, because
librdkafka's threads do not survive a fork.
"""

from __future__ import annotations

import logging
import queue
import time
from concurrent.futures import Future

from confluent_kafka import KafkaException
from prometheus_client import REGISTRY

from libs.bus import Bus, BusError
from libs.bus.kafka import KafkaBus
from libs.bus.loop import Watchdog
from libs.ops import OpsServer, calm_gc, configure_logging, stop_on_signals
from libs.settings import load_settings
from libs.symbols import default_symbols
from libs.topics import Topics
from services.matcher.link import CoreLink, InlineLink, RingLink
from services.matcher.service import MatcherMetrics, MatcherService
from services.matcher.settings import MatcherSettings

log = logging.getLogger("matcher")

LAG_EVERY = 5.0
KAFKA_ERRORS = (BusError, KafkaException, SystemError)


class DigestRequests:
    """Digest questions from the HTTP thread, answered by the main loop between turns
    (only the main loop may talk to the core: the rings are single-producer)."""

    def __init__(self, service: MatcherService) -> None:
        self.service = service
        self._queue: queue.Queue[tuple[str, Future]] = queue.Queue()

    def ask(self, query: dict[str, str]) -> dict:
        symbol = query.get("symbol")
        if not symbol:
            raise LookupError("name a symbol: /digest?symbol=BTC-PERP")
        answer: Future = Future()
        self._queue.put((symbol, answer))
        return answer.result(timeout=30)

    def serve(self) -> None:
        while True:
            try:
                symbol, answer = self._queue.get_nowait()
            except queue.Empty:
                return
            try:
                answer.set_result(self.service.digest(symbol))
            except Exception as error:  # the asker gets it; the loop goes on
                answer.set_exception(error)


def run(settings: MatcherSettings | None = None) -> int:
    """Run the matcher until SIGTERM/SIGINT. Return the process exit code."""
    configure_logging()
    settings = settings or load_settings(MatcherSettings)
    calm_gc()  # before the core process is forked: it inherits the settings
    specs = default_symbols()
    listed = list(specs)
    owned = settings.owned_symbols(listed)
    link: CoreLink
    if settings.matcher_inline:
        link = InlineLink(specs)
    else:
        link = RingLink(
            specs,
            in_bytes=settings.matcher_ring_bytes,
            out_bytes=settings.matcher_out_ring_bytes,
            cpu=settings.matcher_core_cpu,
            sched_fifo=settings.matcher_sched_fifo,
        )
    instance = f"matcher-{settings.matcher_instance}"
    bus = KafkaBus(
        settings.kafka_bootstrap_servers,
        client_id=instance,
        producer_config={"linger.ms": settings.matcher_linger_ms},
    )
    topics = Topics(settings.topic_prefix)
    partitions = None if owned is None else [(topics.commands, listed.index(s)) for s in owned]
    metrics = MatcherMetrics(REGISTRY)
    service = MatcherService(
        bus,
        link,
        listed,
        topics=topics,
        max_batch=settings.matcher_max_batch,
        max_poll=settings.matcher_max_poll,
        snapshot_every=settings.matcher_snapshot_every,
        snapshot_seconds=settings.matcher_snapshot_seconds,
        commit_seconds=settings.matcher_commit_seconds,
        # librdkafka raises some errors untranslated (seek, metadata), and confluent-kafka
        # a fenced producer's flush as SystemError (libs.bus translates both on main since
        # 076386d; this stays harmless after that merge)
        bus_errors=KAFKA_ERRORS,
        metrics=metrics,
    )
    # a plain consumer: per owned symbol, the service's transactional producer writes
    service.consumer = bus.consumer(
        settings.matcher_group_id,
        topics=[topics.commands] if partitions is None else None,
        partitions=partitions,
        instance_id=instance,
        on_revoke=service.revoked,
    )
    Watchdog(service, settings.stall_seconds).start()
    digests = DigestRequests(service)
    ops = OpsServer(settings.metrics_port, digests.ask, host=settings.metrics_host)
    stop = stop_on_signals()  # after the fork: the core process keeps the default handlers
    log.info(
        "matching %s; metrics and digest on :%d",
        ", ".join(owned) if owned else f"what group {settings.matcher_group_id!r} assigns",
        ops.port,
    )
    next_lag = 0.0
    try:
        for symbol in owned or []:
            if not service.ensure_loaded(symbol):  # recover before going live
                service.retry_at.setdefault(symbol, 0.0)  # the loop tries again
        while not stop.is_set():
            service.run_once()
            digests.serve()
            if time.monotonic() >= next_lag:
                _update_lag(service, metrics)
                next_lag = time.monotonic() + LAG_EVERY
    finally:
        ops.close()
        service.close()
        service.consumer.close()
        link.close()
    return 0


def _update_lag(service: MatcherService, metrics: MatcherMetrics) -> None:
    try:
        lags = service.lag()
    except KAFKA_ERRORS as error:
        log.warning("lag not updated: %s", error)
        return
    for symbol, lag in lags.items():
        metrics.lag.labels(symbol).set(lag)


def rebuild(settings: MatcherSettings, symbol: str, bus: Bus | None = None) -> dict:
    """Return the digest of ``symbol``'s book rebuilt from snapshot + commands + batches,
    producing nothing (the live matcher may run). ``python -m exchange rebuild matcher``."""
    specs = default_symbols()
    listed = list(specs)
    if symbol not in specs:
        raise SystemExit(f"unknown symbol {symbol!r} (listed: {', '.join(listed)})")
    service = MatcherService(
        bus or KafkaBus(settings.kafka_bootstrap_servers, client_id="matcher-rebuild"),
        InlineLink(specs),
        listed,
        topics=Topics(settings.topic_prefix),
    )
    service.load(symbol, listed.index(symbol))  # produces nothing: the live matcher may run
    return service.book_digest(symbol)
