"""The gateway's adapters: what it talks to outside the process, as the handlers use it.

``create_app`` (app.py) takes an ``Adapters``; without one it builds the real ones with
``build_adapters`` as it starts: Redis (the rate limits, the read model, the WebSocket hub),
Postgres (users and API keys), and the two Kafka edges (requests out, answers in). Tests hand it
in-memory ones (tests/unit/gateway/fakes.py) and drive the real app without a stack. Each
protocol lists exactly the calls the gateway makes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from redis.asyncio import BlockingConnectionPool, Redis

from libs.messages import Message
from libs.topics import Topics
from services.gateway.db import migrate
from services.gateway.kafka_io import ReplyListener, RequestProducer
from services.gateway.replies import Kind, Outcome
from services.gateway.settings import GatewaySettings
from services.gateway.users import ApiKey, User, UserStore


class Requests(Protocol):
    """Requests out to ``orders.requests`` (``kafka_io.RequestProducer``)."""

    def produce(self, user_id: int, message: Message) -> asyncio.Future[None]:
        """Queue the request; return a future of the log's acknowledgement, which fails with
        ``ConnectionError`` if the log does not take it. Raise ``ConnectionError`` at once when
        it cannot even be queued."""
        ...

    def close(self) -> None: ...


class Replies(Protocol):
    """The engines' answers (``kafka_io.ReplyListener``)."""

    async def ask(
        self,
        request_id: str,
        user_id: int,
        kind: Kind,
        produce: Callable[[], asyncio.Future[None]],
        timeout: float,
    ) -> Outcome | None:
        """Register ``user_id``'s request, ``produce`` it and wait for its answer, all within
        ``timeout``: None when the time is up; ``ConnectionError`` when the log did not take
        it."""
        ...

    def close(self) -> None: ...


class Users(Protocol):
    """Users and API keys (``users.UserStore``); synchronous, run on the threadpool."""

    def create_user(self, email: str, password_hash: str) -> User:
        """Insert a user; raise ``users.EmailTaken`` when the e-mail is in use."""
        ...

    def find_by_email(self, email: str) -> User | None: ...

    def create_api_key(self, user_id: int, label: str) -> tuple[ApiKey, str]: ...

    def list_api_keys(self, user_id: int) -> list[ApiKey]: ...

    def revoke_api_key(self, user_id: int, key_id: int) -> bool: ...

    def find_active_api_key(self, key: str) -> ApiKey | None: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Adapters:
    """Everything the gateway's lifespan connects to. ``redis`` decodes responses to ``str``
    (``reads.StrHash``)."""

    redis: Redis
    users: Users
    requests: Requests
    replies: Replies

    async def aclose(self) -> None:
        """Close them, the answers' reader first (as the gateway stops)."""
        self.replies.close()
        self.requests.close()
        self.users.close()
        await self.redis.aclose()


def build_adapters(settings: GatewaySettings) -> Adapters:
    """Migrate the users database to its newest schema, then build the real adapters."""
    migrate(settings.database_url)
    # a request waits (up to 2 s) for a free connection instead of failing when a burst
    # has them all in use
    pool = BlockingConnectionPool.from_url(
        settings.redis_url, max_connections=128, timeout=2, decode_responses=True
    )
    topics = Topics(settings.topic_prefix)
    return Adapters(
        redis=Redis(connection_pool=pool),
        users=UserStore.from_url(settings.database_url),
        requests=RequestProducer(
            settings.kafka_bootstrap_servers, topics.requests, settings.delivery_timeout_seconds
        ),
        replies=ReplyListener(
            settings.kafka_bootstrap_servers, topics.matcher_events, topics.wallet_events
        ),
    )
