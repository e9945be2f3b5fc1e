"""The wallet's settings, from the environment (see libs/settings.py)."""

from __future__ import annotations

from pydantic import Field

from libs.settings import KafkaSettings


class WalletSettings(KafkaSettings):
    metrics_port: int = Field(9102, description="/metrics, /digest and /healthz")
    metrics_host: str = Field("127.0.0.1", description="address the ops endpoint binds")
    redis_url: str | None = Field(None, description="redis:// URL of the read model; none: off")
    snapshot_every: int = Field(20_000, ge=1, description="inputs after which a snapshot is due")
    snapshot_seconds: float = Field(
        10.0,
        ge=0,
        description="seconds between two snapshots at least (cost grows with users)",
    )
    commit_seconds: float = Field(
        1.0, gt=0, description="how long a transaction stays open (it fences; it is not on the way)"
    )
    wallet_group_id: str = Field("wallet", description="consumer group of the wallet")
    wallet_transactional_id: str = Field("wallet-0", description="transactional id (one owner)")
    topic_prefix: str = Field("", description="prefix of every topic name (tests)")
    max_batch: int = Field(500, ge=1, description="records per turn at most")
