"""Fixtures of the wallet's integration tests: a private topic set and a wallet process."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator

import pytest

from libs.bus import Outgoing
from libs.bus.kafka import KafkaBus
from libs.messages import ANY, Cause, Message, encode
from libs.topics import Topics, cause_of, exchange_topics, user_partition
from tests.integration.positions.conftest import MatcherProcess
from tests.integration.wallet.matcher_pump import MatcherPump
from tests.processes import ServiceProcess, free_port, fresh_redis_db


class WalletProcess(ServiceProcess):
    """``python -m services.wallet`` on a private topic set; start, kill -9, restart."""

    def __init__(self, bootstrap: str, redis_url: str, prefix: str, snapshot_every: int) -> None:
        port = free_port()
        super().__init__(
            "wallet",
            "services.wallet",
            {
                **os.environ,
                "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
                "REDIS_URL": redis_url,
                "TOPIC_PREFIX": prefix,
                "METRICS_PORT": str(port),
                "SNAPSHOT_EVERY": str(snapshot_every),
                "WALLET_GROUP_ID": f"{prefix}wallet",
                "WALLET_TRANSACTIONAL_ID": f"{prefix}wallet-0",
            },
            port=port,
            ready_line=b"wallet ready",
            log_name=f"{prefix}wallet",
        )
        self.prefix = prefix


class ServiceMatcher:
    """The real matcher service (``python -m services.matcher``) in the pump's place."""

    def __init__(self, bus: KafkaBus, bootstrap: str, prefix: str, events_topic: str) -> None:
        self.bus, self.bootstrap, self.prefix, self.events_topic = (
            bus,
            bootstrap,
            prefix,
            events_topic,
        )
        self.process: MatcherProcess | None = None

    def progress(self) -> int:
        return sum(self.bus.end_offsets(self.events_topic).values())

    def start(self) -> None:
        self.process = MatcherProcess(self.bootstrap, self.prefix)

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()


WALLET_DB = 14  # the wallet's Redis picture, flushed for each stack


class Stack:
    """A private topic set, a private Redis database, a producer of requests, a matcher (the
    in-test pump or the real matcher service) and the wallet process."""

    def __init__(
        self, bootstrap: str, redis_url: str, snapshot_every: int = 1000, matcher: str = "pump"
    ) -> None:
        self.prefix = f"t{uuid.uuid4().hex[:10]}."
        self.redis_url = fresh_redis_db(redis_url, WALLET_DB)
        self.topics = Topics(self.prefix)
        self.bus = KafkaBus(bootstrap)
        for topic in exchange_topics():
            self.bus.create_topic(self.prefix + topic.name, topic.partitions, topic.config)
        self.producer = self.bus.producer()
        self.pump: MatcherPump | ServiceMatcher = (
            MatcherPump(self.bus, self.topics.commands, self.topics.matcher_events)
            if matcher == "pump"
            else ServiceMatcher(self.bus, bootstrap, self.prefix, self.topics.matcher_events)
        )
        self.wallet = WalletProcess(bootstrap, self.redis_url, self.prefix, snapshot_every)

    def send(self, message, topic: str | None = None, partition: int | None = None) -> None:
        user = message.user_id
        self.producer.produce(
            Outgoing(
                topic or self.topics.requests,
                encode(message),
                str(user).encode(),
                user_partition(user) if partition is None else partition,
            )
        )

    def send_raw(self, topic: str, value: bytes | None, partition: int = 0) -> None:
        self.producer.produce(Outgoing(topic, value, b"x", partition))

    def flush(self) -> None:
        self.producer.flush()

    def records(self, topic: str) -> list[tuple[Cause, Message]]:
        """Every committed record of a topic, decoded, with its place (partition, then offset)."""
        return [
            (cause_of(topic, p, r.offset, self.prefix), ANY.decode(r.value))
            for p in sorted(self.bus.end_offsets(topic))
            for r in self.bus.replay(topic, p)
        ]

    def wallet_events(self) -> list:
        return [message for _, message in self.records(self.topics.wallet_events)]

    def quiet(self, timeout: float = 90) -> dict:
        """Wait until the wallet has applied every input and the pump has nothing left."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ends = {}
            for topic in (
                self.topics.requests,
                self.topics.matcher_events,
                self.topics.positions_events,
            ):
                for p, end in self._record_ends(topic).items():
                    ends[f"{topic}:{p}"] = end
            try:
                state = self.wallet.digest()
            except OSError:
                time.sleep(0.5)
                continue
            applied = state["offsets"]
            behind = {k: e for k, e in ends.items() if e > applied.get(k, 0)}
            if not behind:
                events = self.pump.progress()
                time.sleep(2.0)
                if self.wallet.digest() == state and self.pump.progress() == events:
                    return state
            time.sleep(0.3)
        raise AssertionError("the wallet did not catch up")

    def _record_ends(self, topic: str) -> dict[int, int]:
        """Per partition, the offset after the last record. Not the end offset: a
        transactional producer (the real matcher) leaves a commit marker after its records,
        which no consumer ever sees as applied."""
        ends = {}
        for partition, end in self.bus.end_offsets(topic).items():
            last = -1
            if end:
                for record in self.bus.replay(topic, partition):
                    last = record.offset
            ends[partition] = last + 1
        return ends

    def close(self) -> None:
        self.wallet.stop()
        self.pump.stop()


@pytest.fixture(params=["pump", "matcher-service"])
def stack(kafka_bootstrap: str, redis_url: str, request: pytest.FixtureRequest) -> Iterator[Stack]:
    s = Stack(kafka_bootstrap, redis_url, matcher="pump" if request.param == "pump" else "service")
    s.pump.start()
    yield s
    s.close()
