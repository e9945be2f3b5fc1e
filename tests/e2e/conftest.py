"""One exchange for the whole e2e session (tests use distinct users, so they do not meet)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.stack import Stack, running


@pytest.fixture(scope="session")
def stack(kafka_bootstrap: str, database_url: str, redis_url: str) -> Iterator[Stack]:
    with running(Stack(kafka_bootstrap, database_url, redis_url)) as exchange:
        yield exchange


@pytest.fixture
def api(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.url, timeout=10) as client:
        yield client


class Trader:
    """A signed-up, signed-in user with money, and shortcuts for the calls tests make."""

    def __init__(self, api: httpx.Client, deposit: str = "100000") -> None:
        self.api = api
        self.email = f"{uuid.uuid4().hex[:10]}@example.com"
        self.password = "correct horse battery"
        signup = api.post("/signup", json={"email": self.email, "password": self.password})
        assert signup.status_code == 200, signup.text
        self.user_id = signup.json()["user_id"]
        signin = api.post("/signin", json={"email": self.email, "password": self.password})
        assert signin.status_code == 200, signin.text
        self.token = signin.json()["token"]
        self.headers = {"Authorization": f"Bearer {self.token}"}
        if deposit:
            done = self.post("/deposit", {"asset": "USDT", "amount": deposit})
            assert done.status_code == 200 and done.json()["status"] == "Done", done.text

    def post(self, path: str, body: dict) -> httpx.Response:
        return self.api.post(path, json=body, headers=self.headers)

    def get(self, path: str, **params) -> httpx.Response:
        return self.api.get(path, params=params, headers=self.headers)

    def place(self, side: str, price: str | None, quantity: str, **extra) -> dict:
        body = {
            "user_id": self.user_id,
            "symbol": extra.pop("symbol", "BTC-PERP"),
            "side": side,
            "order_type": extra.pop("order_type", "Limit" if price else "Market"),
            "quantity": quantity,
            "leverage": "10",
            **({"price": price} if price else {}),
            **extra,
        }
        reply = self.post("/place_order", body)
        assert reply.status_code in (200, 400), reply.text
        return reply.json()


@pytest.fixture
def trader(api: httpx.Client):
    return lambda **kw: Trader(api, **kw)
