"""``KafkaProducer.close`` reports a failed producer's error as a ``BusError``, never as
librdkafka's own exception: callers drop a failed producer with the bus errors suppressed, and a
raw ``KafkaException`` from its last flush crashed the position engine after a broker restart."""

from __future__ import annotations

import contextlib

import pytest
from confluent_kafka import KafkaError, KafkaException

from libs.bus import BusError, FatalError, FencedError
from libs.bus.kafka import KafkaProducer


class FencedClient:
    """What librdkafka's producer does once a newer instance fenced it."""

    def flush(self, _timeout: float) -> int:
        error = KafkaError(KafkaError._FENCED, "fenced by a newer instance", fatal=True)
        raise KafkaException(error)


def _fenced_producer() -> KafkaProducer:
    producer = KafkaProducer.__new__(KafkaProducer)  # no broker: only the client's answers
    producer._client = FencedClient()  # type: ignore[assignment]  # the stand-in above
    producer._abandoned = False
    producer._delivery_errors = []
    return producer


def test_closing_a_fenced_producer_raises_a_bus_error_the_caller_can_suppress() -> None:
    with pytest.raises(FencedError, match="close"):
        _fenced_producer().close()
    with contextlib.suppress(BusError):  # what JournalLoop and the matcher do
        _fenced_producer().close()


def test_flushing_a_fenced_producer_raises_a_fenced_error() -> None:
    with pytest.raises(FencedError, match="flush"):
        _fenced_producer().flush(1)


class CauselessClient:
    """confluent-kafka's SystemError from a flush with no KafkaException attached to it."""

    def flush(self, _timeout: float) -> int:
        raise SystemError("<built-in method flush> returned a result with an exception set")


@pytest.mark.parametrize(
    ("reported", "expected"),
    [([KafkaError(KafkaError._FENCED, "fenced", fatal=True)], FencedError), ([], FatalError)],
)
def test_a_flush_failing_with_a_bare_system_error_raises_a_bus_error(reported, expected) -> None:
    producer = _fenced_producer()
    producer._client = CauselessClient()  # type: ignore[assignment]
    producer._delivery_errors = list(reported)
    with pytest.raises(expected, match="flush"):
        producer.flush(1)
