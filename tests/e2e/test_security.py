"""Authentication and isolation: nobody sees or touches another user's state."""

from __future__ import annotations

import time

import httpx

from services.gateway.security import TokenIssuer, sign
from tests.e2e.stack import gateway
from tests.processes import free_port


def test_requests_without_a_valid_token_are_401(stack, api):
    secret = stack.services["gateway"].env["JWT_SECRET"]
    expired = TokenIssuer(secret, 60, clock=lambda: time.time() - 7200).issue(1)
    forged = TokenIssuer("x" * 40, 3600).issue(1)
    for headers in (
        {},
        {"Authorization": "Bearer not-a-jwt"},
        {"Authorization": f"Bearer {expired}"},
        {"Authorization": f"Bearer {forged}"},
        {"Authorization": "Basic abc"},
    ):
        reply = api.get("/account", headers=headers)
        assert reply.status_code == 401, (headers, reply.text)
        assert set(reply.json()) == {"code", "msg"}


def test_another_users_order_is_invisible_and_untouchable(stack, trader):
    owner, intruder = trader(), trader()
    order = owner.place("Buy", "30000.0", "0.004", symbol="BTC-PERP")
    assert order["status"] == "New"
    oid = order["order_id"]
    assert intruder.get(f"/orders/{oid}").status_code == 404
    assert intruder.post("/cancel", {"order_id": oid}).status_code == 404
    forbidden = intruder.post("/cancel", {"order_id": oid, "user_id": owner.user_id})
    assert forbidden.status_code == 403
    named = intruder.post("/cancel", {"order_id": oid, "symbol": "BTC-PERP"})
    assert named.status_code == 400 and named.json()["code"] == -2011  # the book refuses it
    assert intruder.post("/amend", {"order_id": oid, "price": "30001.0"}).status_code == 404
    as_owner = intruder.post(
        "/place_order",
        {
            "user_id": owner.user_id,
            "symbol": "BTC-PERP",
            "side": "Buy",
            "order_type": "Limit",
            "price": "30000.0",
            "quantity": "0.004",
        },
    )
    assert as_owner.status_code == 403
    still = owner.get(f"/orders/{oid}").json()
    assert (still["status"], still["remaining"]) == ("New", "0.004")
    assert intruder.get("/orders").json() == []
    assert owner.post("/cancel", {"order_id": oid}).json()["status"] == "Cancelled"


def test_signed_api_key_requests(stack, trader):
    user = trader()
    created = user.post("/api_keys", {"label": "bot"}).json()
    key, secret = created["api_key"], created["secret"]

    def signed(path: str, timestamp: int, secret_used: str = secret):
        query = f"timestamp={timestamp}&recvWindow=5000"
        signature = sign(secret_used, query)
        return user.api.get(f"{path}?{query}&signature={signature}", headers={"X-API-KEY": key})

    now = int(time.time() * 1000)
    assert signed("/account", now).status_code == 200
    assert signed("/account", now, secret_used="wrong" * 8).status_code == 401
    assert signed("/account", now - 60_000).status_code == 401  # stale
    listed = user.get("/api_keys").json()
    assert [k["api_key"] for k in listed] == [key] and "secret" not in listed[0]
    assert user.api.delete(f"/api_keys/{created['id']}", headers=user.headers).status_code == 200
    assert signed("/account", int(time.time() * 1000)).status_code == 401  # revoked


def test_signup_validates_and_refuses_duplicates(api):
    assert api.post("/signup", json={"email": "nope", "password": "long enough"}).status_code == 400
    assert (
        api.post("/signup", json={"email": "a@b.example", "password": "short"}).status_code == 400
    )
    body = {"email": f"Dup{time.time_ns()}@Example.com", "password": "long enough"}
    assert api.post("/signup", json=body).status_code == 200
    again = api.post("/signup", json={**body, "email": body["email"].lower()})
    assert again.status_code == 409 and again.json()["code"] == -4090
    wrong = api.post("/signin", json={**body, "password": "not the password"})
    assert wrong.status_code == 401


def test_a_second_gateway_serves_side_by_side_and_rate_limits(stack, trader):
    """Two gateways share users and the log; the per-user limit is shared through Redis."""
    port = free_port()
    env = {**stack.services["gateway"].env, "GATEWAY_INSTANCE": "1"}
    env["USER_RATE_PER_SECOND"] = "5"
    second = gateway(port, env, name=f"{stack.prefix}gateway-2")
    second.start()
    try:
        user = trader()
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as other:
            placed = other.post(
                "/place_order",
                headers=user.headers,
                json={
                    "symbol": "ETH-PERP",
                    "side": "Buy",
                    "order_type": "Limit",
                    "price": "1000.00",
                    "quantity": "0.05",
                },
            )
            assert placed.status_code == 200 and placed.json()["status"] == "New", placed.text
            order_id = placed.json()["order_id"]
            deadline = time.monotonic() + 10  # the read model trails the reply a little
            while user.get(f"/orders/{order_id}").status_code != 200:  # via the first gateway
                assert time.monotonic() < deadline
                time.sleep(0.1)
            replies = [other.get("/account", headers=user.headers) for _ in range(12)]
            limited = [r for r in replies if r.status_code == 429]
            assert limited and int(limited[0].headers["Retry-After"]) >= 1
            assert limited[0].json()["code"] == -1003
        user.post("/cancel_all", {"symbol": "ETH-PERP"})
    finally:
        second.stop()


def test_an_answer_later_than_the_timeout_is_pending_then_readable(stack, trader):
    """A gateway that gives up at once answers Pending; the order's fate is still readable."""
    port = free_port()
    env = {**stack.services["gateway"].env, "GATEWAY_INSTANCE": "2"}
    env["REPLY_TIMEOUT_SECONDS"] = "0.001"
    impatient = gateway(port, env, name=f"{stack.prefix}gateway-3")
    impatient.start()
    try:
        user = trader()
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as api:
            body = {
                "symbol": "SOL-PERP",
                "side": "Buy",
                "order_type": "Limit",
                "price": "100.00",
                "quantity": "0.10",
                "client_order_id": "late-1",
            }
            reply = api.post("/place_order", json=body, headers=user.headers)
        assert reply.status_code == 202 and reply.json()["status"] == "Pending", reply.text
        order_id = reply.json()["order_id"]
        deadline = time.monotonic() + 10
        while (found := user.get(f"/orders/{order_id}")).status_code != 200 or found.json()[
            "status"
        ] == "Pending":
            assert time.monotonic() < deadline, found.text
            time.sleep(0.1)
        assert found.json()["status"] == "New"
        by_client_id = user.get("/orders/client/late-1").json()
        assert by_client_id["order_id"] == order_id
        user.post("/cancel_all", {"symbol": "SOL-PERP"})
    finally:
        impatient.stop()
