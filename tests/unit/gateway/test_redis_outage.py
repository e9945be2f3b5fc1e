"""A Redis that cannot serve (down, or every pooled connection busy) is an outage of ours, not
a bug: the gateway answers 503 {"code": -1001} with Retry-After, never a 500."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import MaxConnectionsError

from services.gateway import errors


def client_raising(error: Exception) -> TestClient:
    app = FastAPI()
    errors.install(app)

    @app.get("/limited")
    async def limited() -> None:
        raise error

    return TestClient(app, raise_server_exceptions=False)


def test_a_full_redis_pool_is_a_503_to_retry() -> None:
    reply = client_raising(MaxConnectionsError("Too many connections")).get("/limited")
    assert reply.status_code == 503
    assert reply.json()["code"] == -1001
    assert reply.headers["Retry-After"] == "1"


def test_an_unreachable_redis_is_a_503_to_retry() -> None:
    reply = client_raising(RedisConnectionError("refused")).get("/limited")
    assert (reply.status_code, reply.json()["code"]) == (503, -1001)


def test_any_other_error_stays_a_500_bug() -> None:
    reply = client_raising(ValueError("bug")).get("/limited")
    assert (reply.status_code, reply.json()["code"]) == (500, -1000)
