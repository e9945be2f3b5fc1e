"""The per-IP and per-user limits of the real gateway app (no stack behind it: a recording
limiter, fake users): a session-token request to a route that names its caller counts both in
one round trip, and every answer is the one counting the IP first would give."""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import pytest

from services.gateway.app import create_app
from services.gateway.auth import Authenticator
from services.gateway.security import TokenIssuer, sign
from services.gateway.settings import GatewaySettings

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

SECRET = "s" * 40
USER_RATE = 7
IP_RATE = 11
IP = ("ip:testclient", IP_RATE, 60)


def user(user_id: int) -> tuple[str, int, int]:
    return (f"user:{user_id}", USER_RATE, 1)


class RecordingLimiter:
    """One entry per round trip; refuses the buckets in ``full``."""

    def __init__(self) -> None:
        self.trips: list[tuple] = []
        self.full: set[str] = set()

    async def hit(self, bucket: str, limit: int, window: int) -> float | None:
        return await self.hit_all((bucket, limit, window))

    async def hit_all(self, *limits: tuple[str, int, int]) -> float | None:
        self.trips.append(limits)
        for bucket, _, window in limits:
            if bucket in self.full:
                return float(window)
        return None


class Users:
    def list_api_keys(self, user_id: int) -> list:
        return []

    def find_active_api_key(self, key: str):
        self.looked_up = key
        return SimpleNamespace(secret="k" * 32, user_id=5) if key == "bot" else None


@pytest.fixture
def gateway():
    settings = GatewaySettings(
        kafka_bootstrap_servers="127.0.0.1:1",
        database_url="postgresql://nobody@127.0.0.1:1/none",
        redis_url="redis://127.0.0.1:1/0",
        jwt_secret=SECRET,
        ip_rate_per_minute=IP_RATE,
        user_rate_per_second=USER_RATE,
    )
    app = create_app(settings)  # the lifespan (Postgres, Redis, Kafka) is never started
    limiter, users, tokens = RecordingLimiter(), Users(), TokenIssuer(SECRET, 600)
    app.state.settings, app.state.limiter = settings, limiter
    app.state.auth = Authenticator(tokens, users, limiter, USER_RATE)
    app.state.gateway = SimpleNamespace(users=users, settings=settings)
    return SimpleNamespace(client=TestClient(app), limiter=limiter, tokens=tokens, users=users)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_token_request_counts_the_ip_and_the_user_in_one_round_trip(gateway) -> None:
    reply = gateway.client.get("/api_keys", headers=bearer(gateway.tokens.issue(3)))
    assert reply.status_code == 200
    assert gateway.limiter.trips == [(IP, user(3))]


def test_a_full_ip_budget_is_a_429_and_the_user_is_not_counted(gateway) -> None:
    gateway.limiter.full.add("ip:testclient")
    reply = gateway.client.get("/api_keys", headers=bearer(gateway.tokens.issue(3)))
    assert reply.status_code == 429 and reply.headers["Retry-After"] == "60"
    assert reply.json()["code"] == -1003
    # the script stops at the IP: the user's window is not counted (see test_limits)
    assert gateway.limiter.trips == [(IP, user(3))]


def test_a_full_user_budget_is_a_429(gateway) -> None:
    gateway.limiter.full.add("user:3")
    reply = gateway.client.get("/api_keys", headers=bearer(gateway.tokens.issue(3)))
    assert reply.status_code == 429 and reply.headers["Retry-After"] == "1"


def test_a_bad_token_counts_the_ip_alone_and_is_a_401(gateway) -> None:
    reply = gateway.client.get("/api_keys", headers=bearer("not-a-token"))
    assert reply.status_code == 401
    assert gateway.limiter.trips == [(IP,)]


def test_a_bad_token_from_a_full_ip_is_a_429_first(gateway) -> None:
    gateway.limiter.full.add("ip:testclient")
    reply = gateway.client.get("/api_keys", headers=bearer("not-a-token"))
    assert reply.status_code == 429
    assert gateway.limiter.trips == [(IP,)]


def test_no_credentials_count_the_ip_and_are_a_401(gateway) -> None:
    reply = gateway.client.get("/api_keys")
    assert reply.status_code == 401
    assert gateway.limiter.trips == [(IP,)]


def test_a_signed_request_counts_the_ip_before_its_key_is_looked_up(gateway) -> None:
    gateway.limiter.full.add("ip:testclient")
    reply = gateway.client.get("/api_keys?timestamp=1&signature=00", headers={"X-API-KEY": "bot"})
    assert reply.status_code == 429
    assert not hasattr(gateway.users, "looked_up")  # refused before Postgres
    assert gateway.limiter.trips == [(IP,)]


def test_a_signed_request_counts_the_ip_then_the_user(gateway) -> None:
    import time

    query = f"timestamp={time.time_ns() // 1_000_000}"
    query += f"&signature={sign('k' * 32, query)}"
    reply = gateway.client.get(f"/api_keys?{query}", headers={"X-API-KEY": "bot"})
    assert reply.status_code == 200
    assert gateway.limiter.trips == [(IP,), (user(5),)]


def test_a_route_without_a_caller_counts_the_ip_even_with_a_token(gateway) -> None:
    reply = gateway.client.get("/healthz", headers=bearer(gateway.tokens.issue(3)))
    assert reply.status_code == 200
    assert gateway.limiter.trips == [(IP,)]
