"""The projector: ``orders.requests``, ``matcher.events``, ``wallet.events`` and
``positions.events`` in, the gateway's Redis read model and pub/sub messages out.

``python -m services.projector``. The state transitions are ``projection.py`` (pure);
this is the I/O around it and its composition root. It reads every partition by assignment,
not in a consumer group: its offsets live in Redis (``projector:offsets``), written in the same
atomic batch as the effects they cover (``libs.redis_batch``), so after a crash Redis holds
exactly the state of the offsets it names and the projector resumes there. On start, and
whenever a write fails or finds Redis flushed, it reloads: from the held orders and offsets in
Redis, or, when ``projector:ready`` is missing, from offset 0 after deleting every key it owns.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid

import redis
from confluent_kafka import OFFSET_BEGINNING, KafkaError, KafkaException
from confluent_kafka import Consumer as KafkaConsumer
from confluent_kafka import TopicPartition as KafkaTopicPartition
from prometheus_client import Counter, Gauge, Histogram
from pydantic import Field

from libs.bus import Record
from libs.bus.kafka import BATCHED_FETCH, ISOLATION, fetch_ready
from libs.bus.stats import counted
from libs.messages import (
    Codec,
)
from libs.ops import (
    OFF_REPLY_PATH_NICENESS,
    OpsServer,
    calm_gc,
    configure_logging,
    lower_priority,
    stop_on_signals,
)
from libs.read_model import keys
from libs.read_model.candles import INTERVALS, Candle
from libs.redis_batch import Command, RedisBatch
from libs.settings import KafkaSettings, load_settings
from libs.symbols import SymbolSpec, default_symbols
from libs.topics import Topics
from services.projector.orders import Order
from services.projector.projection import (
    TRIM_ORDER_HISTORY,
    Input,
    Projection,
    projected_topics,
)

log = logging.getLogger("services.projector")

RECORDS = Counter(
    "projector_records_total", "Records decoded and handed to the projection", ["topic"]
)
SKIPPED = Counter("projector_skipped_total", "Records skipped as malformed", ["topic"])
FAILED = Counter("projector_failed_total", "Records the projection failed on (skipped)", ["topic"])
LAG = Gauge("projector_lag_records", "Records of the topic not yet in Redis", ["topic"])
WRITE_SECONDS = Histogram(
    "projector_write_seconds",
    "Latency of one batch of effects and offsets",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
LAST_WRITE = Gauge("projector_last_write_timestamp_seconds", "Wall-clock time of the last write")
RELOADS = Counter("projector_reloads_total", "State loads from Redis (start, failed write, flush)")

LAG_EVERY_SECONDS = 1.0


class ProjectorSettings(KafkaSettings):
    redis_url: str = Field(description="redis:// URL of the read model")
    metrics_port: int = Field(9104, description="/metrics, /digest and /healthz")
    metrics_host: str = Field("127.0.0.1", description="address the ops endpoint binds")
    topic_prefix: str = Field("", description="prefix of every topic name (tests)")
    niceness: int = Field(
        OFF_REPLY_PATH_NICENESS, ge=0, le=19, description="yield the CPU to the reply path"
    )
    max_batch: int = Field(2000, ge=1, description="records per Redis transaction at most")
    write_linger_ms: float = Field(
        3.0,
        ge=0,
        le=100,
        description="after records arrive, how long to gather more for the same Redis write "
        "(one order's events reach the four topics within a few ms)",
    )
    max_waiting: int = Field(
        10_000,
        ge=1,
        description="records of a partition waiting for their cause before it is paused (a "
        "replay may read wallet events faster than the matcher events they follow)",
    )


def codecs(topics: Topics) -> dict[str, Codec]:
    """Return the decoder of each input topic: every kind its producers write."""
    return {topic: topics.codec(topic) for topic in projected_topics(topics)}


class ReadModelLost(Exception):
    """Redis lost ``projector:ready`` (flushed or restarted empty): rebuild from offset 0."""


class RedisReadModel:
    """The projector's Redis: load what a restart needs, run a flush's commands atomically."""

    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url, socket_timeout=30, decode_responses=True)
        self.batch = RedisBatch(self.client, {"trim_order_history": TRIM_ORDER_HISTORY})

    def load(self, topics: Topics, specs: dict[str, SymbolSpec]) -> Projection:
        """Return the projection Redis holds, or an empty one (after deleting every key the
        projector owns) when ``projector:ready`` is missing."""
        if not self.client.exists(keys.READY_KEY):
            self.delete_owned_keys()
            self.client.set(keys.READY_KEY, 1)
            return Projection(topics, specs)
        offsets = {
            keys.parse_offsets_field(str(name)): int(value)
            for name, value in self.client.hgetall(keys.OFFSETS_KEY).items()
        }
        held = self.client.hgetall(keys.HELD_KEY)
        pipe = self.client.pipeline(transaction=False)
        for order_id in held:
            pipe.hgetall(keys.order_key(int(order_id)))
        orders = [
            Order.from_fields(fields, requested=flag == "1")
            for fields, flag in zip(pipe.execute(), held.values(), strict=True)
            if fields
        ]
        pipe = self.client.pipeline(transaction=False)
        for symbol in specs:
            pipe.hget(keys.book_key(symbol), "update_id")
        update_ids = {
            symbol: int(value)
            for symbol, value in zip(specs, pipe.execute(), strict=True)
            if value is not None
        }
        candles, clock = self._candles(specs)
        record_times = {
            keys.parse_record_time_field(str(name)): int(value)
            for name, value in self.client.hgetall(keys.RECORD_TIMES_KEY).items()
        }
        return Projection.restore(
            topics, specs, offsets, orders, update_ids, candles, clock, record_times
        )

    def _candles(
        self, specs: dict[str, SymbolSpec]
    ) -> tuple[dict[str, dict[str, Candle]], dict[str, int]]:
        """Return the newest candle of each series and each symbol's clock (its newest
        trade's ``ts``): what the projection holds of the candles."""
        series = [(symbol, interval) for symbol in specs for interval in INTERVALS]
        pipe = self.client.pipeline(transaction=False)
        for symbol, interval in series:
            pipe.zrange(keys.candles_key(symbol, interval), -1, -1)
        for symbol in specs:
            pipe.lindex(keys.trades_key(symbol), 0)
        found = pipe.execute()
        candles: dict[str, dict[str, Candle]] = {}
        for (symbol, interval), newest in zip(series, found, strict=False):
            if newest:
                candles.setdefault(symbol, {})[interval] = Candle.from_member(newest[0])
        clock = {
            symbol: int(json.loads(trade)["ts"])
            for symbol, trade in zip(specs, found[len(series) :], strict=True)
            if trade
        }
        return candles, clock

    def delete_owned_keys(self) -> None:
        """Delete every key the projector writes (``keys.OWNED_PATTERNS``)."""
        for pattern in keys.OWNED_PATTERNS:
            batch: list[str] = []
            for key in self.client.scan_iter(match=pattern, count=1000):
                batch.append(key)
                if len(batch) == 500:
                    self.client.delete(*batch)
                    batch = []
            if batch:
                self.client.delete(*batch)

    def write(self, commands: list[Command]) -> None:
        """Run ``commands`` atomically; raise ReadModelLost (nothing written) when Redis was
        flushed."""
        if not self.batch.run(commands, unless_missing=keys.READY_KEY):
            raise ReadModelLost("projector:ready is gone")


