"""Fixtures of the chaos tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.chaos.test_broker_outage import Broker


@pytest.fixture
def broker() -> Iterator[Broker]:
    """A private single-node Kafka that the test may kill -9 and restart."""
    kafka = Broker()
    try:
        kafka.start()
        yield kafka
    finally:
        kafka.stop()
