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
