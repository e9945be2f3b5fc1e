"""The position engine's settings, from the environment (see libs/settings.py)."""

from __future__ import annotations

from pydantic import Field

from libs.ops import OFF_REPLY_PATH_NICENESS
from libs.settings import JournalSettings


class PositionsSettings(JournalSettings):
    metrics_port: int = Field(9103, description="/metrics, /digest and /healthz")
    metrics_host: str = Field("127.0.0.1", description="address the ops endpoint binds")
    positions_group_id: str = Field("positions", description="consumer group of the engine")
    positions_transactional_id: str = Field("positions-0", description="transactional id")
    topic_prefix: str = Field("", description="prefix of every topic name (tests)")
    funding_interval_seconds: int | None = Field(
        None, ge=1, description="override every symbol's funding interval (tests: seconds)"
    )
    niceness: int = Field(
        OFF_REPLY_PATH_NICENESS, ge=0, le=19, description="yield the CPU to the reply path"
    )
    basis_window: int = Field(60, ge=1, description="index ticks in the MA(mid - index) of mark")
