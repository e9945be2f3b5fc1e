"""The index feed's settings, from the environment (see libs/settings.py)."""

from __future__ import annotations

from pydantic import Field

from libs.settings import KafkaSettings


class IndexFeedSettings(KafkaSettings):
    topic_prefix: str = Field("", description="prefix of every topic name (tests)")
