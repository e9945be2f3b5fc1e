"""The bus over Apache Kafka (confluent-kafka / librdkafka).

Consumers and readers are read_uncommitted with auto-commit off (``libs.bus.base`` says
why): a record reaches its consumers as soon as it is in the log, not when the transaction
around it commits. Offsets move only inside producer transactions, for observers. Consumers
may use static membership (``group.instance.id``) so a restarted service takes its partitions
back at once instead of waiting out a session timeout.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from confluent_kafka import (
    OFFSET_INVALID,
    OFFSET_STORED,
    KafkaError,
    KafkaException,
)
from confluent_kafka import (
    Consumer as KafkaConsumerClient,
)
from confluent_kafka import (
    Producer as KafkaProducerClient,
)
from confluent_kafka import (
    TopicPartition as KafkaTopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic

from libs.bus.base import (
    AbortableError,
    Bus,
    BusError,
    Consumer,
    FatalError,
    FencedError,
    Outgoing,
    Producer,
    Record,
    TopicPartition,
)
from libs.bus.stats import counted
from libs.topics import SNAPSHOT_MAX_BYTES

# How long the broker may hold a fetch that finds nothing new. A fetch returns as soon as
# records are there (read_committed ones too: a commit marker completes it): measured
# with scripts/fetch_wait_latency.py, 500 ms adds no produce -> consume latency over 10 ms,
# while 10 ms cost every idle consumer ~100 fetches/s (the idle broker's main cost).
FETCH_WAIT_MS = 500

# A reader off the reply path (the position engine, the projector) lets the broker gather
# its records: a fetch returns when 64 KB are there or 50 ms have passed. Under load each of
# its turns then carries 50 ms of records instead of one batch, and the broker answers one
# fetch where it answered one per batch a topic received (issue 12, mixed flow: the two
# readers' fetches 7.0 -> 0.9 per order at 100 orders/s; p99 through the gateway 145 -> 54 ms
# at 200/s, ADR 0001). The price: idle, 20 fetches/s each, and a read after a write may wait
# up to 50 ms more for these writers (services/gateway/freshness.py).
BATCHED_FETCH = {"fetch.min.bytes": 64 * 1024, "fetch.wait.max.ms": 50}

# Everything in the log counts, whatever became of its transaction (libs.bus.base).
ISOLATION = "read_uncommitted"
COMMIT_TIMEOUT_SECONDS = 15.0  # send offsets, then commit: each at most this long
REPLAY_STALL_SECONDS = 20.0  # a replay that hears nothing this long fails (the caller retries)
SOURCE_HEADER = "src"

_FENCED_CODES = {KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH}


def _translate(error: KafkaException, action: str) -> BusError:
    """Map a librdkafka error to what the caller must do about it."""
    kafka_error: KafkaError = error.args[0]
    text = f"{action}: {kafka_error}"
    if kafka_error.code() in _FENCED_CODES:
        return FencedError(text)
    if kafka_error.fatal():
        return FatalError(text)
    if kafka_error.txn_requires_abort() or kafka_error.retriable():
        return AbortableError(text)
    return AbortableError(text)


class KafkaBus(Bus):
    def __init__(
        self,
        bootstrap_servers: str,
        *,
        client_id: str = "exchange",
        producer_config: dict[str, Any] | None = None,
        consumer_config: dict[str, Any] | None = None,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.client_id = client_id
        self._producer_config = producer_config or {}
        self._consumer_config = consumer_config or {}
        self._admin: AdminClient | None = None
        self._watermarks: KafkaConsumerClient | None = None

    def _base(self) -> dict[str, Any]:
        return {"bootstrap.servers": self.bootstrap_servers, "client.id": self.client_id}

    def close(self) -> None:
        """Close the consumer that ``end_offsets`` keeps for its lookups."""
        if self._watermarks is not None:
            self._watermarks.close()
            self._watermarks = None

    @property
    def admin(self) -> AdminClient:
        if self._admin is None:
            self._admin = AdminClient(self._base())
        return self._admin

    def create_topic(
        self, name: str, partitions: int, config: dict[str, str] | None = None
    ) -> None:
        futures = self.admin.create_topics(
            # the broker's default replication (infra/kafka/server.properties.template)
            [NewTopic(name, num_partitions=partitions, config=config or {})],
            operation_timeout=30,
        )
        try:
            futures[name].result()
        except KafkaException as error:
            if error.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise BusError(f"create topic {name}: {error}") from error

    def producer(self, transactional_id: str | None = None) -> Producer:
        config = self._base() | counted(f"{self.client_id}-producer") | self._producer_config
        return KafkaProducer(config, transactional_id)

    def consumer(
        self,
        group_id: str,
        topics: list[str] | None = None,
        partitions: list[TopicPartition] | None = None,
        instance_id: str | None = None,
        on_revoke: Callable[[list[TopicPartition]], None] | None = None,
    ) -> Consumer:
        config = (
            self._base()
            | counted(f"{self.client_id}-consumer")
            | {
                "group.id": group_id,
                "isolation.level": ISOLATION,
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": "earliest",
                "session.timeout.ms": 10000,
                "heartbeat.interval.ms": 3000,  # a third of the session, as Kafka advises
                "fetch.wait.max.ms": FETCH_WAIT_MS,
            }
            | self._consumer_config
        )
        if instance_id:
            config["group.instance.id"] = instance_id
        return KafkaConsumer(config, group_id, topics, partitions, on_revoke)

    def membership(
        self, group_id: str, topic: str, on_revoke: Callable[[list[int]], None]
    ) -> KafkaMembership:
        """Join ``group_id`` for a share of ``topic``'s partitions, read nothing of them
        (``libs.bus.shards``); ``on_revoke`` is called with the partitions this instance
        gives up, from inside ``poll``, before another instance is given them."""
        config = self._base() | {
            "group.id": group_id,
            "enable.auto.commit": False,
            "session.timeout.ms": 10000,
            "heartbeat.interval.ms": 3000,
            # a rebalance moves only the partitions that change owner: the others' state
            # machines keep running
            "partition.assignment.strategy": "cooperative-sticky",
        }
        return KafkaMembership(config, topic, on_revoke)

    def _reader(self, **extra: Any) -> KafkaConsumerClient:
        return KafkaConsumerClient(
            self._base()
            | {
                "group.id": f"reader-{uuid.uuid4().hex}",  # never commits; required by librdkafka
                "isolation.level": ISOLATION,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
            }
            | extra
        )

    def group_offsets(
        self, group_id: str, partitions: list[TopicPartition]
    ) -> dict[TopicPartition, int]:
        # read_uncommitted makes librdkafka ask without require_stable, so the broker
        # answers at once even while the group has a transaction open.
        client = self._reader(**{"group.id": group_id})
        try:
            wanted = [KafkaTopicPartition(t, p) for t, p in partitions]
            return _offsets(client.committed(wanted, timeout=30))
        finally:
            client.close()

    def end_offsets(self, topic: str) -> dict[int, int]:
        # One long-lived client for watermark queries: creating a consumer per call costs
        # a metadata round trip and a close (hundreds of ms), too slow for every snapshot.
        if self._watermarks is None:
            self._watermarks = self._reader()
        reader = self._watermarks
        try:
            metadata = reader.list_topics(topic, timeout=10).topics.get(topic)
            if metadata is None or metadata.error is not None:
                raise BusError(f"unknown topic {topic!r}")
            return {
                p: reader.get_watermark_offsets(KafkaTopicPartition(topic, p), timeout=10)[1]
                for p in sorted(metadata.partitions)
            }
        except KafkaException as error:
            raise BusError(f"end offsets of {topic}: {error}") from error

    def replay(self, topic: str, partition: int, start: int = 0) -> Iterator[Record]:
        # fetch.wait.max.ms: the broker holds an empty fetch that long before answering, and
        # the end of a replay is exactly such a fetch.
        reader = self._reader(**{"enable.partition.eof": True, "fetch.wait.max.ms": 10})
        try:
            try:
                low, high = reader.get_watermark_offsets(
                    KafkaTopicPartition(topic, partition), timeout=10
                )
            except KafkaException as error:
                raise BusError(f"replay {topic}[{partition}]: {error}") from error
            if max(start, low) >= high:
                return
            reader.assign([KafkaTopicPartition(topic, partition, max(start, low))])
            quiet_since = time.monotonic()
            while True:
                messages = fetch_ready(reader, 1000, 1.0)
                if messages:
                    quiet_since = time.monotonic()
                elif time.monotonic() - quiet_since > REPLAY_STALL_SECONDS:
                    # the end of a partition always answers (EOF): silence is a broker away
                    raise BusError(f"replay {topic}[{partition}]: no answer, broker away?")
                for message in messages:
                    failure = message.error()
                    if failure is not None:
                        if failure.code() == KafkaError._PARTITION_EOF:
                            return
                        raise BusError(f"replay {topic}[{partition}]: {failure}")
                    yield _record(message)
        finally:
            reader.close()


def _record(message: Any) -> Record:
    source, others = None, []
    for name, value in message.headers() or ():
        if name == SOURCE_HEADER:
            source = value
        else:
            others.append((name, value))
    return Record(
        message.topic(),
        message.partition(),
        message.offset(),
        message.key(),
        message.value(),
        source,
        tuple(others),
    )


def _offsets(partitions: list[KafkaTopicPartition]) -> dict[TopicPartition, int]:
    return {
        (tp.topic, tp.partition): (-1 if tp.offset == OFFSET_INVALID else tp.offset)
        for tp in partitions
    }


class Stuck(AbortableError):
    """A call did not return within its bound (see ``bounded``)."""


def bounded(action: str, call: Callable[[], None], limit: float) -> None:
    """Run ``call``, giving up on it after ``limit`` seconds (``Stuck``); re-raise what it raised.

    After a broker restart librdkafka can block in a transactional call far past the call's
    own timeout (seen: ``send_offsets_to_transaction`` for over 60 s; confluentinc/librdkafka
    #5456). The call then stays on its own thread with its client, which the caller abandons
    and fences with a new one, instead of the whole service waiting for its watchdog.
    """
    done = threading.Event()
    failed: list[BaseException] = []

    def run() -> None:
        try:
            call()
        except BaseException as error:  # handed over to the caller's thread
            failed.append(error)
        finally:
            done.set()

    threading.Thread(target=run, name=f"kafka {action}", daemon=True).start()
    if not done.wait(limit):
        raise Stuck(f"{action}: no answer within {limit:.0f}s (broker away?)")
    if failed:
        raise failed[0]


def _fatal(error: KafkaError) -> bool:
    """Whether a client error is fatal: the client never works again. A consumer reports it as
    an error event of code ``_FATAL`` (the cause in its text), not always flagged ``fatal()``."""
    return bool(error.fatal()) or error.code() == KafkaError._FATAL


def fetch_ready(client: KafkaConsumerClient, max_records: int, timeout: float) -> list[Any]:
    """Return what is buffered now (up to ``max_records``), or wait up to ``timeout`` for the
    first message and return it with whatever arrived alongside.

    ``Consumer.consume(n, timeout)`` waits for n messages or the whole timeout: a poll would
    then cost ``timeout`` of latency whenever fewer than n are waiting.
    """
    messages = client.consume(max_records, timeout=0)
    if messages or timeout <= 0:
        return messages
    first = client.poll(timeout)
    if first is None:
        return []
    return [first, *client.consume(max_records - 1, timeout=0)]


class KafkaProducer(Producer):
    def __init__(self, config: dict[str, Any], transactional_id: str | None) -> None:
        self._transactional = transactional_id is not None
        settings = {
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 2,
            "queue.buffering.max.messages": 1_000_000,
            "compression.type": "lz4",  # cheap in C; snapshots shrink about 10x
            # Right after a commit the coordinator answers CONCURRENT_TRANSACTIONS until its
            # markers are written; the default 100 ms backoff made every transaction ~100 ms.
            "retry.backoff.ms": 5,
            "retry.backoff.max.ms": 200,
            "message.max.bytes": SNAPSHOT_MAX_BYTES + 1024 * 1024,
        } | config
        if transactional_id is not None:
            settings["transactional.id"] = transactional_id
            settings.setdefault("transaction.timeout.ms", 60000)
        self._delivery_errors: list[KafkaError] = []
        self._abandoned = False  # a call on it never returned (see bounded)
        self._client = KafkaProducerClient(settings)
        if self._transactional:
            try:
                self._client.init_transactions(30)
            except KafkaException as error:
                raise _translate(error, "init transactions") from error

    def _on_delivery(self, error: KafkaError | None, _message: Any) -> None:
        if error is not None:
            self._delivery_errors.append(error)

    def produce(self, message: Outgoing) -> None:
        kwargs: dict[str, Any] = {
            "value": message.value,
            "key": message.key,
            "on_delivery": self._on_delivery,
        }
        if message.partition is not None:
            kwargs["partition"] = message.partition
        if message.source is not None or message.headers:
            source = () if message.source is None else ((SOURCE_HEADER, message.source),)
            kwargs["headers"] = [*source, *message.headers]
        while True:
            try:
                self._client.produce(message.topic, **kwargs)
                return
            except BufferError:
                self._client.poll(0.05)  # local queue full: let deliveries drain (back-pressure)
            except KafkaException as error:
                raise _translate(error, "produce") from error

    def flush(self, timeout: float = 30.0) -> None:
        remaining = self._flush(timeout, "flush")
        if remaining:
            raise AbortableError(f"{remaining} messages not delivered within {timeout}s")
        self._raise_delivery_errors()

    def serve(self) -> None:
        self._served("serve delivery reports", lambda: self._client.poll(0))
        self._raise_delivery_errors()

    def _raise_delivery_errors(self) -> None:
        if self._delivery_errors:
            errors, self._delivery_errors = self._delivery_errors, []
            first = errors[0]
            text = f"delivery failed: {first} (+{len(errors) - 1} more)"
            if first.code() in _FENCED_CODES:
                raise FencedError(text)
            if first.fatal():
                raise FatalError(text)
            raise AbortableError(text)

    def begin(self) -> None:
        try:
            self._client.begin_transaction()
        except KafkaException as error:
            raise _translate(error, "begin transaction") from error

    def commit(self, offsets: dict[TopicPartition, int], consumer: Consumer) -> None:
        assert isinstance(consumer, KafkaConsumer)
        client = self._client

        def commit() -> None:
            if offsets:
                client.send_offsets_to_transaction(
                    [KafkaTopicPartition(t, p, o) for (t, p), o in offsets.items()],
                    consumer.group_metadata(),
                    COMMIT_TIMEOUT_SECONDS,
                )
            client.commit_transaction(COMMIT_TIMEOUT_SECONDS)

        try:
            # bounded well inside a service's stall watchdog: a coordinator that is away
            # fails the commit, and the loop recovers from the log when it is back
            bounded("commit transaction", commit, COMMIT_TIMEOUT_SECONDS + 5)
        except KafkaException as error:
            raise _translate(error, "commit transaction") from error
        except Stuck:
            self._abandoned = True  # the call still holds it: drop it, a successor fences it
            raise

    def abort(self) -> None:
        try:
            self._client.abort_transaction(30)
        except KafkaException as error:
            raise _translate(error, "abort transaction") from error

    def close(self) -> None:
        """Deliver what is queued (5 s at most). A producer that failed (fenced, say) may
        raise its error again here, as a BusError."""
        if not self._abandoned:  # an abandoned client may block here too
            self._flush(5, "close")

    def _flush(self, timeout: float, action: str) -> int:
        """Flush; return the messages left undelivered."""
        return self._served(action, lambda: self._client.flush(timeout))

    def _served(self, action: str, call: Callable[[], int]) -> int:
        """Run a call that serves delivery reports, translating what it raises."""
        try:
            return call()
        except KafkaException as error:
            raise _translate(error, action) from error
        except SystemError as error:
            # a fatal error (fenced) raised while delivery callbacks ran: confluent-kafka
            # wraps it; the KafkaException is the context
            cause = error.__cause__ or error.__context__
            if isinstance(cause, KafkaException):
                raise _translate(cause, action) from error
            # seen once with neither (the fencing contract test): what the delivery reports
            # said, else unusable; either way the caller recovers instead of crashing
            fenced = any(e.code() in _FENCED_CODES for e in self._delivery_errors)
            kind = FencedError if fenced else FatalError
            raise kind(f"{action}: {error}") from error


class KafkaConsumer(Consumer):
    def __init__(
        self,
        config: dict[str, Any],
        group_id: str,
        topics: list[str] | None,
        partitions: list[TopicPartition] | None,
        on_revoke: Callable[[list[TopicPartition]], None] | None = None,
    ) -> None:
        self.group_id = group_id
        self._config, self._topics, self._on_revoke = config, topics, on_revoke
        self._assigned = partitions  # manual assignment (None: a group subscription)
        if partitions is None and not topics:
            raise BusError("a consumer needs topics or partitions")
        self._client = self._connect()

    def _connect(self) -> KafkaConsumerClient:
        client = KafkaConsumerClient(self._config)
        if self._assigned is not None:
            client.assign([KafkaTopicPartition(t, p, OFFSET_STORED) for t, p in self._assigned])
        elif self._on_revoke is None:
            client.subscribe(list(self._topics or ()))
        else:
            on_revoke = self._on_revoke

            def revoked(_client: Any, parts: list[KafkaTopicPartition]) -> None:
                on_revoke([(tp.topic, tp.partition) for tp in parts])

            client.subscribe(list(self._topics or ()), on_revoke=revoked, on_lost=revoked)
        return client

    def _reconnect(self, error: object) -> None:
        """Replace a client that hit a fatal error (a static member fenced after its session
        timed out while the coordinator was away, a broker lost): it never consumes again.
        Its assignment was revoked (``on_lost``); the new client joins the group afresh."""
        with contextlib.suppress(KafkaException, RuntimeError):
            self._client.close()
        self._client = self._connect()
        raise BusError(f"consume: the consumer hit a fatal error and was recreated: {error}")

    def group_metadata(self) -> Any:
        return self._client.consumer_group_metadata()

    def poll_batch(self, max_records: int, timeout: float) -> list[Record]:
        try:
            messages = fetch_ready(self._client, max_records, timeout)
        except KafkaException as error:
            if _fatal(error.args[0]):
                self._reconnect(error)
            raise BusError(f"consume: {error}") from error
        records = []
        for message in messages:
            failure = message.error()
            if failure is not None:
                if failure.code() == KafkaError._PARTITION_EOF:
                    continue
                if _fatal(failure):
                    self._reconnect(failure)
                raise BusError(f"consume: {failure}")
            records.append(_record(message))
        return records

    def assignment(self) -> list[TopicPartition]:
        return [(tp.topic, tp.partition) for tp in self._client.assignment()]

    def committed(
        self, partitions: list[TopicPartition] | None = None
    ) -> dict[TopicPartition, int]:
        wanted = partitions if partitions is not None else self.assignment()
        if not wanted:
            return {}
        return _offsets(
            self._client.committed([KafkaTopicPartition(t, p) for t, p in wanted], timeout=30)
        )

    def seek(self, offsets: dict[TopicPartition, int]) -> None:
        if self._assigned is not None:
            # re-assigning works at any time; seek fails on a partition not fetching yet
            self._client.assign(
                [
                    KafkaTopicPartition(t, p, max(offsets[(t, p)], 0))
                    if (t, p) in offsets
                    else KafkaTopicPartition(t, p, OFFSET_STORED)
                    for t, p in self._assigned
                ]
            )
            return
        for (topic, partition), offset in offsets.items():
            self._client.seek(KafkaTopicPartition(topic, partition, max(offset, 0)))

    def close(self) -> None:
        self._client.close()


class KafkaMembership:
    """A consumer group member that owns partitions without reading them: each stands for a
    state machine of the service (a user shard), which the group moves between instances."""

    def __init__(
        self, config: dict[str, Any], topic: str, on_revoke: Callable[[list[int]], None]
    ) -> None:
        self._client = KafkaConsumerClient(config)

        def assigned(client: Any, parts: list[KafkaTopicPartition]) -> None:
            client.incremental_assign(parts)
            client.pause(parts)  # owned, never fetched

        def revoked(_client: Any, parts: list[KafkaTopicPartition]) -> None:
            on_revoke(sorted(tp.partition for tp in parts))

        self._client.subscribe([topic], on_assign=assigned, on_revoke=revoked, on_lost=revoked)

    def poll(self, timeout: float) -> list[int]:
        """Serve the group (heartbeats are in the background; rebalances run here); return
        the partitions owned now."""
        message = self._client.poll(timeout)
        failure = message.error() if message is not None else None
        if failure is not None and _fatal(failure):  # out of the group for good: restart
            raise FatalError(f"shard membership: {failure}")
        return sorted(tp.partition for tp in self._client.assignment())

    def close(self) -> None:
        """Leave the group at once (the others take the partitions without a timeout)."""
        self._client.close()
