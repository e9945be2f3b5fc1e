"""A consumer whose client hits a fatal error (a static group member fenced after its session
timed out while the coordinator's broker was down) gets a new client with the same
subscription: the old one would never consume again (issue 16, the cluster's rebalance test)."""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import KafkaError

import libs.bus.kafka as kafka
from libs.bus.base import BusError


class FakeMessage:
    def __init__(self, error: KafkaError) -> None:
        self._error = error

    def error(self) -> KafkaError:
        return self._error


class FakeClient:
    made: list[FakeClient] = []
    fail_with: KafkaError | None = None

    def __init__(self, config: dict[str, Any]) -> None:
        self.config, self.subscribed, self.closed = config, None, False
        FakeClient.made.append(self)

    def subscribe(self, topics: list[str], **callbacks: Any) -> None:
        self.subscribed = (topics, sorted(callbacks))

    def consume(self, n: int, timeout: float) -> list[FakeMessage]:
        failing, FakeClient.fail_with = FakeClient.fail_with, None
        return [FakeMessage(failing)] if failing is not None else []

    def poll(self, timeout: float) -> None:
        return None

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def clients(monkeypatch: pytest.MonkeyPatch) -> list[FakeClient]:
    FakeClient.made = []
    monkeypatch.setattr(kafka, "KafkaConsumerClient", FakeClient)
    return FakeClient.made


def test_a_fatal_error_replaces_the_client_with_one_of_the_same_subscription(
    clients: list[FakeClient],
) -> None:
    revoked: list = []
    consumer = kafka.KafkaConsumer({"group.id": "g"}, "g", ["t"], None, revoked.extend)
    FakeClient.fail_with = KafkaError(KafkaError._FATAL, "static consumer fenced")
    with pytest.raises(BusError, match="recreated"):
        consumer.poll_batch(10, 0.0)
    first, second = clients
    assert first.closed and not second.closed
    assert second.subscribed == first.subscribed == (["t"], ["on_lost", "on_revoke"])
    assert second.config == first.config
    assert consumer.poll_batch(10, 0.0) == []  # the new client consumes


def test_an_error_that_is_not_fatal_keeps_the_client(clients: list[FakeClient]) -> None:
    consumer = kafka.KafkaConsumer({"group.id": "g"}, "g", ["t"], None)
    FakeClient.fail_with = KafkaError(KafkaError._TRANSPORT, "broker down")
    with pytest.raises(BusError, match="consume"):
        consumer.poll_batch(10, 0.0)
    assert len(clients) == 1 and not clients[0].closed
