"""The wallet's settings, from the environment (see libs/settings.py)."""

from __future__ import annotations

from pydantic import Field

from libs.settings import JournalSettings


class WalletSettings(JournalSettings):
    metrics_port: int = Field(9102, description="/metrics, /digest and /healthz")
    metrics_host: str = Field("127.0.0.1", description="address the ops endpoint binds")
    wallet_group_id: str = Field("wallet", description="consumer group of the wallet")
    wallet_transactional_id: str = Field("wallet-0", description="transactional id (one owner)")
    topic_prefix: str = Field("", description="prefix of every topic name (tests)")