class PartitionReader:
    """A consumer (read_uncommitted) of every partition of the given topics, each from a given
    offset. No consumer group: nothing is committed to Kafka."""

    def __init__(
        self, bootstrap: str, topics: list[str], offsets: dict[tuple[str, int], int]
    ) -> None:
        self._client = KafkaConsumer(
            {
                "bootstrap.servers": bootstrap,
                "client.id": "gateway-projector",
                **counted("projector"),
                "group.id": f"gateway-projector-{uuid.uuid4().hex}",  # required; never used
                "isolation.level": ISOLATION,  # every record in the log is a fact
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": "earliest",
            }
            | BATCHED_FETCH  # off the reply path: larger batches, fewer fetches
        )
        assignment = []
        for topic in topics:
            metadata = self._client.list_topics(topic, timeout=30).topics.get(topic)
            if metadata is None or metadata.error is not None or not metadata.partitions:
                raise RuntimeError(f"topic {topic!r} is missing: {metadata and metadata.error}")
            for partition in sorted(metadata.partitions):
                offset = offsets.get((topic, partition), 0)
                start = offset if offset > 0 else OFFSET_BEGINNING
                assignment.append(KafkaTopicPartition(topic, partition, start))
        self._client.assign(assignment)
        self.partitions = [(tp.topic, tp.partition) for tp in assignment]
        self._paused: set[tuple[str, int]] = set()

    def poll(self, max_records: int, timeout: float) -> list[Record]:
        """Return what is buffered (up to ``max_records``), waiting up to ``timeout`` for a first
        record when nothing is."""
        messages = fetch_ready(self._client, max_records, timeout)
        records = []
        for message in messages:
            error = message.error()
            if error is not None:
                if error.fatal():
                    raise KafkaException(error)
                if error.code() != KafkaError._PARTITION_EOF:  # librdkafka retries these
                    log.warning("kafka: %s", error)
                continue
            records.append(
                Record(
                    message.topic(),
                    message.partition(),
                    message.offset(),
                    message.key(),
                    message.value(),
                )
            )
        return records

    def pause_only(self, partitions: set[tuple[str, int]]) -> None:
        """Stop fetching ``partitions`` and resume every other paused one."""
        if partitions == self._paused:
            return
        resume = [KafkaTopicPartition(t, p) for t, p in self._paused - partitions]
        pause = [KafkaTopicPartition(t, p) for t, p in partitions - self._paused]
        if resume:
            self._client.resume(resume)
        if pause:
            self._client.pause(pause)
        self._paused = set(partitions)

    def lag(self) -> dict[str, int]:
        """Return, per topic, the records between this reader's position and the end of the
        log (as of the last fetch: no broker round trip)."""
        wanted = [KafkaTopicPartition(t, p) for t, p in self.partitions]
        lag: dict[str, int] = {}
        for tp in self._client.position(wanted):
            _, high = self._client.get_watermark_offsets(tp, cached=True)
            if high >= 0 and tp.offset >= 0:
                lag[tp.topic] = lag.get(tp.topic, 0) + max(high - tp.offset, 0)
        return lag

    def close(self) -> None:
        self._client.close()


