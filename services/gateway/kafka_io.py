"""The gateway's two Kafka edges: requests out (``orders.requests``), answers in.

Both run librdkafka on a background thread and hand results to the asyncio loop, so a
request handler simply awaits. Each gateway reads ``wallet.events`` and ``matcher.events``
from their end as it starts, outside any consumer group: every gateway sees every answer
and keeps the ones it is waiting for, so gateways can be added or removed freely.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from prometheus_client import Counter, Histogram

from libs.bus.kafka import FETCH_WAIT_MS, ISOLATION, fetch_ready
from libs.bus.stats import counted
from libs.messages import ANY, DecodeError, Message, encode
from libs.topics import user_partition
from services.gateway.freshness import ReplyPositions
from services.gateway.replies import Kind, Outcome, ReplyTracker

log = logging.getLogger("services.gateway")

MALFORMED = Counter("gateway_malformed_total", "Undecodable records skipped", ["topic"])
TIMEOUTS = Counter("gateway_reply_timeouts_total", "Requests answered Pending", ["kind"])
LOST = Counter("gateway_requests_lost_total", "Requests the log did not take (after a 503 or 202)")
_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1, 0.25, 1)
PRODUCED = Histogram(
    "gateway_produce_seconds", "From produce to the broker's acknowledgement", buckets=_BUCKETS
)
ANSWERED = Histogram(
    "gateway_answer_seconds",
    "From the acknowledgement to the engines' answer",
    ["kind"],
    buckets=_BUCKETS,
)


class RequestProducer:
    """Produce to ``orders.requests`` (key = user); the broker's acknowledgement is a future."""

    def __init__(self, bootstrap: str, topic: str, delivery_timeout: float = 30.0) -> None:
        self.topic = topic
        self._producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "client.id": "gateway",
                **counted("gateway-producer"),
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 1,
                "compression.type": "lz4",
                "retry.backoff.ms": 5,
                # A request the broker has not taken by then is dropped, never written later:
                # a 202 means "in the log within this time, or never" (docs/API.md).
                "message.timeout.ms": int(delivery_timeout * 1000),
            }
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="gateway-producer", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.05)

    def produce(self, user_id: int, message: Message) -> asyncio.Future[None]:
        """Queue the request and return at once a future of the broker's acknowledgement; it
        fails with ``ConnectionError`` if the log does not take the request. Raise
        ``ConnectionError`` now when the producer cannot even queue it (its queue is full)."""
        loop = asyncio.get_running_loop()
        delivered: asyncio.Future[None] = loop.create_future()

        def on_delivery(error: KafkaError | None, _message: object) -> None:
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
                loop.call_soon_threadsafe(_resolve, delivered, error)

        try:
            self._producer.produce(
                self.topic,
                value=encode(message),
                key=str(user_id).encode(),
                partition=user_partition(user_id),
                on_delivery=on_delivery,
            )
        except (BufferError, KafkaException) as error:
            LOST.inc()
            raise ConnectionError(f"orders.requests: {error}") from None
        return delivered

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._producer.flush(10)


def _resolve(future: asyncio.Future[None], error: KafkaError | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
        return
    LOST.inc()
    log.warning("a request did not reach orders.requests: %s", error)
    future.set_exception(ConnectionError(f"orders.requests: {error}"))
    future.exception()  # read: nobody may be waiting any more (the caller had its 202)


class ReplyListener:
    """Read the engines' answers and settle the requests waiting on them."""

    def __init__(self, bootstrap: str, topics: list[str]) -> None:
        self._tracker = ReplyTracker()
        self._positions = ReplyPositions()
        self._lock = threading.Lock()
        self._futures: dict[str, tuple[asyncio.AbstractEventLoop, asyncio.Future[Outcome]]] = {}
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"gateway-replies-{uuid.uuid4().hex}",  # never commits
                "isolation.level": ISOLATION,  # every record in the log is a fact
                "enable.auto.commit": False,
                "fetch.wait.max.ms": FETCH_WAIT_MS,  # long-poll: answers still come at once
                "client.id": "gateway-replies",
                **counted("gateway-replies"),
            }
        )
        # Start exactly at each partition's current end (not "latest", which resolves at
        # the first fetch and could skip an answer produced before it).
        assignment = []
        for topic in topics:
            metadata = self._consumer.list_topics(topic, timeout=10).topics[topic]
            if metadata.error is not None:
                raise RuntimeError(f"topic {topic}: {metadata.error}")
            for partition in sorted(metadata.partitions):
                tp = TopicPartition(topic, partition)
                _, high = self._consumer.get_watermark_offsets(tp, timeout=10)
                assignment.append(TopicPartition(topic, partition, high))
        self._consumer.assign(assignment)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="gateway-replies", daemon=True)
        self._thread.start()

    async def ask(
        self,
        request_id: str,
        kind: Kind,
        produce: Callable[[], asyncio.Future[None]],
        timeout: float,
    ) -> Outcome | None:
        """Register, ``produce`` the request, and wait for its answer; all within ``timeout``.

        Return None when the time is up (the request may still be in flight to the broker, or
        in the log unanswered); raise ``ConnectionError`` when the log did not take it.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Outcome] = loop.create_future()
        with self._lock:  # registered before sending, so the answer cannot come first
            self._tracker.expect(request_id, kind)
            self._futures[request_id] = (loop, future)
        try:
            started = time.perf_counter()
            deadline = loop.time() + timeout
            delivered = produce()
            # shield: the request stays queued after our wait ends (it is the producer's now)
            await asyncio.wait_for(asyncio.shield(delivered), timeout)
            sent = time.perf_counter()
            PRODUCED.observe(sent - started)
            outcome = await asyncio.wait_for(future, max(0.0, deadline - loop.time()))
            ANSWERED.labels(kind.value).observe(time.perf_counter() - sent)
            return outcome
        except TimeoutError:
            TIMEOUTS.labels(kind.value).inc()
            return None
        finally:
            with self._lock:
                self._tracker.forget(request_id)
                self._futures.pop(request_id, None)

    def _serve(self) -> None:
        while not self._stop.is_set():
            # Not consume(1000, 0.1): that waits for 1000 messages or the whole 100 ms.
            messages = fetch_ready(self._consumer, 1000, 0.1)
            if not messages:
                continue
            settled: list[tuple[str, Outcome]] = []
            with self._lock:
                for message in messages:
                    if message.error() is not None:
                        if message.error().code() != KafkaError._PARTITION_EOF:
                            log.warning("reply listener: %s", message.error())
                        continue
                    try:
                        event = ANY.decode(message.value())
                    except DecodeError as error:
                        MALFORMED.labels(message.topic()).inc()
                        log.warning("skipped a malformed record on %s: %s", message.topic(), error)
                        continue
                    place = (message.topic(), message.partition(), message.offset())
                    answered = self._tracker.apply(event)
                    for _, outcome in answered:
                        outcome.seen = self._positions.seen(*place, event, outcome.order_id)
                    self._positions.observe(*place, event)
                    settled += answered
                waiters = [(self._futures.get(rid), outcome) for rid, outcome in settled]
            for waiter, outcome in waiters:
                if waiter is not None:
                    loop, future = waiter
                    loop.call_soon_threadsafe(_settle, future, outcome)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._consumer.close()


def _settle(future: asyncio.Future[Outcome], outcome: Outcome) -> None:
    if not future.done():
        future.set_result(outcome)
