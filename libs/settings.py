"""Typed settings from the environment. Required values have no default; a missing or
malformed one stops the process at start with a message naming it. Nothing connects here."""

from __future__ import annotations

import sys
from typing import TypeVar

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

S = TypeVar("S", bound=BaseSettings)


class KafkaSettings(BaseSettings):
    """What every service needs to reach the bus."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    kafka_bootstrap_servers: str = Field(description="host:port[,host:port] of the Kafka brokers")
    stall_seconds: float = Field(
        120.0, gt=0, description="exit for a clean restart when one loop turn takes longer"
    )


class JournalSettings(KafkaSettings):
    """What a service run by ``libs.bus.JournalLoop`` (wallet, positions) tunes."""

    snapshot_every: int = Field(20_000, ge=1, description="inputs after which a snapshot is due")
    snapshot_seconds: float = Field(
        10.0,
        ge=0,
        description="seconds between two snapshots at least (cost grows with users)",
    )
    # Each commit costs the broker about nine requests; nothing waits for one (consumers read
    # uncommitted), so a quiet stack commits rarely. Below the producers' transaction.timeout.ms
    # (10 s), or the coordinator aborts the transaction and fences the producer.
    commit_seconds: float = Field(
        5.0,
        gt=0,
        le=8,
        description="how long a transaction stays open (it fences; it is not on the way)",
    )
    max_batch: int = Field(500, ge=1, description="records per turn at most")


class SettingsError(SystemExit):
    """Raised (as an exit) when the environment does not describe a runnable service."""


def load_settings(cls: type[S]) -> S:
    """Return ``cls`` filled from the environment, or exit naming every missing/bad variable."""
    try:
        return cls()
    except ValidationError as error:
        problems = [
            f"  {'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}" for e in error.errors()
        ]
        message = f"{cls.__name__}: bad or missing environment variables:\n" + "\n".join(problems)
        print(message, file=sys.stderr)
        raise SettingsError(2) from None
