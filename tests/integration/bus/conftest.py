"""The bus contract runs against the in-memory bus and a real Kafka broker alike."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from libs.bus import Bus, MemoryBus


@pytest.fixture(params=["memory", "kafka"])
def bus(request: pytest.FixtureRequest) -> Iterator[Bus]:
    if request.param == "memory":
        yield MemoryBus()
    else:
        from libs.bus.kafka import KafkaBus

        yield KafkaBus(request.getfixturevalue("kafka_bootstrap"))


@pytest.fixture
def name() -> str:
    """A fresh name, so tests share one broker without seeing each other's data."""
    return f"t-{uuid.uuid4().hex[:12]}"
