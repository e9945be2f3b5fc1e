"""The gateway's two Kafka edges: requests out (``orders.requests``), answers in.

Both run librdkafka on a background thread and hand results to the asyncio loop, so a
request handler simply awaits. Each gateway reads ``matcher.events`` (every order answer) from
its end as it starts, outside any consumer group: every gateway sees every answer and keeps
the ones it is waiting for, so gateways can be added or removed freely. It reads
``wallet.events`` (the answers to deposits, withdrawals and leverage) only while such a
request waits, from that topic's end when the first of them went out: every batch on a topic
costs the broker a fetch for each of its readers, and most of that topic is not answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future

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
REPLIED = Histogram(
    "gateway_reply_seconds",
    "From sending a request to the engines' answer (the broker's acknowledgement included)",
    ["kind"],
    buckets=_BUCKETS,
)
ANSWERS = Counter(
    "gateway_answers_total",
    "Requests the engines answered, by kind, status and reject code (empty: not rejected)",
    ["kind", "status", "code"],
)
# Labelled once per combination (labels() validates and locks on every call); all bounded:
# the request kinds, the order statuses and the codes of libs.codes.
_replied = functools.cache(REPLIED.labels)
_answered = functools.cache(ANSWERED.labels)


@functools.cache
def _answers(kind: str, status: str, code: int | None) -> Counter:
    return ANSWERS.labels(kind, status, "" if code is None else str(code))


def count_answer(kind: Kind, outcome: Outcome, started: float, sent: float, now: float) -> None:
    """Note an answer: its latency from ``started`` (before the produce) and from ``sent`` (the
    acknowledgement), and its status and code."""
    _answered(kind.value).observe(now - sent)
    _replied(kind.value).observe(now - started)
    _answers(kind.value, outcome.status.value, outcome.code).inc()


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


ACCOUNT_KINDS = frozenset({Kind.DEPOSIT, Kind.WITHDRAW, Kind.LEVERAGE})
"""The requests the wallet answers itself, on ``wallet.events``."""


class ReplyListener:
    """Read the engines' answers and settle the requests waiting on them.

    Two consumers, each polled by a thread of its own (a consumer being polled takes no other
    call from another thread: a pause or seek then waits for ever): one reads
    ``matcher.events`` all the time; the other reads ``wallet.events`` only while an account
    request waits, from that topic's end when the first of them asked, and is otherwise
    assigned nothing, so the broker wakes it for nothing. (Assigned anew, it fetches at once;
    resumed after a pause, it took 0.3-0.8 s to fetch again.)
    """

    def __init__(self, bootstrap: str, orders_topic: str, accounts_topic: str) -> None:
        self._tracker = ReplyTracker()
        self._positions = ReplyPositions()
        self._lock = threading.Lock()
        self._futures: dict[str, tuple[asyncio.AbstractEventLoop, asyncio.Future[Outcome]]] = {}
        # Asks where the topics end; it is assigned nothing, so it fetches nothing.
        self._lookup = Consumer(
            {"bootstrap.servers": bootstrap, "group.id": "gateway-lookup", "client.id": "gateway"}
        )
        # Start exactly at each partition's current end (not "latest", which resolves at
        # the first fetch and could skip an answer produced before it).
        self._orders = self._consumer(bootstrap, "gateway-replies")
        self._orders.assign(self._ends(orders_topic))
        self._accounts = self._consumer(bootstrap, "gateway-accounts")
        self._account_ends = self._ends(accounts_topic)  # its partitions
        self._wanted = threading.Condition(self._lock)
        self._account_waiters = 0
        self._reading_accounts = False  # assigned from an end taken before the waiters asked
        self._following: Future[None] | None = None  # for the waiters that came unassigned
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._serve_orders, name="gateway-replies", daemon=True),
            threading.Thread(target=self._serve_accounts, name="gateway-accounts", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    @staticmethod
    def _consumer(bootstrap: str, client_id: str) -> Consumer:
        return Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"{client_id}-{uuid.uuid4().hex}",  # never commits
                "isolation.level": ISOLATION,  # every record in the log is a fact
                "enable.auto.commit": False,
                "fetch.wait.max.ms": FETCH_WAIT_MS,  # long-poll: answers still come at once
                "client.id": client_id,
                **counted(client_id),
            }
        )

    def _ends(self, topic: str) -> list[TopicPartition]:
        metadata = self._lookup.list_topics(topic, timeout=10).topics[topic]
        if metadata.error is not None:
            raise RuntimeError(f"topic {topic}: {metadata.error}")
        return [self._end(TopicPartition(topic, p)) for p in sorted(metadata.partitions)]

    def _end(self, partition: TopicPartition) -> TopicPartition:
        _, high = self._lookup.get_watermark_offsets(partition, timeout=10)
        return TopicPartition(partition.topic, partition.partition, high)

    async def ask(
        self,
        request_id: str,
        user_id: int,
        kind: Kind,
        produce: Callable[[], asyncio.Future[None]],
        timeout: float,
    ) -> Outcome | None:
        """Register ``user_id``'s request, ``produce`` it, and wait for its answer; all within
        ``timeout``.

        Return None when the time is up (the request may still be in flight to the broker, or
        in the log unanswered); raise ``ConnectionError`` when the log did not take it.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Outcome] = loop.create_future()
        with self._lock:  # registered before sending, so the answer cannot come first
            self._tracker.expect(request_id, kind, user_id)
            self._futures[request_id] = (loop, future)
        accounts = kind in ACCOUNT_KINDS
        try:
            started = time.perf_counter()
            deadline = loop.time() + timeout
            if accounts:  # its answer is on wallet.events: read that from before the request
                following = asyncio.wrap_future(self._follow_accounts())
                try:
                    await asyncio.wait_for(asyncio.shield(following), timeout)
                except TimeoutError:  # the broker is away: send it, in flight unanswered (202)
                    produce()
                    raise
            delivered = produce()
            # shield: the request stays queued after our wait ends (it is the producer's now)
            await asyncio.wait_for(asyncio.shield(delivered), timeout)
            sent = time.perf_counter()
            PRODUCED.observe(sent - started)
            outcome = await asyncio.wait_for(future, max(0.0, deadline - loop.time()))
            count_answer(kind, outcome, started, sent, time.perf_counter())
            return outcome
        except TimeoutError:
            TIMEOUTS.labels(kind.value).inc()
            return None
        finally:
            with self._lock:
                self._tracker.forget(request_id)
                self._futures.pop(request_id, None)
                if accounts:
                    self._account_waiters -= 1

    def _follow_accounts(self) -> Future[None]:
        """Count one more account request waiting; return a future done once
        ``wallet.events`` is read from an end taken after this call."""
        with self._wanted:
            self._account_waiters += 1
            if self._reading_accounts:  # from an end taken earlier: it reads this answer too
                done: Future[None] = Future()
                done.set_result(None)
                return done
            if self._following is None:
                self._following = Future()
                self._wanted.notify()
            return self._following

    def _serve_orders(self) -> None:
        while not self._stop.is_set():
            # Not consume(1000, 0.1): that waits for 1000 messages or the whole 100 ms.
            self._take(fetch_ready(self._orders, 1000, 0.1))

    def _serve_accounts(self) -> None:
        while True:
            with self._wanted:
                if not self._account_waiters:
                    if self._reading_accounts:  # the last waiter is answered: stop reading
                        self._accounts.unassign()
                        self._reading_accounts = False
                    if not self._stop.is_set():
                        self._wanted.wait(5.0)  # then a poll serves the client's callbacks
                if self._stop.is_set():
                    return
                start = self._account_waiters > 0 and not self._reading_accounts
            if start:  # from the ends as they are now: after every waiter's request
                try:
                    ends = [self._end(end) for end in self._account_ends]
                except KafkaException as error:
                    log.warning("reply listener: no end of wallet.events yet: %s", error)
                    continue
                self._accounts.assign(ends)
                with self._wanted:
                    self._reading_accounts = True
                    following, self._following = self._following, None
                if following is not None:
                    following.set_result(None)
            self._take(fetch_ready(self._accounts, 1000, 0.1 if self._reading_accounts else 0))

    def _take(self, messages: list) -> None:
        """Apply one poll's records to the requests waiting; settle those they answer."""
        if not messages:
            return
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
                    outcome.seen = self._positions.seen(
                        *place, event, outcome.order_id, outcome.user_id
                    )
                self._positions.observe(*place, event)
                settled += answered
            waiters = [(self._futures.get(rid), outcome) for rid, outcome in settled]
        for waiter, outcome in waiters:
            if waiter is not None:
                loop, future = waiter
                loop.call_soon_threadsafe(_settle, future, outcome)

    def close(self) -> None:
        self._stop.set()
        with self._wanted:
            self._wanted.notify()
        for thread in self._threads:
            thread.join()
        for consumer in (self._orders, self._accounts, self._lookup):
            consumer.close()


def _settle(future: asyncio.Future[Outcome], outcome: Outcome) -> None:
    if not future.done():
        future.set_result(outcome)
