"""Every route of docs/API.md, driven with bad input through the real gateway app built on
in-memory adapters (tests/unit/gateway/fakes.py): each refusal is the exact 4xx status and
``{"code", "msg"}`` body, never a 5xx, and puts nothing in the log; a valid request reaches the
log as the right command of the caller."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from libs import codes
from libs.messages import (
    AmendOrder,
    CancelAll,
    CancelOrder,
    Deposit,
    Message,
    OrderRejected,
    OrderStatus,
    OrderType,
    PlaceOrder,
    SetLeverage,
    Side,
    TimeInForce,
    Withdraw,
)
from libs.read_model import keys
from libs.read_model.positions import PositionFacts
from services.gateway.replies import Kind, Outcome
from services.gateway.security import TokenIssuer, sign
from services.projector.orders import Order
from tests.unit.gateway.fakes import SECRET, Stack, started

ORDER: dict[str, Any] = {
    "symbol": "BTC-PERP",
    "side": "Buy",
    "order_type": "Limit",
    "price": "50000.0",
    "quantity": "0.010",
}
MINE, THEIRS = 1, 2
MY_ORDER, THEIR_ORDER = 78, 77
DECIMAL_MSG = "String should match pattern '^[0-9]{1,20}(\\.[0-9]{1,18})?$'"
COID_MSG = "String should match pattern '^[A-Za-z0-9._:\\-]{1,36}$'"


@pytest.fixture
def stack() -> Iterator[Stack]:
    with started() as running:
        running.seed_order(resting(MY_ORDER, MINE, "mine"))
        running.seed_order(resting(THEIR_ORDER, THEIRS, "theirs"))
        yield running


def resting(order_id: int, user_id: int, client_order_id: str) -> Order:
    """An open BTC-PERP limit buy of 0.010 at 50000.0, as the projector writes it."""
    return Order(
        order_id=order_id,
        user_id=user_id,
        symbol="BTC-PERP",
        request_id=f"r{order_id}",
        requested=True,
        side="buy",
        order_type="limit",
        tif="GTC",
        price=500_000,
        qty=10,
        status=OrderStatus.NEW,
        client_order_id=client_order_id,
        ts=1_700_000_000_000_000_000,
    )


def post(stack: Stack, path: str, body: Any, user: int | None = MINE, **headers: str) -> Any:
    auth = stack.bearer(user) if user is not None else {}
    return stack.client.post(path, json=body, headers=auth | headers)


def get(stack: Stack, path: str, user: int | None = MINE) -> Any:
    return stack.client.get(path, headers=stack.bearer(user) if user is not None else {})


def refused(reply: Any, status: int, code: int, msg: str) -> None:
    assert (reply.status_code, reply.json()) == (status, {"code": code, "msg": msg})


def only(stack: Stack) -> Message:
    """The one request in the log (the caller's)."""
    assert len(stack.produced) == 1, stack.produced
    user_id, message = stack.produced[0]
    assert user_id == MINE
    return message


def test_the_app_runs_on_the_adapters_it_is_given_and_leaves_them_open() -> None:
    with started() as stack:
        gateway = stack.client.app.state.gateway  # type: ignore[attr-defined]
        assert (gateway.requests, gateway.replies) == (stack.requests, stack.replies)
        assert gateway.users is stack.users
    assert not (stack.requests.closed or stack.replies.closed or stack.users.closed)


# --- POST /place_order --------------------------------------------------------------------


def test_a_valid_order_reaches_the_log_as_the_callers_place_order(stack: Stack) -> None:
    reply = post(stack, "/place_order", ORDER | {"client_order_id": "a-1", "leverage": "10"})
    command = only(stack)
    assert isinstance(command, PlaceOrder)
    assert (command.user_id, command.symbol, command.side) == (MINE, "BTC-PERP", Side.BUY)
    assert (command.order_type, command.tif) == (OrderType.LIMIT, TimeInForce.GTC)
    assert (command.price, command.qty, command.leverage) == (500_000, 10, 10)
    assert command.client_order_id == "a-1"
    assert reply.status_code == 202  # the fake engines do not answer in time
    assert reply.json() == {
        "order_id": command.order_id,
        "status": "Pending",
        "filled": "0.000",
        "remaining": "0.010",
        "symbol": "BTC-PERP",
        "client_order_id": "a-1",
    }


def test_an_order_the_engines_accept_is_answered_with_what_matching_did() -> None:
    def accept(_kind: Kind, request: Message) -> Outcome:
        assert isinstance(request, PlaceOrder)
        return Outcome(OrderStatus.NEW, request.order_id, request.symbol, request.qty)

    with started(accept) as stack:
        reply = post(stack, "/place_order", ORDER)
        command = only(stack)
        assert (reply.status_code, reply.json()["status"]) == (200, "New")
        assert reply.json()["order_id"] == command.order_id


def test_an_order_the_engines_reject_is_a_400_with_their_code() -> None:
    def reject(_kind: Kind, request: Message) -> Outcome:
        assert isinstance(request, PlaceOrder)
        event = OrderRejected(
            symbol=request.symbol,
            seq=1,
            cmd_offset=0,
            request_id=request.request_id,
            user_id=request.user_id,
            order_id=request.order_id,
            code=codes.MARGIN_INSUFFICIENT,
            msg="Margin is insufficient.",
        )
        return Outcome(
            OrderStatus.REJECTED,
            request.order_id,
            request.symbol,
            code=event.code,
            msg=event.msg,
            event=event,
        )

    with started(reject) as stack:
        reply = post(stack, "/place_order", ORDER)
        command = only(stack)
        assert reply.status_code == 400
        assert reply.json() == {
            "order_id": command.order_id,
            "status": "Rejected",
            "filled": "0.000",
            "remaining": "0.010",
            "symbol": "BTC-PERP",
            "code": -2019,
            "msg": "Margin is insufficient.",
        }


def without(field: str) -> dict[str, Any]:
    return {k: v for k, v in ORDER.items() if k != field}


INVALID_ORDERS: list[tuple[str, Any, int, int, str]] = [
    # (what, body, status, code, msg)
    ("no symbol", without("symbol"), 400, -1102, "symbol: Field required"),
    ("no side", without("side"), 400, -1102, "side: Field required"),
    ("no order type", without("order_type"), 400, -1102, "order_type: Field required"),
    ("no price on a limit", without("price"), 400, -1102, "price is required for Limit orders."),
    ("no quantity", without("quantity"), 400, -1102, "quantity is required."),
    ("null price", ORDER | {"price": None}, 400, -1102, "price is required for Limit orders."),
    ("unknown symbol", ORDER | {"symbol": "DOGE-PERP"}, 400, -1121, "Invalid symbol 'DOGE-PERP'."),
    (
        "a symbol too long",
        ORDER | {"symbol": "X" * 33},
        400,
        -1130,
        "symbol: String should have at most 32 characters",
    ),
    (
        "a number as symbol",
        ORDER | {"symbol": 5},
        400,
        -1130,
        "symbol: Input should be a valid string",
    ),
    ("unknown side", ORDER | {"side": "Up"}, 400, -1130, "side: Input should be 'Buy' or 'Sell'"),
    (
        "unknown order type",
        ORDER | {"order_type": "Iceberg"},
        400,
        -1130,
        "order_type: Input should be 'Limit', 'Market', 'StopMarket', 'StopLimit', "
        "'TakeProfitMarket', 'TakeProfitLimit' or 'TrailingStop'",
    ),
    (
        "unknown time in force",
        ORDER | {"time_in_force": "GTD"},
        400,
        -1130,
        "time_in_force: Input should be 'GTC', 'IOC', 'FOK' or 'GTX'",
    ),
    (
        "a JSON number as price",
        ORDER | {"price": 50000},
        400,
        -1130,
        "price: Input should be a valid string",
    ),
    (
        "a JSON number as quantity",
        ORDER | {"quantity": 0.01},
        400,
        -1130,
        "quantity: Input should be a valid string",
    ),
    ("a negative price", ORDER | {"price": "-1"}, 400, -1130, f"price: {DECIMAL_MSG}"),
    ("a negative quantity", ORDER | {"quantity": "-0.010"}, 400, -1130, f"quantity: {DECIMAL_MSG}"),
    ("an exponent", ORDER | {"price": "5e4"}, 400, -1130, f"price: {DECIMAL_MSG}"),
    (
        "a price off the tick",
        ORDER | {"price": "50000.05"},
        400,
        -1130,
        "price: BTC-PERP price '50000.05' is not a multiple of 0.1",
    ),
    (
        "a quantity off the lot",
        ORDER | {"quantity": "0.0105"},
        400,
        -1130,
        "quantity: BTC-PERP quantity '0.0105' is not a multiple of 0.001",
    ),
    ("a zero price", ORDER | {"price": "0"}, 400, -1130, "price: price must be positive: '0'"),
    (
        "a zero quantity",
        ORDER | {"quantity": "0"},
        400,
        -1130,
        "quantity: quantity must be positive: '0'",
    ),
    (
        "a price above the symbol's maximum",
        ORDER | {"price": "10000000.1"},
        400,
        -4002,
        "price above the maximum 10000000.0.",
    ),
    (
        "a quantity above the symbol's maximum",
        ORDER | {"quantity": "1000.001"},
        400,
        -4005,
        "quantity above the maximum 1000.000.",
    ),
    ("a huge price", ORDER | {"price": "9" * 20 + ".1"}, 400, -1130, "price is too large."),
    ("a huge quantity", ORDER | {"quantity": "9" * 20}, 400, -1130, "quantity is too large."),
    (
        "a stop without its stop price",
        ORDER | {"order_type": "StopLimit"},
        400,
        -1102,
        "stop_price is required for StopLimit.",
    ),
    (
        "a stop price off the tick",
        ORDER | {"order_type": "StopMarket", "stop_price": "1.01"},
        400,
        -1130,
        "stop_price: BTC-PERP price '1.01' is not a multiple of 0.1",
    ),
    (
        "a trailing stop without its rate",
        ORDER | {"order_type": "TrailingStop"},
        400,
        -1102,
        "callback_rate is required (percent).",
    ),
    (
        "a callback rate above 100 percent",
        ORDER | {"order_type": "TrailingStop", "callback_rate": "101"},
        400,
        -1130,
        "callback_rate is a percent from 0 to 100 with at most 6 decimals.",
    ),
    (
        "an activation price above the maximum",
        ORDER
        | {"order_type": "TrailingStop", "callback_rate": "1", "activation_price": "1" + "0" * 8},
        400,
        -4002,
        "activation_price above the maximum 10000000.0.",
    ),
    (
        "leverage 0",
        ORDER | {"leverage": 0},
        400,
        -1130,
        "leverage must be a whole number from 1 to 125.",
    ),
    (
        "leverage 126",
        ORDER | {"leverage": 126},
        400,
        -1130,
        "leverage must be a whole number from 1 to 125.",
    ),
    (
        "leverage as words",
        ORDER | {"leverage": "ten"},
        400,
        -1130,
        "leverage must be a whole number from 1 to 125.",
    ),
    (
        "a huge leverage",
        ORDER | {"leverage": 10**30},
        400,
        -1130,
        "leverage must be a whole number from 1 to 125.",
    ),
    (
        "leverage in superscript digits",
        ORDER | {"leverage": "²"},
        400,
        -1130,
        "leverage must be a whole number from 1 to 125.",
    ),
    (
        "leverage in Arabic-Indic digits",
        ORDER | {"leverage": "\u0661\u0660"},  # 10 in Arabic-Indic digits
        400,
        -1130,
        "leverage must be a whole number from 1 to 125.",
    ),
    (
        "a fractional leverage",
        ORDER | {"leverage": 1.5},
        400,
        -1130,
        "leverage.int: Input should be a valid integer, got a number with a fractional part",
    ),
    (
        "a client order id with a space",
        ORDER | {"client_order_id": "a b"},
        400,
        -1130,
        f"client_order_id: {COID_MSG}",
    ),
    (
        "a client order id too long",
        ORDER | {"client_order_id": "a" * 37},
        400,
        -1130,
        f"client_order_id: {COID_MSG}",
    ),
    (
        "another user's id",
        ORDER | {"user_id": THEIRS},
        403,
        -4000,
        "user_id does not match the authenticated user.",
    ),
    (
        "a huge user id",
        ORDER | {"user_id": 10**30},
        403,
        -4000,
        "user_id does not match the authenticated user.",
    ),
    (
        "a list of orders",
        [ORDER],
        400,
        -1130,
        "body: Input should be a valid dictionary or object to extract fields from",
    ),
    ("JSON null", None, 400, -1102, "body: Field required"),
]


@pytest.mark.parametrize(
    ("body", "status", "code", "msg"),
    [case[1:] for case in INVALID_ORDERS],
    ids=[case[0] for case in INVALID_ORDERS],
)
def test_an_invalid_order_is_refused_and_nothing_reaches_the_log(
    stack: Stack, body: Any, status: int, code: int, msg: str
) -> None:
    refused(post(stack, "/place_order", body), status, code, msg)
    assert stack.produced == []


NOT_OBJECT = "body: Input should be a valid dictionary or object to extract fields from"
RAW_BODIES: list[tuple[str, bytes, dict[str, str], int, int, str]] = [
    # (what, body, headers, status, code, msg)
    (
        "malformed JSON",
        b"{not json",
        {"Content-Type": "application/json"},
        400,
        -1130,
        "1: JSON decode error",
    ),
    (
        "an empty body",
        b"",
        {"Content-Type": "application/json"},
        400,
        -1102,
        "body: Field required",
    ),
    (
        "text/plain",
        json.dumps(ORDER).encode(),
        {"Content-Type": "text/plain"},
        400,
        -1130,
        NOT_OBJECT,
    ),
    ("no content type", json.dumps(ORDER).encode(), {}, 400, -1130, NOT_OBJECT),
    (
        "a form",
        b"symbol=BTC-PERP&side=Buy",
        {"Content-Type": "application/x-www-form-urlencoded"},
        400,
        -1130,
        NOT_OBJECT,
    ),
    (
        "a declared length over the limit",
        b"{}",
        {"Content-Type": "application/json", "Content-Length": "65537"},
        413,
        -1413,
        "Request body larger than 65536 bytes.",
    ),
    (
        "a body over the limit",
        b" " * 65537,
        {"Content-Type": "application/json"},
        413,
        -1413,
        "Request body larger than 65536 bytes.",
    ),
    (
        "a malformed Content-Length",
        b"{}",
        {"Content-Type": "application/json", "Content-Length": "two"},
        400,
        -1130,
        "Invalid Content-Length.",
    ),
]


@pytest.mark.parametrize(
    ("content", "headers", "status", "code", "msg"),
    [case[1:] for case in RAW_BODIES],
    ids=[case[0] for case in RAW_BODIES],
)
def test_a_body_that_is_no_order_is_refused_and_nothing_reaches_the_log(
    stack: Stack, content: bytes, headers: dict[str, str], status: int, code: int, msg: str
) -> None:
    reply = stack.client.post("/place_order", content=content, headers=stack.bearer(MINE) | headers)
    refused(reply, status, code, msg)
    assert stack.produced == []


UNPARSABLE = [
    pytest.param(b"[" * 20_000 + b"]" * 20_000, id="nested deeper than the parser goes"),
    pytest.param(b'{"symbol": "\xff"}', id="not UTF-8"),
    pytest.param(b'{"user_id": ' + b"9" * 5000 + b"}", id="an integer of 5000 digits"),
]
BODY_ROUTES = ["/place_order", "/cancel", "/amend", "/deposit", "/leverage", "/signup"]


@pytest.mark.parametrize("content", UNPARSABLE)
@pytest.mark.parametrize("path", BODY_ROUTES)
def test_a_body_json_cannot_parse_is_a_400_invalid_parameter(
    stack: Stack, path: str, content: bytes
) -> None:
    headers = stack.bearer(MINE) | {"Content-Type": "application/json"}
    reply = stack.client.post(path, content=content, headers=headers)
    refused(reply, 400, -1130, "There was an error parsing the body")
    assert stack.produced == []


def test_a_chunked_body_over_the_limit_is_a_413(stack: Stack) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(10):
            yield b" " * 10_000

    reply = stack.client.post(
        "/place_order",
        content=chunks(),
        headers=stack.bearer(MINE) | {"Content-Type": "application/json"},
    )
    refused(reply, 413, -1413, "Request body larger than 65536 bytes.")
    assert stack.produced == []


def test_an_order_the_log_does_not_take_is_a_503_to_retry(stack: Stack) -> None:
    stack.requests.refuse = True
    reply = post(stack, "/place_order", ORDER)
    refused(reply, 503, -1001, codes.MESSAGES[codes.DISCONNECTED])
    assert stack.produced == []


# --- authentication -----------------------------------------------------------------------


def expired_token(user_id: int) -> str:
    two_hours_ago = time.time() - 7200
    return TokenIssuer(SECRET, 3600, clock=lambda: two_hours_ago).issue(user_id)


BAD_AUTH: list[tuple[str, dict[str, str], int, str]] = [
    (
        "no credentials",
        {},
        -1002,
        "Send Authorization: Bearer <token>, or X-API-KEY with a signature.",
    ),
    (
        "a token that is no JWT",
        {"Authorization": "Bearer nope"},
        -1002,
        "Invalid token: malformed token: Not enough segments",
    ),
    (
        "another scheme",
        {"Authorization": "Basic dXNlcjpwYXNz"},
        -1002,
        "Authorization must be 'Bearer <token>'.",
    ),
    (
        "an empty token",
        {"Authorization": "Bearer "},
        -1002,
        "Authorization must be 'Bearer <token>'.",
    ),
    (
        "a token signed with another secret",
        {"Authorization": "Bearer " + TokenIssuer("x" * 40, 600).issue(MINE)},
        -1002,
        "Invalid token: token signature does not match",
    ),
    (
        "an expired token",
        {"Authorization": "Bearer " + expired_token(MINE)},
        -1002,
        "Invalid token: token has expired",
    ),
    (
        "an API key without a signature",
        {"X-API-KEY": "key-0"},
        -1022,
        "Send exactly one 'signature' parameter.",
    ),
]
PRIVATE_ROUTES = [
    ("POST", "/place_order", ORDER),
    ("POST", "/cancel", {"order_id": MY_ORDER}),
    ("POST", "/cancel_all", {"symbol": "BTC-PERP"}),
    ("POST", "/amend", {"order_id": MY_ORDER, "price": "49000.0"}),
    ("POST", "/deposit", {"amount": "100"}),
    ("POST", "/withdraw", {"amount": "100"}),
    ("POST", "/leverage", {"symbol": "BTC-PERP", "leverage": 10}),
    ("POST", "/api_keys", {"label": "bot"}),
    ("GET", "/api_keys", None),
    ("DELETE", "/api_keys/1", None),
    ("GET", "/orders", None),
    ("GET", f"/orders/{MY_ORDER}", None),
    ("GET", "/orders/client/mine", None),
    ("GET", "/fills", None),
    ("GET", "/account", None),
    ("GET", "/positions", None),
]


@pytest.mark.parametrize(
    ("headers", "code", "msg"), [c[1:] for c in BAD_AUTH], ids=[c[0] for c in BAD_AUTH]
)
@pytest.mark.parametrize(
    ("method", "path", "body"), PRIVATE_ROUTES, ids=[f"{m} {p}" for m, p, _ in PRIVATE_ROUTES]
)
def test_a_private_route_refuses_a_caller_it_cannot_identify(
    stack: Stack, method: str, path: str, body: Any, headers: dict[str, str], code: int, msg: str
) -> None:
    reply = stack.client.request(method, path, json=body, headers=headers)
    refused(reply, 401, code, msg)
    assert stack.produced == []


def signed(stack: Stack, key: str, secret: str, body: dict[str, Any], query: str) -> Any:
    content = json.dumps(body)
    signature = sign(secret, query + content)
    return stack.client.post(
        f"/place_order?{query}&signature={signature}",
        content=content,
        headers={"X-API-KEY": key, "Content-Type": "application/json"},
    )


def test_a_signed_order_reaches_the_log_as_the_key_owners(stack: Stack) -> None:
    key, secret = stack.users.create_api_key(MINE, "bot")
    reply = signed(stack, key.key, secret, ORDER, f"timestamp={time.time_ns() // 1_000_000}")
    assert reply.status_code == 202
    assert isinstance(only(stack), PlaceOrder)


def test_a_signed_order_with_a_bad_signature_stale_time_or_revoked_key_is_refused(
    stack: Stack,
) -> None:
    key, secret = stack.users.create_api_key(MINE, "bot")
    now = time.time_ns() // 1_000_000
    refused(
        signed(stack, key.key, "x" * 40, ORDER, f"timestamp={now}"),
        401,
        -1022,
        "Signature for this request is not valid.",
    )
    stale = signed(stack, key.key, secret, ORDER, f"timestamp={now - 10_000}")
    assert (stale.status_code, stale.json()["code"]) == (401, -1021)
    assert re.fullmatch(
        rf"timestamp {now - 10_000} is 1[0-9]{{4}} ms old, outside recvWindow 5000 ms",
        stale.json()["msg"],
    )
    refused(
        signed(stack, key.key, secret, ORDER, "timestamp=soon"),
        401,
        -1021,
        "Send 'timestamp' (ms) with a signed request.",
    )
    refused(
        signed(stack, key.key, secret, ORDER, f"timestamp={now}&recvWindow=60001"),
        401,
        -1021,
        "recvWindow must be 1..60000 ms, got 60001",
    )
    stack.users.revoke_api_key(MINE, key.id)
    refused(
        signed(stack, key.key, secret, ORDER, f"timestamp={now}"),
        401,
        -1022,
        "Signature for this request is not valid.",
    )
    assert stack.produced == []


def test_requests_over_the_ip_budget_get_429_with_retry_after() -> None:
    with started(ip_rate_per_minute=2) as stack:
        assert get(stack, "/symbols", None).status_code == 200
        assert get(stack, "/symbols", None).status_code == 200
        reply = post(stack, "/place_order", ORDER)
        refused(reply, 429, -1003, "Too many requests; retry in 60 s.")
        assert reply.headers["Retry-After"] == "60"
        assert stack.produced == []


def test_requests_over_the_user_budget_get_429_with_retry_after() -> None:
    with started(user_rate_per_second=1) as stack:
        assert post(stack, "/place_order", ORDER).status_code == 202
        reply = post(stack, "/place_order", ORDER)
        refused(reply, 429, -1003, "Too many requests; retry in 1 s.")
        assert reply.headers["Retry-After"] == "1"
        assert len(stack.produced) == 1


# --- POST /cancel, /cancel_all, /amend ----------------------------------------------------


def test_a_cancel_of_ones_own_order_reaches_the_log(stack: Stack) -> None:
    reply = post(stack, "/cancel", {"order_id": MY_ORDER})
    command = only(stack)
    assert isinstance(command, CancelOrder)
    assert (command.user_id, command.symbol, command.order_id) == (MINE, "BTC-PERP", MY_ORDER)
    assert reply.status_code == 202
    assert reply.json() == {
        "order_id": MY_ORDER,
        "status": "Pending",
        "filled": "0.000",
        "remaining": "0.000",
        "symbol": "BTC-PERP",
    }


def test_a_cancel_by_client_order_id_reaches_the_log(stack: Stack) -> None:
    assert post(stack, "/cancel", {"client_order_id": "mine"}).status_code == 202
    command = only(stack)
    assert isinstance(command, CancelOrder)
    assert command.order_id == MY_ORDER


def test_a_cancel_the_engines_refuse_is_a_400_with_their_code() -> None:
    def unknown(_kind: Kind, _request: Message) -> Outcome:
        return Outcome(OrderStatus.REJECTED, code=codes.UNKNOWN_ORDER, msg="Unknown order sent.")

    with started(unknown) as stack:
        # the symbol is given, so the gateway does not look the order up: the matcher decides
        reply = post(stack, "/cancel", {"order_id": THEIR_ORDER, "symbol": "BTC-PERP"})
        refused(reply, 400, -2011, "Unknown order sent.")


INVALID_ORDER_REQUESTS: list[tuple[str, str, Any, int, int, str]] = [
    ("cancel without ids", "/cancel", {}, 400, -1102, "Send order_id or client_order_id."),
    (
        "cancel another's order",
        "/cancel",
        {"order_id": THEIR_ORDER},
        404,
        -2013,
        "Order does not exist.",
    ),
    (
        "cancel another's client id",
        "/cancel",
        {"client_order_id": "theirs"},
        404,
        -2013,
        "Order does not exist.",
    ),
    (
        "cancel an unknown order",
        "/cancel",
        {"order_id": 12345},
        404,
        -2013,
        "Order does not exist.",
    ),
    (
        "cancel order 0",
        "/cancel",
        {"order_id": 0},
        400,
        -1130,
        "order_id: Input should be greater than or equal to 1",
    ),
    (
        "cancel a huge order id",
        "/cancel",
        {"order_id": 2**63},
        400,
        -1130,
        "order_id: Input should be less than 9223372036854775808",
    ),
    (
        "cancel a text order id",
        "/cancel",
        {"order_id": "seventy"},
        400,
        -1130,
        "order_id: Input should be a valid integer, unable to parse string as an integer",
    ),
    (
        "cancel on an unknown symbol",
        "/cancel",
        {"order_id": MY_ORDER, "symbol": "NOPE"},
        400,
        -1121,
        "Invalid symbol 'NOPE'.",
    ),
    (
        "cancel for another user",
        "/cancel",
        {"order_id": MY_ORDER, "user_id": THEIRS},
        403,
        -4000,
        "user_id does not match the authenticated user.",
    ),
    ("cancel all without a symbol", "/cancel_all", {}, 400, -1102, "symbol: Field required"),
    (
        "cancel all on an unknown symbol",
        "/cancel_all",
        {"symbol": "NOPE"},
        400,
        -1121,
        "Invalid symbol 'NOPE'.",
    ),
    (
        "amend with nothing to change",
        "/amend",
        {"order_id": MY_ORDER},
        400,
        -1102,
        "Send price and/or quantity.",
    ),
    ("amend without an id", "/amend", {"price": "1.0"}, 400, -1102, "order_id: Field required"),
    (
        "amend another's order",
        "/amend",
        {"order_id": THEIR_ORDER, "price": "49000.0"},
        404,
        -2013,
        "Order does not exist.",
    ),
    (
        "amend to a price off the tick",
        "/amend",
        {"order_id": MY_ORDER, "price": "49000.05"},
        400,
        -1130,
        "price: BTC-PERP price '49000.05' is not a multiple of 0.1",
    ),
    (
        "amend to a price above the maximum",
        "/amend",
        {"order_id": MY_ORDER, "price": "10000000.1"},
        400,
        -4002,
        "price above the maximum 10000000.0.",
    ),
    (
        "amend to a zero quantity",
        "/amend",
        {"order_id": MY_ORDER, "quantity": "0"},
        400,
        -1130,
        "quantity: quantity must be positive: '0'",
    ),
    (
        "amend to a negative price",
        "/amend",
        {"order_id": MY_ORDER, "price": "-1"},
        400,
        -1130,
        f"price: {DECIMAL_MSG}",
    ),
]


@pytest.mark.parametrize(
    ("path", "body", "status", "code", "msg"),
    [case[1:] for case in INVALID_ORDER_REQUESTS],
    ids=[case[0] for case in INVALID_ORDER_REQUESTS],
)
def test_an_invalid_cancel_or_amend_is_refused_and_nothing_reaches_the_log(
    stack: Stack, path: str, body: Any, status: int, code: int, msg: str
) -> None:
    refused(post(stack, path, body), status, code, msg)
    assert stack.produced == []


def test_a_cancel_all_reaches_the_log(stack: Stack) -> None:
    reply = post(stack, "/cancel_all", {"symbol": "BTC-PERP"})
    command = only(stack)
    assert isinstance(command, CancelAll)
    assert (command.user_id, command.symbol) == (MINE, "BTC-PERP")
    assert reply.status_code == 202
    assert reply.json() == {"symbol": "BTC-PERP", "status": "Pending", "cancelled": []}


def test_an_amend_of_ones_own_order_reaches_the_log(stack: Stack) -> None:
    reply = post(stack, "/amend", {"order_id": MY_ORDER, "price": "49000.0", "quantity": "0.005"})
    command = only(stack)
    assert isinstance(command, AmendOrder)
    assert (command.user_id, command.order_id, command.symbol) == (MINE, MY_ORDER, "BTC-PERP")
    assert (command.price, command.qty) == (490_000, 5)
    assert (reply.status_code, reply.json()) == (202, {"order_id": MY_ORDER, "status": "Pending"})


# --- reading orders and fills -------------------------------------------------------------


def test_ones_own_order_is_readable_by_id_and_by_client_id(stack: Stack) -> None:
    by_id, by_client_id = get(stack, f"/orders/{MY_ORDER}"), get(stack, "/orders/client/mine")
    assert by_id.status_code == by_client_id.status_code == 200
    assert by_id.json() == by_client_id.json()
    assert (by_id.json()["order_id"], by_id.json()["price"]) == (MY_ORDER, "50000.0")
    assert [o["order_id"] for o in get(stack, "/orders").json()] == [MY_ORDER]


INVALID_READS: list[tuple[str, str, int, int, str]] = [
    ("another's order", f"/orders/{THEIR_ORDER}", 404, -2013, "Order does not exist."),
    ("an unknown order", "/orders/12345", 404, -2013, "Order does not exist."),
    ("another's client id", "/orders/client/theirs", 404, -2013, "Order does not exist."),
    (
        "order 0",
        "/orders/0",
        400,
        -1130,
        "path.order_id: Input should be greater than or equal to 1",
    ),
    (
        "a huge order id",
        "/orders/99999999999999999999",
        400,
        -1130,
        "path.order_id: Input should be less than 9223372036854775808",
    ),
    (
        "a text order id",
        "/orders/abc",
        400,
        -1130,
        "path.order_id: Input should be a valid integer, unable to parse string as an integer",
    ),
    ("a bad client id", "/orders/client/a%20b", 400, -1130, f"path.client_order_id: {COID_MSG}"),
    (
        "orders limit 0",
        "/orders?limit=0",
        400,
        -1130,
        "query.limit: Input should be greater than or equal to 1",
    ),
    (
        "orders limit too large",
        "/orders?limit=1001",
        400,
        -1130,
        "query.limit: Input should be less than or equal to 1000",
    ),
    (
        "orders of a bad status",
        "/orders?status=closed",
        400,
        -1130,
        "query.status: Input should be 'open' or 'all'",
    ),
    ("orders of an unknown symbol", "/orders?symbol=NOPE", 400, -1121, "Invalid symbol 'NOPE'."),
    (
        "fills limit 0",
        "/fills?limit=0",
        400,
        -1130,
        "query.limit: Input should be greater than or equal to 1",
    ),
    (
        "fills limit too large",
        "/fills?limit=501",
        400,
        -1130,
        "query.limit: Input should be less than or equal to 500",
    ),
]


@pytest.mark.parametrize(
    ("path", "status", "code", "msg"),
    [case[1:] for case in INVALID_READS],
    ids=[case[0] for case in INVALID_READS],
)
def test_a_read_of_what_is_not_the_callers_or_out_of_bounds_is_refused(
    stack: Stack, path: str, status: int, code: int, msg: str
) -> None:
    refused(get(stack, path), status, code, msg)


# --- account ------------------------------------------------------------------------------


def test_an_empty_account_and_no_positions_read_as_zeros(stack: Stack) -> None:
    assert get(stack, "/account").json() == {
        "asset": "USDT",
        "balance": "0",
        "available": "0",
        "holds": "0",
        "position_margin": "0",
        "unrealised_pnl": "0",
        "leverage": {},
    }
    assert get(stack, "/positions").json() == []


def test_the_account_and_positions_are_served_from_the_projectors_keys(stack: Stack) -> None:
    usdt = 10**8
    stack.seed_hash(
        keys.account_key(MINE),
        {
            "balance": 100 * usdt,
            "holds": 5 * usdt,
            "available": 80 * usdt,
            "margin": 25 * usdt,
            "upnl": 10 * usdt,
            "told:matcher.events:0": 41,  # watermarks: not shown
        },
    )
    stack.seed_hash(keys.leverage_key(MINE), {"ETH-PERP": 50})  # the others: their default
    btc = PositionFacts(10, 500 * usdt, usdt // 4)  # long 0.010 at 50000.0, fees 0.25
    eth = PositionFacts(-2000, 6000 * usdt, 0)  # short 2.000 at 3000.00
    stack.seed_hash(
        keys.positions_key(MINE), {"BTC-PERP": btc.to_json(), "ETH-PERP": eth.to_json()}
    )
    stack.seed_hash(keys.mark_key("BTC-PERP"), {"mark": 510_000, "index": 509_990})
    assert get(stack, "/account").json() == {
        "asset": "USDT",
        "balance": "100",
        "available": "80",
        "holds": "5",
        "position_margin": "25",
        "unrealised_pnl": "10",
        "leverage": {"BTC-PERP": 20, "ETH-PERP": 50, "SOL-PERP": 20},
    }
    assert get(stack, "/positions").json() == [
        {
            "symbol": "BTC-PERP",
            "side": "Long",
            "size": "0.010",
            "entry_price": "50000.0",
            "break_even_price": "50050.1",
            "mark_price": "51000.0",
            "unrealised_pnl": "10",
            "liquidation_price": "43172.7",
            "margin_ratio": "0.29127273",
            "entry_notional": "500",
        },
        {
            "symbol": "ETH-PERP",
            "side": "Short",
            "size": "-2.000",
            "entry_price": "3000.00",
            "break_even_price": "2998.50",
            "mark_price": "3000.00",  # no mark yet: at its entry
            "unrealised_pnl": "0",
            "liquidation_price": "3038.78",
            "margin_ratio": "0.29127273",
            "entry_notional": "6000",
        },
    ]
    assert get(stack, "/positions", THEIRS).json() == []


def test_a_deposit_withdrawal_and_leverage_change_reach_the_log(stack: Stack) -> None:
    assert post(stack, "/deposit", {"asset": "USDT", "amount": "100.5"}).json() == {
        "status": "Pending",
        "amount": "100.5",
    }
    assert post(stack, "/withdraw", {"amount": "0.00000001"}).status_code == 202
    assert post(stack, "/leverage", {"symbol": "ETH-PERP", "leverage": 20}).json() == {
        "status": "Pending",
        "symbol": "ETH-PERP",
    }
    deposit, withdraw, leverage = (message for _, message in stack.produced)
    assert isinstance(deposit, Deposit) and deposit.amount == 100_5000_0000
    assert isinstance(withdraw, Withdraw) and withdraw.amount == 1
    assert isinstance(leverage, SetLeverage)
    assert (leverage.symbol, leverage.leverage) == ("ETH-PERP", 20)
    assert {user_id for user_id, _ in stack.produced} == {MINE}


INVALID_ACCOUNT_REQUESTS: list[tuple[str, str, Any, int, int, str]] = [
    ("a deposit without amount", "/deposit", {}, 400, -1102, "amount: Field required"),
    ("a zero deposit", "/deposit", {"amount": "0"}, 400, -1130, "amount must be positive."),
    ("a negative deposit", "/deposit", {"amount": "-5"}, 400, -1130, f"amount: {DECIMAL_MSG}"),
    (
        "a deposit as a number",
        "/deposit",
        {"amount": 5},
        400,
        -1130,
        "amount: Input should be a valid string",
    ),
    (
        "a deposit past the maximum",
        "/deposit",
        {"amount": "1000000.00000001"},
        400,
        -1130,
        "amount above the maximum 1000000.",
    ),
    (
        "a deposit finer than 1e-8",
        "/deposit",
        {"amount": "1.000000001"},
        400,
        -1130,
        "amount has more than 8 decimals: '1.000000001'",
    ),
    (
        "a huge deposit",
        "/deposit",
        {"amount": "9" * 20},
        400,
        -1130,
        "amount above the maximum 1000000.",
    ),
    (
        "a deposit of BTC",
        "/deposit",
        {"asset": "BTC", "amount": "1"},
        400,
        -1130,
        "asset: Input should be 'USDT'",
    ),
    (
        "a deposit for another user",
        "/deposit",
        {"amount": "1", "user_id": THEIRS},
        403,
        -4000,
        "user_id does not match the authenticated user.",
    ),
    ("a zero withdrawal", "/withdraw", {"amount": "0"}, 400, -1130, "amount must be positive."),
    (
        "a withdrawal past the maximum",
        "/withdraw",
        {"amount": "1000001"},
        400,
        -1130,
        "amount above the maximum 1000000.",
    ),
    ("leverage without symbol", "/leverage", {"leverage": 5}, 400, -1102, "symbol: Field required"),
    (
        "leverage without value",
        "/leverage",
        {"symbol": "BTC-PERP"},
        400,
        -1102,
        "leverage: Field required",
    ),
    (
        "leverage on an unknown symbol",
        "/leverage",
        {"symbol": "NOPE", "leverage": 5},
        400,
        -1121,
        "Invalid symbol 'NOPE'.",
    ),
    (
        "leverage 0",
        "/leverage",
        {"symbol": "BTC-PERP", "leverage": 0},
        400,
        -1130,
        "leverage: Input should be greater than or equal to 1",
    ),
    (
        "leverage 126",
        "/leverage",
        {"symbol": "BTC-PERP", "leverage": 126},
        400,
        -1130,
        "leverage: Input should be less than or equal to 125",
    ),
    (
        "leverage as words",
        "/leverage",
        {"symbol": "BTC-PERP", "leverage": "ten"},
        400,
        -1130,
        "leverage: Input should be a valid integer, unable to parse string as an integer",
    ),
]


@pytest.mark.parametrize(
    ("path", "body", "status", "code", "msg"),
    [case[1:] for case in INVALID_ACCOUNT_REQUESTS],
    ids=[case[0] for case in INVALID_ACCOUNT_REQUESTS],
)
def test_an_invalid_account_request_is_refused_and_nothing_reaches_the_log(
    stack: Stack, path: str, body: Any, status: int, code: int, msg: str
) -> None:
    refused(post(stack, path, body), status, code, msg)
    assert stack.produced == []


def test_the_faucet_switched_off_refuses_deposits() -> None:
    with started(faucet_enabled=False) as stack:
        refused(
            post(stack, "/deposit", {"amount": "1"}),
            403,
            -4000,
            "Deposits through the faucet are switched off.",
        )
        assert stack.produced == []


# --- market data --------------------------------------------------------------------------

MARKET = ["/orderbook/{}", "/trades/{}", "/markprice/{}", "/funding/{}"]


@pytest.mark.parametrize("route", MARKET)
def test_market_data_of_a_listed_symbol_is_served_and_of_others_refused(
    stack: Stack, route: str
) -> None:
    assert get(stack, route.format("BTC-PERP"), None).status_code == 200
    refused(get(stack, route.format("NOPE"), None), 400, -1121, "Invalid symbol 'NOPE'.")
    refused(
        get(stack, route.format("X" * 33), None),
        400,
        -1130,
        "path.symbol: String should have at most 32 characters",
    )


def test_the_mark_and_funding_read_as_none_before_the_first_mark(stack: Stack) -> None:
    assert get(stack, "/markprice/BTC-PERP", None).json() == {
        "symbol": "BTC-PERP",
        "mark_price": None,
        "index_price": None,
        "time": 0,
        "last_funding_rate": "0",
        "next_funding_time": 0,
    }
    assert get(stack, "/funding/BTC-PERP", None).json() == {
        "symbol": "BTC-PERP",
        "funding_rate": "0",
        "next_funding_time": 0,
        "interval_seconds": 28800,
    }


def test_the_mark_and_funding_are_served_from_the_projectors_keys(stack: Stack) -> None:
    stack.seed_hash(
        keys.mark_key("BTC-PERP"),
        {"mark": 510_000, "index": 509_990, "ts": 1_700_000_000_123_456_789},
    )
    stack.seed_hash(
        keys.funding_key("BTC-PERP"), {"rate": 10_000, "next_funding_time": 1_700_006_400 * 10**9}
    )
    assert get(stack, "/markprice/BTC-PERP", None).json() == {
        "symbol": "BTC-PERP",
        "mark_price": "51000.0",
        "index_price": "50999.0",
        "time": 1_700_000_000_123,
        "last_funding_rate": "0.0001",
        "next_funding_time": 1_700_006_400_000,
    }
    assert get(stack, "/funding/BTC-PERP", None).json() == {
        "symbol": "BTC-PERP",
        "funding_rate": "0.0001",
        "next_funding_time": 1_700_006_400_000,
        "interval_seconds": 28800,
    }


def test_market_data_limits_are_bounded(stack: Stack) -> None:
    refused(
        get(stack, "/orderbook/BTC-PERP?limit=0", None),
        400,
        -1130,
        "query.limit: Input should be greater than or equal to 1",
    )
    refused(
        get(stack, "/orderbook/BTC-PERP?limit=5001", None),
        400,
        -1130,
        "query.limit: Input should be less than or equal to 5000",
    )
    refused(
        get(stack, "/trades/BTC-PERP?limit=many", None),
        400,
        -1130,
        "query.limit: Input should be a valid integer, unable to parse string as an integer",
    )


def test_the_symbols_are_listed(stack: Stack) -> None:
    listed = get(stack, "/symbols", None).json()
    assert [s["symbol"] for s in listed] == ["BTC-PERP", "ETH-PERP", "SOL-PERP"]


# --- users and API keys -------------------------------------------------------------------

CREDENTIALS = {"email": "ada@example.com", "password": "correct horse"}


def test_a_signed_up_user_signs_in_and_the_token_works(stack: Stack) -> None:
    signup = post(stack, "/signup", CREDENTIALS, None)
    assert signup.json() == {"user_id": 1, "email": "ada@example.com"}
    signin = post(stack, "/signin", CREDENTIALS | {"email": "ADA@example.com"}, None)
    assert signin.status_code == 200
    token = signin.json()["token"]
    assert (
        stack.client.get("/account", headers={"Authorization": f"Bearer {token}"}).status_code
        == 200
    )


INVALID_SIGNUPS: list[tuple[str, Any, int, int, str]] = [
    ("no e-mail", {"password": "12345678"}, 400, -1102, "email: Field required"),
    ("no password", {"email": "a@example.com"}, 400, -1102, "password: Field required"),
    (
        "not an e-mail",
        {"email": "nope", "password": "12345678"},
        400,
        -1130,
        "email: value is not a valid email address: An email address must have an @-sign.",
    ),
    (
        "a short password",
        {"email": "a@example.com", "password": "1234567"},
        400,
        -1130,
        "password: String should have at least 8 characters",
    ),
    (
        "a long password",
        {"email": "a@example.com", "password": "1" * 129},
        400,
        -1130,
        "password: String should have at most 128 characters",
    ),
    (
        "a password as a number",
        {"email": "a@example.com", "password": 12345678},
        400,
        -1130,
        "password: Input should be a valid string",
    ),
]


@pytest.mark.parametrize(
    ("body", "status", "code", "msg"),
    [case[1:] for case in INVALID_SIGNUPS],
    ids=[case[0] for case in INVALID_SIGNUPS],
)
@pytest.mark.parametrize("path", ["/signup", "/signin"])
def test_invalid_credentials_are_refused(
    stack: Stack, path: str, body: Any, status: int, code: int, msg: str
) -> None:
    refused(post(stack, path, body, None), status, code, msg)
    assert stack.users.users == {}


def test_an_e_mail_is_taken_whatever_its_case(stack: Stack) -> None:
    post(stack, "/signup", CREDENTIALS, None)
    refused(
        post(stack, "/signup", CREDENTIALS | {"email": "Ada@Example.com"}, None),
        409,
        -4090,
        "This e-mail is already registered.",
    )


def test_a_wrong_password_and_an_unknown_e_mail_get_the_same_answer(stack: Stack) -> None:
    post(stack, "/signup", CREDENTIALS, None)
    wrong = post(stack, "/signin", CREDENTIALS | {"password": "wrong horse"}, None)
    unknown = post(stack, "/signin", CREDENTIALS | {"email": "bob@example.com"}, None)
    for reply in (wrong, unknown):
        refused(reply, 401, -1002, "Wrong e-mail or password.")


def test_api_keys_are_created_listed_and_revoked_by_their_owner_only(stack: Stack) -> None:
    created = post(stack, "/api_keys", {"label": "bot"}).json()
    assert set(created) == {"id", "api_key", "secret", "label"}
    listed = get(stack, "/api_keys").json()
    assert [(k["id"], k["revoked"]) for k in listed] == [(created["id"], False)]
    assert get(stack, "/api_keys", THEIRS).json() == []
    theirs = stack.client.delete(f"/api_keys/{created['id']}", headers=stack.bearer(THEIRS))
    refused(theirs, 404, -2014, "No such API key.")
    mine = stack.client.delete(f"/api_keys/{created['id']}", headers=stack.bearer(MINE))
    assert mine.json() == {"id": created["id"], "revoked": True}


@pytest.mark.parametrize(
    ("key_id", "status", "code", "msg"),
    [
        ("0", 404, -2014, "No such API key."),
        ("-1", 404, -2014, "No such API key."),
        ("99999999999999999999999", 404, -2014, "No such API key."),
        (
            "abc",
            400,
            -1130,
            "path.key_id: Input should be a valid integer, unable to parse string as an integer",
        ),
    ],
)
def test_revoking_a_key_that_cannot_exist_is_refused(
    stack: Stack, key_id: str, status: int, code: int, msg: str
) -> None:
    refused(stack.client.delete(f"/api_keys/{key_id}", headers=stack.bearer()), status, code, msg)


def test_an_api_key_label_is_bounded(stack: Stack) -> None:
    refused(
        post(stack, "/api_keys", {"label": "x" * 65}),
        400,
        -1130,
        "label: String should have at most 64 characters",
    )
    assert stack.users.keys == {}


@pytest.mark.parametrize("label", ["a\x00b", "line\nbreak", "\x7f"])
def test_an_api_key_label_is_printable_text(stack: Stack, label: str) -> None:
    response = post(stack, "/api_keys", {"label": label})
    assert response.status_code == 400
    assert response.json()["code"] == -1130
    assert response.json()["msg"].startswith("label: String should match pattern")
    assert stack.users.keys == {}


# --- WebSocket ----------------------------------------------------------------------------


def test_the_websocket_answers_bad_tokens_and_malformed_requests_with_errors(
    stack: Stack,
) -> None:
    with stack.client.websocket_connect("/ws?token=nope") as socket:
        assert socket.receive_json() == {
            "error": {"code": -1002, "msg": "Invalid token: malformed token: Not enough segments"}
        }
        socket.send_text("{nope")
        assert socket.receive_json()["error"]["code"] == -1130
        socket.send_text(json.dumps({"op": "subscribe", "channels": ["user"]}))
        assert socket.receive_json()["error"] == {
            "code": -1002,
            "msg": 'Authenticate first: {"op": "auth", "token": ...}.',
        }
        socket.send_text(json.dumps({"op": "subscribe", "channels": ["depth:NOPE"]}))
        assert socket.receive_json()["error"] == {
            "code": -1130,
            "msg": "Unknown channel 'depth:NOPE'.",
        }
        socket.send_text(json.dumps({"op": "ping"}))
        assert socket.receive_json() == {"op": "pong"}


def test_a_websocket_message_nested_too_deep_is_an_error_not_a_dropped_socket(
    stack: Stack,
) -> None:
    with stack.client.websocket_connect("/ws") as socket:
        socket.send_text("[" * 20_000 + "]" * 20_000)
        assert socket.receive_json() == {
            "error": {
                "code": -1130,
                "msg": 'Send JSON like {"op": "subscribe", "channels": [...]}.',
            }
        }
        socket.send_text(json.dumps({"op": "ping"}))
        assert socket.receive_json() == {"op": "pong"}


# --- fuzz ---------------------------------------------------------------------------------

DECIMALS = st.one_of(
    st.sampled_from(["50000.0", "0.010", "0", "0.1", "1", "-1", "1e3", "", " 1", "10000000.1"]),
    st.from_regex(r"[0-9]{1,22}(\.[0-9]{1,20})?", fullmatch=True),
    st.text(max_size=50),
    st.integers(),
    st.floats(),
    st.none(),
)
ANYTHING = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=40),
    st.lists(st.integers(), max_size=3),
)
FIELDS = {
    "user_id": st.one_of(st.just(MINE), st.just(THEIRS), ANYTHING),
    "symbol": st.one_of(st.sampled_from(["BTC-PERP", "ETH-PERP", "SOL-PERP", "NOPE"]), ANYTHING),
    "side": st.one_of(st.sampled_from(["Buy", "Sell", "buy"]), ANYTHING),
    "order_type": st.one_of(
        st.sampled_from(
            [
                "Limit",
                "Market",
                "StopMarket",
                "StopLimit",
                "TakeProfitMarket",
                "TakeProfitLimit",
                "TrailingStop",
                "Liquidation",
            ]
        ),
        ANYTHING,
    ),
    "price": DECIMALS,
    "quantity": DECIMALS,
    "stop_price": DECIMALS,
    "callback_rate": DECIMALS,
    "activation_price": DECIMALS,
    "leverage": st.one_of(st.integers(-5, 200), st.text(max_size=5), ANYTHING),
    "time_in_force": st.one_of(st.sampled_from(["GTC", "IOC", "FOK", "GTX"]), ANYTHING),
    "trigger_by": st.one_of(st.sampled_from(["Last", "Mark"]), ANYTHING),
    "reduce_only": ANYTHING,
    "close_position": ANYTHING,
    "client_order_id": st.one_of(
        st.from_regex(r"[A-Za-z0-9._:\-]{1,40}", fullmatch=True), ANYTHING
    ),
    "stp_mode": st.one_of(st.sampled_from(["NONE", "EXPIRE_TAKER", "EXPIRE_BOTH"]), ANYTHING),
}
BODIES = st.one_of(
    st.fixed_dictionaries({}, optional=FIELDS),
    st.fixed_dictionaries(
        {k: FIELDS[k] for k in ("symbol", "side", "order_type")},
        optional={k: v for k, v in FIELDS.items() if k not in ("symbol", "side", "order_type")},
    ),
    ANYTHING,
)


def test_no_order_body_gets_a_5xx_and_a_refused_one_reaches_nothing() -> None:
    with started() as stack:
        headers = stack.bearer(MINE) | {"Content-Type": "application/json"}

        @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
        @given(body=BODIES)
        def answers(body: Any) -> None:
            before = len(stack.produced)
            # json.dumps writes NaN and Infinity, which Python's parser (the gateway's) reads
            reply = stack.client.post("/place_order", content=json.dumps(body), headers=headers)
            assert reply.status_code < 500, (body, reply.text)
            if reply.status_code == 202:
                assert len(stack.produced) == before + 1
                return
            assert reply.status_code in (400, 403), (body, reply.text)
            answer = reply.json()
            assert set(answer) == {"code", "msg"} and answer["code"] < 0, (body, answer)
            assert len(stack.produced) == before, body

        answers()


def test_an_unknown_path_or_method_keeps_its_http_status_as_the_code(stack: Stack) -> None:
    refused(get(stack, "/nowhere"), 404, 404, "Not Found")
    refused(get(stack, "/place_order"), 405, 405, "Method Not Allowed")
