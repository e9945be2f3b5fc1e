"""The gateway's request path on real Kafka: every request is answered within the reply
timeout whatever the broker does. The engines' answer; None (the caller's 202) while the
request is still on its way to an unreachable broker; a 503 (-1001) when the log did not take
it (delivery failed, or the producer's queue is full)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from confluent_kafka import KafkaException
from prometheus_client import REGISTRY

from libs.bus import BusError, Outgoing
from libs.bus.kafka import KafkaBus
from libs.messages import AccountUpdated, Cause, Deposit, encode
from libs.topics import exchange_topics, user_partition
from services.gateway.errors import ApiError
from services.gateway.ids import OrderIds
from services.gateway.kafka_io import ReplyListener, RequestProducer
from services.gateway.reads import ReadModel
from services.gateway.replies import Kind
from services.gateway.state import Gateway
from tests.processes import free_port

REPLY_TIMEOUT = 1.0
FAILURE_REPLY_TIMEOUT = 2.0
"""For a delivery that fails: librdkafka scans for timed-out messages once a second, so a
0.3 s delivery timeout fails 0.3-1.3 s after the produce (measured), and the reply timeout
must lie beyond that for the failure to be what answers."""


@pytest.fixture
def topics(kafka_bootstrap: str) -> Iterator[tuple[KafkaBus, str]]:
    prefix = f"t{uuid.uuid4().hex[:10]}."
    bus = KafkaBus(kafka_bootstrap)
    for topic in exchange_topics():
        bus.create_topic(prefix + topic.name, topic.partitions, topic.config)
    deadline = time.monotonic() + 30
    for name in ("wallet.events", "matcher.events"):  # the listener reads their metadata
        while not _led(bus, prefix + name):
            assert time.monotonic() < deadline, f"{prefix}{name} never got its leaders"
            time.sleep(0.1)
    yield bus, prefix


def _led(bus: KafkaBus, name: str) -> bool:
    """Whether every partition answers a watermark query (what the listener asks first)."""
    try:
        bus.end_offsets(name)
    except (BusError, KafkaException):
        return False
    return True


def run(
    scenario,
    bootstrap: str,
    prefix: str,
    requests: RequestProducer,
    reply_timeout: float = REPLY_TIMEOUT,
) -> None:
    """Run ``scenario(gateway)`` with the given producer and a reply listener on ``prefix``."""
    replies = ReplyListener(bootstrap, f"{prefix}matcher.events", f"{prefix}wallet.events")
    gateway = Gateway(
        settings=SimpleNamespace(reply_timeout_seconds=reply_timeout),  # type: ignore[arg-type]
        symbols={},
        ids=OrderIds(0),
        requests=requests,
        replies=replies,
        reads=ReadModel(None),  # type: ignore[arg-type]  # notes replies; never read here
        users=None,  # type: ignore[arg-type]
        tokens=None,  # type: ignore[arg-type]
    )
    try:
        asyncio.run(scenario(gateway))
    finally:
        replies.close()
        requests._producer.purge()  # what an unreachable broker never took: no flush wait
        requests.close()


def unreachable(prefix: str, delivery_timeout: float) -> RequestProducer:
    """A producer whose broker never answers (nothing listens on its port)."""
    address = f"127.0.0.1:{free_port()}"
    return RequestProducer(address, f"{prefix}orders.requests", delivery_timeout)


def deposit(user: int = 7) -> Deposit:
    return Deposit(request_id=uuid.uuid4().hex, user_id=user, amount=1)


def test_an_answered_request_gets_its_answer(kafka_bootstrap: str, topics) -> None:
    bus, prefix = topics
    answers = bus.producer()

    async def scenario(gw: Gateway) -> None:
        request = deposit()
        asked = asyncio.ensure_future(gw.ask(7, request, Kind.DEPOSIT))
        await asyncio.sleep(0.2)
        answer = AccountUpdated(
            seq=1,
            cause=Cause(f"{prefix}orders.requests", 0, 0),
            user_id=7,
            balance=1,
            holds=0,
            available=1,
            request_id=request.request_id,
        )
        answers.produce(Outgoing(f"{prefix}wallet.events", encode(answer), b"7", user_partition(7)))
        answers.flush()
        outcome = await asyncio.wait_for(asked, 5)
        assert outcome is not None and outcome.status == "Done"
        assert await gw.send(7, deposit())  # the broker has it: True

    run(
        scenario,
        kafka_bootstrap,
        prefix,
        RequestProducer(kafka_bootstrap, f"{prefix}orders.requests"),
    )


def test_the_listener_reads_wallet_events_only_while_an_account_request_waits(
    kafka_bootstrap: str, topics
) -> None:
    """Order answers come on matcher.events; wallet.events is read from its end when an
    account request goes out and not after the last one is answered. A malformed record
    (counted when read) shows whether the listener read it."""
    bus, prefix = topics
    wallet = f"{prefix}wallet.events"
    answers = bus.producer()

    def write(value: bytes) -> None:
        answers.produce(Outgoing(wallet, value, b"7", user_partition(7)))
        answers.flush()

    def skipped() -> float:
        return REGISTRY.get_sample_value("gateway_malformed_total", {"topic": wallet}) or 0.0

    async def scenario(gw: Gateway) -> None:
        before = skipped()
        write(b"written while nobody waits")
        await asyncio.sleep(0.5)
        assert skipped() == before  # never read, not even when the next request resumes
        for _ in range(2):  # each time paused after the answer, and resumed from the end
            request = deposit()
            asked = asyncio.ensure_future(gw.ask(7, request, Kind.DEPOSIT))
            await asyncio.sleep(0.2)
            write(b"written while a deposit waits")
            write(encode(answer_to(request, prefix)))
            outcome = await asyncio.wait_for(asked, 5)
            assert outcome is not None and outcome.status == "Done"
            before += 1
            assert skipped() == before
        await asyncio.sleep(0.3)  # the pause reaches the fetcher
        write(b"written after the last answer")
        await asyncio.sleep(0.5)
        assert skipped() == before

    run(
        scenario,
        kafka_bootstrap,
        prefix,
        RequestProducer(kafka_bootstrap, f"{prefix}orders.requests"),
    )


def test_account_requests_waiting_together_are_each_answered(kafka_bootstrap: str, topics) -> None:
    """The second of two waiting requests finds wallet.events being read already, and the
    first one answered does not stop the reading while the other still waits."""
    bus, prefix = topics
    answers = bus.producer()

    def write(request: Deposit) -> None:
        value = encode(answer_to(request, prefix))
        answers.produce(Outgoing(f"{prefix}wallet.events", value, b"7", user_partition(7)))
        answers.flush()

    async def scenario(gw: Gateway) -> None:
        first, second = deposit(), deposit()
        asked = [asyncio.ensure_future(gw.ask(7, r, Kind.DEPOSIT)) for r in (first, second)]
        await asyncio.sleep(0.2)
        write(first)
        assert (await asyncio.wait_for(asked[0], 5)).status == "Done"
        await asyncio.sleep(0.2)  # the listener had its chance to stop reading: it must not
        write(second)
        assert (await asyncio.wait_for(asked[1], 5)).status == "Done"

    run(
        scenario,
        kafka_bootstrap,
        prefix,
        RequestProducer(kafka_bootstrap, f"{prefix}orders.requests"),
    )


def answer_to(request: Deposit, prefix: str) -> AccountUpdated:
    return AccountUpdated(
        seq=1,
        cause=Cause(f"{prefix}orders.requests", 0, 0),
        user_id=request.user_id,
        balance=1,
        holds=0,
        available=1,
        request_id=request.request_id,
    )


def test_a_request_the_broker_cannot_take_yet_is_pending_at_the_reply_timeout(
    kafka_bootstrap: str, topics
) -> None:
    _, prefix = topics
    lost: list[str] = []

    async def scenario(gw: Gateway) -> None:
        started = time.monotonic()
        assert await gw.ask(7, deposit(), Kind.DEPOSIT, lambda: lost.append("x")) is None
        assert REPLY_TIMEOUT <= time.monotonic() - started < REPLY_TIMEOUT + 0.5
        started = time.monotonic()
        assert await gw.send(7, deposit()) is False  # in flight
        assert time.monotonic() - started < REPLY_TIMEOUT + 0.5
        assert not lost  # still on its way: not lost

    run(scenario, kafka_bootstrap, prefix, unreachable(prefix, 30))


def test_a_request_whose_delivery_fails_is_a_503_and_is_reported_lost(
    kafka_bootstrap: str, topics
) -> None:
    _, prefix = topics
    lost: list[str] = []

    async def scenario(gw: Gateway) -> None:
        started = time.monotonic()
        with pytest.raises(ApiError) as refused:
            await gw.ask(7, deposit(), Kind.DEPOSIT, lambda: lost.append("first"))
        assert time.monotonic() - started < FAILURE_REPLY_TIMEOUT
        assert (refused.value.status, refused.value.code) == (503, -1001)
        assert lost == ["first"]
        with pytest.raises(ApiError) as refused:
            await gw.send(7, deposit())
        assert refused.value.status == 503

    run(scenario, kafka_bootstrap, prefix, unreachable(prefix, 0.3), FAILURE_REPLY_TIMEOUT)


def test_a_request_lost_after_its_202_is_reported_lost_then(kafka_bootstrap: str, topics) -> None:
    _, prefix = topics
    lost: list[float] = []

    async def scenario(gw: Gateway) -> None:
        started = time.monotonic()
        assert await gw.ask(7, deposit(), Kind.DEPOSIT, lambda: lost.append(1.0)) is None
        assert not lost
        while not lost:
            await asyncio.sleep(0.05)
            assert time.monotonic() - started < 5
        assert time.monotonic() - started >= 1.5  # the producer's own timeout

    run(scenario, kafka_bootstrap, prefix, unreachable(prefix, 1.5))


def test_a_full_producer_queue_is_a_503_at_once(kafka_bootstrap: str, topics) -> None:
    _, prefix = topics
    requests = unreachable(prefix, 30)

    class Full:
        def produce(self, *args, **kwargs) -> None:
            raise BufferError("Local: Queue full")

        def poll(self, timeout: float) -> int:
            time.sleep(timeout)
            return 0

        def purge(self) -> None:
            pass

        def flush(self, timeout: float) -> int:
            return 0

    requests._producer = Full()  # type: ignore[assignment]
    lost: list[str] = []

    async def scenario(gw: Gateway) -> None:
        started = time.monotonic()
        with pytest.raises(ApiError) as refused:
            await gw.ask(7, deposit(), Kind.DEPOSIT, lambda: lost.append("x"))
        assert refused.value.status == 503 and time.monotonic() - started < 0.2
        assert lost == ["x"]

    run(scenario, kafka_bootstrap, prefix, requests)
