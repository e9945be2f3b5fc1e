"""The order routes' lean handler answers every request exactly as FastAPI's stock handler
would: the same app, built once with each, asked the same requests (good, refused, malformed,
unauthenticated, over a limit), gives the same statuses, bodies and limiter round trips."""

from __future__ import annotations

import itertools
import json
import warnings
from types import SimpleNamespace

import pytest

from libs.symbols import default_symbols
from services.gateway import lean_route
from services.gateway.api import trading
from services.gateway.app import create_app
from services.gateway.auth import Authenticator
from services.gateway.retries import RecentPlacements
from services.gateway.security import TokenIssuer
from services.gateway.settings import GatewaySettings
from services.gateway.state import Gateway
from tests.unit.gateway.test_auth_limits import SECRET, RecordingLimiter, Users

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

ORDER = {"symbol": "BTC-PERP", "side": "Buy", "order_type": "Limit", "price": "50000"}
ORDER |= {"quantity": "0.01"}
JSON = {"Content-Type": "application/json"}


class Unanswered:
    """Engines that never answer in time: every order is Pending (202)."""

    def __init__(self) -> None:
        self.asked: list = []

    async def ask(self, _request_id, _user_id, _kind, produce, _timeout):
        self.asked.append(produce)
        return None


def app_with(lean: bool, monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    """The real app; ``lean=False`` builds its order routes with the stock handler."""
    if not lean:
        monkeypatch.setattr(lean_route, "_lean_shape", lambda _dependant: None)
    settings = GatewaySettings(
        kafka_bootstrap_servers="127.0.0.1:1",
        database_url="postgresql://nobody@127.0.0.1:1/none",
        redis_url="redis://127.0.0.1:1/0",
        jwt_secret=SECRET,
        ip_rate_per_minute=11,
        user_rate_per_second=7,
    )
    app = create_app(settings)  # the lifespan (Postgres, Redis, Kafka) is never started
    limiter, users, tokens = RecordingLimiter(), Users(), TokenIssuer(SECRET, 600)
    app.state.settings, app.state.limiter = settings, limiter
    app.state.auth = Authenticator(tokens, users, limiter, 7)
    gw = SimpleNamespace(
        settings=settings,
        symbols=default_symbols(),
        ids=SimpleNamespace(next=itertools.count(1).__next__),  # the same ids in both apps
        placements=RecentPlacements(),
        replies=Unanswered(),
    )
    gw.symbol = lambda name: Gateway.symbol(gw, name)
    gw.request_id, gw.now_ns = (lambda: "r1"), (lambda: 1)
    gw.ask = lambda *args: Gateway.ask(gw, *args)
    app.state.gateway = gw
    return SimpleNamespace(client=TestClient(app), limiter=limiter, tokens=tokens, gw=gw)


def bearer(stack: SimpleNamespace, user_id: int = 3) -> dict[str, str]:
    return {"Authorization": f"Bearer {stack.tokens.issue(user_id)}"}


REQUESTS = [
    ("/place_order", ORDER, "token", None),
    ("/place_order", ORDER | {"user_id": 4}, "token", None),  # another user's id: 403
    ("/place_order", ORDER | {"symbol": "NOPE"}, "token", None),
    ("/place_order", ORDER | {"price": "-1"}, "token", None),  # not a decimal: 400
    ("/place_order", {k: v for k, v in ORDER.items() if k != "side"}, "token", None),
    ("/place_order", ORDER | {"side": "Up"}, "token", None),
    ("/place_order", ORDER | {"unknown": 1}, "token", None),
    ("/place_order", [ORDER], "token", None),  # not an object
    ("/place_order", "{not json", "token", None),
    ("/place_order", "", "token", None),
    ("/place_order", ORDER, "token", "text/plain"),
    ("/place_order", ORDER, None, None),
    ("/place_order", ORDER, "bad", None),
    ("/place_order", ORDER, "token", "full ip"),
    ("/place_order", ORDER, "token", "full user"),
    ("/place_order", "{not json", None, "full ip"),
    ("/cancel", {"symbol": "BTC-PERP", "order_id": 0}, "token", None),
    ("/cancel", {"symbol": "BTC-PERP", "order_id": 5}, "token", None),
    ("/cancel_all", {"symbol": "NOPE"}, "token", None),
    ("/amend", {"order_id": 5}, "token", None),
]


def ask(stack: SimpleNamespace, path: str, body, auth: str | None, extra: str | None):
    stack.limiter.trips.clear()
    stack.limiter.full = {"full ip": {"ip:testclient"}, "full user": {"user:3"}}.get(extra, set())
    headers = dict(JSON)
    if extra == "text/plain":
        headers["Content-Type"] = "text/plain"
    if auth == "token":
        headers |= bearer(stack)
    elif auth == "bad":
        headers["Authorization"] = "Bearer nope"
    content = body if isinstance(body, str) else json.dumps(body)
    reply = stack.client.post(path, content=content, headers=headers)
    return reply.status_code, reply.json(), list(stack.limiter.trips), len(stack.gw.replies.asked)


def test_the_order_routes_are_lean_and_the_reads_are_not(monkeypatch) -> None:
    stack = app_with(True, monkeypatch)
    for path in ("/place_order", "/cancel", "/cancel_all", "/amend"):
        stack.client.post(path, content="{}", headers=JSON | bearer(stack))
    stack.client.get("/orders?limit=0", headers=bearer(stack))  # refused before any read
    lean = {route.path: route.lean for route in trading.router.routes}
    assert lean["/place_order"] and lean["/cancel"] and lean["/cancel_all"] and lean["/amend"]
    assert not lean["/orders"] and not lean["/orders/{order_id}"]


def test_the_lean_handler_answers_as_the_stock_one(monkeypatch) -> None:
    lean = app_with(True, monkeypatch)
    lean_answers = [ask(lean, *request) for request in REQUESTS]
    stock = app_with(False, monkeypatch)
    stock_answers = [ask(stock, *request) for request in REQUESTS]
    assert not trading.router.routes[0].lean  # the stock app really ran the stock handler
    for request, mine, theirs in zip(REQUESTS, lean_answers, stock_answers, strict=True):
        assert mine == theirs, request
    assert lean_answers[0][0] == 202  # the good order was sent (and is Pending)
    assert {answer[0] for answer in lean_answers} >= {202, 400, 401, 403, 429}
