"""The gateway's settings, from the environment (see libs/settings.py)."""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from libs.settings import KafkaSettings


class GatewaySettings(KafkaSettings):
    database_url: str = Field(description="postgresql:// URL of the users database")
    redis_url: str = Field(description="redis:// URL of the read model")
    jwt_secret: str = Field(min_length=32, description="HS256 key of the session tokens")
    token_ttl_seconds: int = Field(3600, ge=60, description="lifetime of a session token")
    host: str = Field("127.0.0.1", description="address the API binds")
    port: int = Field(8000, description="port of the API")
    gateway_instance: int = Field(
        0, ge=0, le=1023, description="unique per running gateway: the worker bits of order ids"
    )
    faucet_enabled: bool = Field(True, description="POST /deposit credits cash (dev only)")
    reply_timeout_seconds: float = Field(2.0, gt=0, description="wait for an engine's answer")
    delivery_timeout_seconds: float = Field(
        30.0, gt=0, description="a request the broker has not taken by then is dropped"
    )
    read_wait_seconds: float = Field(
        2.0, ge=0, description="a read after a reply waits this long at most for the read model"
    )
    topic_prefix: str = Field("", description="prefix of every topic name (tests)")
    user_rate_per_second: int = Field(50, ge=1, description="requests per user per second")
    ip_rate_per_minute: int = Field(3000, ge=1, description="requests per client IP per minute")
    max_body_bytes: int = Field(
        65536, ge=1024, description="larger request bodies (and WebSocket messages) get 413"
    )
    status_sources: str = Field(
        "matcher=http://127.0.0.1:9101/metrics,wallet=http://127.0.0.1:9102/metrics,"
        "positions=http://127.0.0.1:9103/metrics,projector=http://127.0.0.1:9104/metrics",
        description="NAME=URL,...: the engines' /metrics pages GET /status reads",
    )

    @property
    def status_urls(self) -> dict[str, str]:
        """``status_sources`` as engine name -> URL of its /metrics page."""
        return parse_sources(self.status_sources)

    @field_validator("status_sources")
    @classmethod
    def _sources_parse(cls, value: str) -> str:
        parse_sources(value)
        return value

    @model_validator(mode="after")
    def _a_202_outlives_its_reply(self) -> GatewaySettings:
        # A request still undelivered at the reply timeout is answered 202 (in flight): its
        # delivery must be able to outlast that, or a 503 could follow for one in the log.
        if self.delivery_timeout_seconds <= self.reply_timeout_seconds:
            raise ValueError("DELIVERY_TIMEOUT_SECONDS must exceed REPLY_TIMEOUT_SECONDS")
        return self


def parse_sources(text: str) -> dict[str, str]:
    """Parse ``NAME=URL,...`` (empty: none); raise ValueError on an entry without a name or an
    http(s) URL, or a name given twice."""
    sources: dict[str, str] = {}
    for entry in filter(None, (part.strip() for part in text.split(","))):
        name, _, url = (s.strip() for s in entry.partition("="))
        if not name or not url.startswith(("http://", "https://")):
            raise ValueError(f"status source {entry!r} is not NAME=http://...")
        if name in sources:
            raise ValueError(f"status source {name!r} given twice")
        sources[name] = url
    return sources
