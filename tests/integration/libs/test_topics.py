"""`python -m libs.topics create` against a real broker: it creates what is missing and refuses
a log written by another topology instead of serving part of it."""

from __future__ import annotations

import uuid

import pytest

from libs.bus.kafka import KafkaBus
from libs.topics import FOREVER, Topic, TopologyError, create_topics


def _topic(name: str, partitions: int) -> Topic:
    return Topic(name, "user", partitions, "a test", "a test", FOREVER)


def test_create_makes_the_missing_topics_and_leaves_matching_ones(kafka_bootstrap: str) -> None:
    name = f"topics-{uuid.uuid4().hex[:8]}"
    assert create_topics(kafka_bootstrap, [_topic(name, 1)]) == [name]
    assert create_topics(kafka_bootstrap, [_topic(name, 1)]) == []
    assert KafkaBus(kafka_bootstrap).end_offsets(name) == {0: 0}


def test_a_topic_with_other_partitions_than_the_table_is_refused(kafka_bootstrap: str) -> None:
    old = f"topics-{uuid.uuid4().hex[:8]}"
    KafkaBus(kafka_bootstrap).create_topic(old, 8)  # as the user-keyed topics were once
    missing = f"topics-{uuid.uuid4().hex[:8]}"
    with pytest.raises(TopologyError, match=f"{old} has 8 partitions, the table 1"):
        create_topics(kafka_bootstrap, [_topic(old, 1), _topic(missing, 1)])
    assert missing not in KafkaBus(kafka_bootstrap).admin.list_topics(timeout=10).topics
