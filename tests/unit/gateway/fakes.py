"""In-memory adapters for the gateway (``services.gateway.adapters``): each implements exactly
the calls the gateway makes, and records what it was asked. Redis is fakeredis, which runs the
rate limiter's Lua script as Redis would."""

from __future__ import annotations

import asyncio
import itertools
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fakeredis import FakeAsyncRedis, FakeServer

from libs.messages import Message
from libs.read_model import keys
from services.gateway.adapters import Adapters
from services.gateway.app import create_app
from services.gateway.replies import Kind, Outcome
from services.gateway.settings import GatewaySettings
from services.gateway.users import ApiKey, EmailTaken, User, normalise_email
from services.projector.orders import Order

with warnings.catch_warnings():  # starlette's notice about httpx, at import
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

SECRET = "route-tests-" + "s" * 40


class FakeRequests:
    """``orders.requests`` that takes every request at once, or refuses them all."""

    def __init__(self) -> None:
        self.produced: list[tuple[int, Message]] = []
        self.refuse = False  # the producer's queue is full: nothing reaches the log
        self.closed = False

    def produce(self, user_id: int, message: Message) -> asyncio.Future[None]:
        if self.refuse:
            raise ConnectionError("orders.requests: queue full")
        delivered: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        delivered.set_result(None)
        self.produced.append((user_id, message))
        return delivered

    def close(self) -> None:
        self.closed = True


Answer = Callable[[Kind, Message], Outcome | None]


def unanswered(_kind: Kind, _message: Message) -> Outcome | None:
    """Engines that do not answer within the reply timeout: the gateway replies 202 Pending."""
    return None


class FakeReplies:
    """Engines that answer each request in the log with ``answer(kind, request)`` at once (by
    default not within the reply timeout, so without waiting for it)."""

    def __init__(self, requests: FakeRequests, answer: Answer = unanswered) -> None:
        self.requests = requests
        self.answer = answer
        self.asked: list[tuple[str, Kind]] = []
        self.closed = False

    async def ask(
        self,
        request_id: str,
        user_id: int,
        kind: Kind,
        produce: Callable[[], asyncio.Future[None]],
        timeout: float,
    ) -> Outcome | None:
        self.asked.append((request_id, kind))
        await produce()  # the log's refusal is the caller's ConnectionError, as for the real one
        _, request = self.requests.produced[-1]
        return self.answer(kind, request)

    def close(self) -> None:
        self.closed = True


class FakeUsers:
    """Users and API keys in dicts; e-mails unique case-insensitively, as the unique index."""

    def __init__(self) -> None:
        self.users: dict[int, User] = {}
        self.keys: dict[int, tuple[ApiKey, str]] = {}
        self._ids = itertools.count(1)
        self._key_ids = itertools.count(1)
        self.closed = False

    def create_user(self, email: str, password_hash: str) -> User:
        email = normalise_email(email)
        if any(u.email == email for u in self.users.values()):
            raise EmailTaken(f"email {email!r} is already registered")
        user = User(id=next(self._ids), email=email, password_hash=password_hash)
        user.created_at = datetime.now(UTC)
        self.users[user.id] = user
        return user

    def find_by_email(self, email: str) -> User | None:
        email = normalise_email(email)
        return next((u for u in self.users.values() if u.email == email), None)

    def create_api_key(self, user_id: int, label: str) -> tuple[ApiKey, str]:
        secret = f"secret-{len(self.keys)}-" + "k" * 40
        key = ApiKey(
            id=next(self._key_ids),
            user_id=user_id,
            key=f"key-{len(self.keys)}",
            secret=secret,
            label=label,
            created_at=datetime.now(UTC),
            revoked_at=None,
        )
        self.keys[key.id] = (key, secret)
        return key, secret

    def list_api_keys(self, user_id: int) -> list[ApiKey]:
        return [k for k, _ in self.keys.values() if k.user_id == user_id]

    def revoke_api_key(self, user_id: int, key_id: int) -> bool:
        found = self.keys.get(key_id)
        if found is None or found[0].user_id != user_id:
            return False
        if found[0].revoked_at is None:
            found[0].revoked_at = datetime.now(UTC)
        return True

    def find_active_api_key(self, key: str) -> ApiKey | None:
        for api_key, _secret in self.keys.values():
            if api_key.key == key and api_key.revoked_at is None:
                return api_key
        return None

    def close(self) -> None:
        self.closed = True


def route_settings(**overrides: Any) -> GatewaySettings:
    """Settings that reach nothing (the adapters are fakes); limits far above any test's
    traffic unless a test lowers them."""
    values: dict[str, Any] = {
        "kafka_bootstrap_servers": "127.0.0.1:1",
        "database_url": "postgresql://nobody@127.0.0.1:1/none",
        "redis_url": "redis://127.0.0.1:1/0",
        "jwt_secret": SECRET,
        "ip_rate_per_minute": 1_000_000,
        "user_rate_per_second": 1_000_000,
        "read_wait_seconds": 0.0,
    }
    return GatewaySettings(**(values | overrides))


@dataclass
class Stack:
    """The real gateway app on in-memory adapters, started (its lifespan ran)."""

    client: TestClient
    redis: FakeAsyncRedis
    users: FakeUsers
    requests: FakeRequests
    replies: FakeReplies
    settings: GatewaySettings
    tokens: dict[int, str] = field(default_factory=dict)

    @property
    def produced(self) -> list[tuple[int, Message]]:
        return self.requests.produced

    def token(self, user_id: int) -> str:
        """A session token for ``user_id``, issued by the gateway's own issuer."""
        if user_id not in self.tokens:
            issuer = self.client.app.state.gateway.tokens  # type: ignore[attr-defined]
            self.tokens[user_id] = issuer.issue(user_id)
        return self.tokens[user_id]

    def bearer(self, user_id: int = 1) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(user_id)}"}

    def run(self, coroutine: Any) -> Any:
        """Run a coroutine on the app's loop (fakeredis's connections belong to it)."""
        return self.client.portal.call(lambda: coroutine)  # type: ignore[union-attr]

    def seed_order(self, order: Order, open_: bool = True) -> None:
        """Write an order as the projector does: its hash, its client id, its user's lists."""

        async def write() -> None:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hset(keys.order_key(order.order_id), mapping=order.fields())
                pipe.zadd(keys.all_orders_key(order.user_id), {str(order.order_id): order.ts})
                if open_:
                    pipe.sadd(keys.open_orders_key(order.user_id), str(order.order_id))
                if order.client_order_id:
                    key = keys.client_order_key(order.user_id, order.client_order_id)
                    pipe.set(key, str(order.order_id))
                await pipe.execute()

        self.run(write())

    def seed_hash(self, key: str, fields: dict[str, Any]) -> None:
        """Write a hash of the read model as the projector does (values as decimal strings)."""
        self.run(self.redis.hset(key, mapping={k: str(v) for k, v in fields.items()}))


@contextmanager
def started(answer: Answer = unanswered, **overrides: Any) -> Iterator[Stack]:
    """Start the real gateway app on fakes (``overrides``: settings); ``answer`` is how the
    engines answer."""
    settings = route_settings(**overrides)
    redis = FakeAsyncRedis(server=FakeServer(), decode_responses=True)
    users, requests = FakeUsers(), FakeRequests()
    replies = FakeReplies(requests, answer)
    app = create_app(settings, Adapters(redis, users, requests, replies))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Stack(client, redis, users, requests, replies, settings)