class Projector:
    """The loop: poll, decode, apply, flush into one atomic batch; reload on any write failure."""

    def __init__(self, settings: ProjectorSettings, specs: dict[str, SymbolSpec]) -> None:
        self.settings = settings
        self.specs = specs
        self.topics = Topics(settings.topic_prefix)
        self.codecs = codecs(self.topics)
        # each topic's counter, labelled once: labels() per record was 5% of the projector
        self._records = {t: RECORDS.labels(self._logical(t)) for t in self.codecs}
        self.model = RedisReadModel(settings.redis_url)
        self.lock = threading.Lock()  # the ops thread reads the projection between turns
        self.projection: Projection | None = None
        self._announced = False

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            reader = None
            try:
                with self.lock:
                    self.projection = self.model.load(self.topics, self.specs)
                RELOADS.inc()
                reader = PartitionReader(
                    self.settings.kafka_bootstrap_servers,
                    projected_topics(self.topics),
                    self.projection.offsets,
                )
                self._announce()
                self._serve(reader, stop)
            except (redis.RedisError, ReadModelLost) as error:
                log.warning("reloading the read model from Redis: %s", error)
                stop.wait(1.0)
            finally:
                if reader is not None:
                    reader.close()

    def _announce(self) -> None:
        assert self.projection is not None
        log.info("projector ready: %s", self.digest_json())
        if not self._announced:
            print("projector ready", flush=True)
            self._announced = True

    def _serve(self, reader: PartitionReader, stop: threading.Event) -> None:
        projection = self.projection
        assert projection is not None
        next_lag = 0.0
        linger = self.settings.write_linger_ms / 1000
        while not stop.is_set():
            records = reader.poll(self.settings.max_batch, 0.1)
            if records:
                with self.lock:
                    self._apply(projection, records)
                deadline, taken = time.monotonic() + linger, len(records)
                while (
                    taken < self.settings.max_batch
                    and (left := deadline - time.monotonic()) > 0
                    and (more := reader.poll(self.settings.max_batch - taken, left))
                ):
                    taken += len(more)
                    with self.lock:
                        self._apply(projection, more)
                with self.lock:
                    commands = projection.flush()
                    waiting = projection.waiting()
                limit = self.settings.max_waiting
                reader.pause_only({key for key, n in waiting.items() if n >= limit})
                if commands:
                    started = time.perf_counter()
                    self.model.write(commands)
                    WRITE_SECONDS.observe(time.perf_counter() - started)
                    LAST_WRITE.set(time.time())
            if time.monotonic() >= next_lag:
                for topic, behind in reader.lag().items():
                    LAG.labels(self._logical(topic)).set(behind)
                next_lag = time.monotonic() + LAG_EVERY_SECONDS

    def _apply(self, projection: Projection, records: list[Record]) -> None:
        for record in records:
            message = self.codecs[record.topic].decode_input(record)
            if message is None:
                SKIPPED.labels(self._logical(record.topic)).inc()
            else:
                self._records[record.topic].inc()
            item = Input(record.topic, record.partition, record.offset, message)
            try:
                projection.apply(item)
            except Exception:  # a bug must not stop the read model: skip the record, loudly
                FAILED.labels(self._logical(record.topic)).inc()
                log.exception(
                    "could not apply %s[%d]@%d", record.topic, record.partition, record.offset
                )

    def _logical(self, topic: str) -> str:
        return self.topics.logical(topic)

    def digest_json(self, query: dict[str, str] | None = None) -> dict:
        """The in-memory state's digest and what it covers (``/digest``)."""
        with self.lock:
            projection = self.projection
            if projection is None:
                raise LookupError("not loaded yet")
            return projection.digest_json()


def main() -> None:
    configure_logging()
    stop = stop_on_signals()
    settings = load_settings(ProjectorSettings)
    lower_priority(settings.niceness)
    calm_gc()
    projector = Projector(settings, default_symbols())
    ops = OpsServer(settings.metrics_port, projector.digest_json, host=settings.metrics_host)
    try:
        projector.run(stop)
    finally:
        ops.close()


if __name__ == "__main__":
    main()
