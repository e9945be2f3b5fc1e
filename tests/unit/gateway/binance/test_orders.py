"""The Binance face's order endpoints (services/gateway/binance/orders.py) on the real gateway
app built on in-memory adapters, signed as ccxt signs: each answers Binance's shape, places
through the original API's validation and flow, refuses with the code and words that make
ccxt raise the right exception, and ccxt's own parsers (and ccxt itself, over HTTP into the
app) read what it answers."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import ccxt
import pytest

from libs import codes
from libs.messages import (
    AmendOrder,
    CancelAll,
    CancelOrder,
    Message,
    OrderAmended,
    OrderCancelled,
    OrderRejected,
    OrderStatus,
    OrderType,
    PlaceOrder,
    Side,
    TimeInForce,
    TriggerBy,
)
from libs.read_model import keys
from services.gateway.replies import Kind, Outcome
from services.projector.orders import Order
from tests.ccxt_gateway import InProcess
from tests.unit.gateway.fakes import Answer, Stack, started, unanswered

MINE, THEIRS = 1, 2
URL = "http://127.0.0.1/fapi/v1/order"
COID = "x-cvBPrNm9" + "a1B2c3D4e5F6g7H8i9J0kL"  # ccxt's 32 characters
LIMIT = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "quantity": "0.010"}


class Signer:
    """A Binance client as ccxt signs: ``timestamp`` first, the params, ``recvWindow``; the hex
    HMAC-SHA256 of that urlencoded string; GET/DELETE in the query, POST in a form body."""

    def __init__(self, stack: Stack, user_id: int = MINE) -> None:
        key, self.secret = stack.users.create_api_key(user_id, "bot")
        self.key, self.stack = key.key, stack

    def encoded(self, params: dict[str, Any], timestamp: int | None = None) -> str:
        ts = int(time.time() * 1000) if timestamp is None else timestamp
        text = urlencode({"timestamp": ts, **params, "recvWindow": 10000})
        signature = hmac.new(self.secret.encode(), text.encode(), hashlib.sha256).hexdigest()
        return f"{text}&signature={signature}"

    def call(self, method: str, path: str, params: dict[str, Any] | None = None, **kw: Any) -> Any:
        text = self.encoded(params or {}, **kw)
        headers = {"X-MBX-APIKEY": self.key}
        if method == "POST":
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            return self.stack.client.post(path, content=text, headers=headers)
        return self.stack.client.request(method, f"{path}?{text}", headers=headers)


def accept(filled: int = 0) -> Answer:
    """Engines that accept an order and fill ``filled`` lots of it; cancel and amend what is
    asked."""

    def answer(kind: Kind, request: Message) -> Outcome | None:
        if isinstance(request, PlaceOrder):
            status = OrderStatus.FILLED if filled == request.qty else OrderStatus.NEW
            status = OrderStatus.PARTIALLY_FILLED if 0 < filled < request.qty else status
            return Outcome(status, request.order_id, request.symbol, request.qty, filled)
        if isinstance(request, CancelOrder):
            event = OrderCancelled(
                symbol=request.symbol,
                seq=1,
                cmd_offset=0,
                request_id=request.request_id,
                user_id=request.user_id,
                order_id=request.order_id or 0,
                filled=0,
                remaining=10,
                reason="user",
            )
            return Outcome(
                OrderStatus.CANCELLED, request.order_id, request.symbol, 10, 0, event=event
            )
        if isinstance(request, AmendOrder):
            amended = OrderAmended(
                symbol=request.symbol,
                seq=1,
                cmd_offset=0,
                order_id=request.order_id,
                user_id=request.user_id,
                request_id=request.request_id,
                price=request.price,
                qty=request.qty or 10,
                kept_priority=False,
            )
            return Outcome(OrderStatus.NEW, request.order_id, request.symbol, event=amended)
        return None

    return answer


def reject(code: int, msg: str) -> Answer:
    def answer(kind: Kind, request: Message) -> Outcome:
        order_id = getattr(request, "order_id", None)
        event = OrderRejected(
            symbol=request.symbol,  # type: ignore[attr-defined]
            seq=1,
            cmd_offset=0,
            request_id=request.request_id,  # type: ignore[attr-defined]
            user_id=MINE,
            order_id=order_id,
            code=code,
            msg=msg,
        )
        return Outcome(OrderStatus.REJECTED, order_id, code=code, msg=msg, event=event)

    return answer


@pytest.fixture
def stack() -> Iterator[Stack]:
    with started(accept()) as running:
        yield running


def resting(order_id: int, user_id: int = MINE, coid: str = "mine", **more: Any) -> Order:
    """An open BTC-PERP limit buy of 0.010 at 50000.0, as the projector writes it."""
    fields: dict[str, Any] = {
        "symbol": "BTC-PERP",
        "side": "buy",
        "order_type": "limit",
        "tif": "GTC",
        "price": 500_000,
        "qty": 10,
        "status": OrderStatus.NEW,
        "ts": 1_700_000_000_000_000_000,
    }
    return Order(
        order_id=order_id,
        user_id=user_id,
        request_id=f"r{order_id}",
        requested=True,
        client_order_id=coid,
        **(fields | more),
    )


def seed_fill(stack: Stack, order_id: int, trade_id: int, price: int, qty: int, ts: int) -> None:
    fill = {
        "trade_id": trade_id,
        "order_id": order_id,
        "symbol": "BTC-PERP",
        "side": "buy",
        "price": price,
        "qty": qty,
        "maker": True,
        "fee": 100_000,
        "liquidation": False,
        "ts": ts,
    }
    stack.run(stack.redis.lpush(keys.fills_key(MINE), json.dumps(fill)))


def raised(reply: Any) -> type[Exception]:
    """The exception ccxt raises on this answer at a loopback URL (only its global tables)."""
    ex = ccxt.binanceusdm()
    try:
        ex.handle_errors(
            reply.status_code, "", URL, "POST", {}, reply.text, reply.json(), None, None
        )
    except ccxt.BaseError as error:
        return type(error)
    raise AssertionError(f"ccxt raised nothing on {reply.text}")


def refused(reply: Any, code: int, msg: str, status: int = 400) -> None:
    assert (reply.status_code, reply.json()) == (status, {"code": code, "msg": msg})


def placed(stack: Stack) -> PlaceOrder:
    assert len(stack.produced) == 1, stack.produced
    user_id, command = stack.produced[0]
    assert user_id == MINE and isinstance(command, PlaceOrder)
    return command


ORDER_FIELDS = {
    "orderId", "symbol", "status", "clientOrderId", "price", "avgPrice", "origQty",
    "executedQty", "cumQty", "cumQuote", "timeInForce", "type", "origType", "reduceOnly",
    "closePosition", "side", "positionSide", "stopPrice", "workingType", "priceProtect",
    "priceMatch", "selfTradePreventionMode", "goodTillDate", "time", "updateTime",
}  # fmt: skip


# --- POST /fapi/v1/order ------------------------------------------------------------------


def test_a_result_order_is_validated_by_the_original_path_and_answered_after_matching() -> None:
    with started(accept(filled=4)) as stack:
        seed_fill(stack, 0, 0, 0, 0, 0)  # another order's fill: not counted
        signer = Signer(stack)
        params = LIMIT | {"price": "50000", "timeInForce": "GTC", "newOrderRespType": "RESULT"}
        stack.run(stack.redis.delete(keys.fills_key(MINE)))
        reply = signer.call("POST", "/fapi/v1/order", params | {"newClientOrderId": COID})
        command = placed(stack)
        assert (command.side, command.order_type, command.tif) == (
            Side.BUY,
            OrderType.LIMIT,
            TimeInForce.GTC,
        )
        assert (command.price, command.qty, command.client_order_id) == (500_000, 10, COID)
        order = reply.json()
        assert reply.status_code == 200 and set(order) == ORDER_FIELDS
        assert order["orderId"] == command.order_id
        assert (order["status"], order["executedQty"], order["origQty"]) == (
            "PARTIALLY_FILLED",
            "0.004",
            "0.010",
        )
        assert (order["symbol"], order["side"], order["type"], order["positionSide"]) == (
            "BTCUSDT",
            "BUY",
            "LIMIT",
            "BOTH",
        )
        assert (order["price"], order["clientOrderId"], order["goodTillDate"]) == (
            "50000.0",
            COID,
            0,
        )
        parsed = ccxt.binanceusdm().parse_order(order)
        assert (parsed["id"], parsed["status"], parsed["amount"], parsed["filled"]) == (
            str(command.order_id),
            "open",
            0.01,
            0.004,
        )


def test_a_result_order_shows_its_average_price_from_its_fills() -> None:
    with started(accept(filled=10)) as stack:
        signer = Signer(stack)
        ids = stack.client.app.state.gateway.ids  # type: ignore[attr-defined]
        upcoming = ids.next()
        ids.next = lambda: upcoming  # type: ignore[method-assign]
        seed_fill(stack, upcoming, 1, 500_000, 4, 1_700_000_000_000)
        seed_fill(stack, upcoming, 2, 500_010, 6, 1_700_000_000_500)
        params = LIMIT | {"price": "50001", "newOrderRespType": "RESULT"}
        order = signer.call("POST", "/fapi/v1/order", params).json()
        assert (order["status"], order["executedQty"]) == ("FILLED", "0.010")
        assert (order["avgPrice"], order["cumQuote"]) == ("50000.6", "500.006")
        parsed = ccxt.binanceusdm().parse_order(order)
        assert (parsed["status"], parsed["average"], parsed["cost"]) == ("closed", 50000.6, 500.006)


def test_an_ack_order_is_answered_once_the_log_holds_it_without_waiting_for_matching() -> None:
    with started(unanswered) as stack:  # the engines never answer: ACK does not ask them
        reply = Signer(stack).call("POST", "/fapi/v1/order", LIMIT | {"price": "50000"})
        command = placed(stack)
        assert stack.replies.asked == []
        order = reply.json()
        assert (reply.status_code, order["status"], order["orderId"]) == (
            200,
            "NEW",
            command.order_id,
        )
        assert order["executedQty"] == "0.000"


def test_a_result_order_unanswered_in_time_is_binances_timeout() -> None:
    with started(unanswered) as stack:
        params = LIMIT | {"price": "50000", "newOrderRespType": "RESULT"}
        reply = Signer(stack).call("POST", "/fapi/v1/order", params)
        assert reply.json()["code"] == -1007 and reply.status_code == 503
        assert raised(reply) is ccxt.RequestTimeout


def test_conditional_types_map_to_the_original_order_types(stack: Stack) -> None:
    signer = Signer(stack)
    params = LIMIT | {
        "type": "STOP_MARKET",
        "stopPrice": "51000",
        "workingType": "MARK_PRICE",
        "reduceOnly": "true",
        "positionSide": "BOTH",
        "unknownThing": "ignored",
    }
    order = signer.call("POST", "/fapi/v1/order", params).json()
    command = placed(stack)
    assert (command.order_type, command.stop_price, command.trigger_by) == (
        OrderType.STOP_MARKET,
        510_000,
        TriggerBy.MARK,
    )
    assert command.reduce_only
    assert (order["type"], order["stopPrice"], order["workingType"]) == (
        "STOP_MARKET",
        "51000.0",
        "MARK_PRICE",
    )


@pytest.mark.parametrize(
    ("binance", "original"),
    [
        ("STOP", OrderType.STOP_LIMIT),
        ("TAKE_PROFIT", OrderType.TAKE_PROFIT_LIMIT),
        ("TAKE_PROFIT_MARKET", OrderType.TAKE_PROFIT_MARKET),
        ("MARKET", OrderType.MARKET),
    ],
)
def test_each_binance_type_is_one_original_type(stack: Stack, binance: str, original: str) -> None:
    params = LIMIT | {"type": binance, "price": "50000", "stopPrice": "49000"}
    reply = Signer(stack).call("POST", "/fapi/v1/order", params)
    assert reply.status_code == 200, reply.json()
    assert placed(stack).order_type == original


def test_a_trailing_stop_takes_its_callback_rate(stack: Stack) -> None:
    params = LIMIT | {"type": "TRAILING_STOP_MARKET", "callbackRate": "1", "side": "SELL"}
    assert Signer(stack).call("POST", "/fapi/v1/order", params).status_code == 200
    assert placed(stack).order_type == OrderType.TRAILING_STOP


REFUSALS: list[tuple[str, dict[str, Any], int, str, type[Exception]]] = [
    (
        "off the tick grid",
        {"price": "50000.05"},
        -1013,
        "Filter failure: PRICE_FILTER",
        ccxt.InvalidOrder,
    ),
    (
        "off the lot grid",
        {"price": "50000", "quantity": "0.0105"},
        -1013,
        "Filter failure: LOT_SIZE",
        ccxt.InvalidOrder,
    ),
    (
        "above the maximum price",
        {"price": "99999999999"},
        -1013,
        "Filter failure: PRICE_FILTER",
        ccxt.InvalidOrder,
    ),
    (
        "an unknown symbol",
        {"symbol": "DOGEUSDT", "price": "1"},
        -1121,
        "Invalid symbol.",
        ccxt.BadSymbol,
    ),
    (
        "no price on a limit",
        {},
        -1102,
        "Mandatory parameter 'price' was not sent, was empty/null, or malformed.",
        ccxt.BadRequest,
    ),
    (
        "a hedge-mode side",
        {"price": "50000", "positionSide": "LONG"},
        -4061,
        "Order's position side does not match user's setting.",
        ccxt.OperationRejected,
    ),
    ("an unknown type", {"type": "ICEBERG"}, -1116, "Invalid orderType.", ccxt.BadRequest),
    ("an unknown side", {"side": "UP"}, -1117, "Invalid side.", ccxt.BadRequest),
    (
        "GTD",
        {"price": "50000", "timeInForce": "GTD"},
        -1115,
        "Invalid timeInForce.",
        ccxt.BadRequest,
    ),
    (
        "a malformed price",
        {"price": "5e4"},
        -1100,
        "Illegal characters found in parameter 'price'.",
        ccxt.BadRequest,
    ),
]


@pytest.mark.parametrize(
    ("what", "params", "code", "msg", "error"), REFUSALS, ids=[r[0] for r in REFUSALS]
)
def test_a_bad_order_is_refused_as_binance_does_and_ccxt_raises_the_right_error(
    stack: Stack, what: str, params: dict, code: int, msg: str, error: type[Exception]
) -> None:
    reply = Signer(stack).call("POST", "/fapi/v1/order", LIMIT | params)
    refused(reply, code, msg)
    assert raised(reply) is error
    assert stack.produced == []


def test_insufficient_margin_is_worded_so_ccxt_raises_insufficient_funds() -> None:
    with started(reject(codes.MARGIN_INSUFFICIENT, "Margin is insufficient.")) as stack:
        params = LIMIT | {"price": "50000", "newOrderRespType": "RESULT"}
        reply = Signer(stack).call("POST", "/fapi/v1/order", params)
        refused(reply, -2019, "Account has insufficient balance for requested action.")
        assert raised(reply) is ccxt.InsufficientFunds


def test_a_retried_client_order_id_is_answered_with_the_original_order(stack: Stack) -> None:
    stack.seed_order(resting(78, coid=COID))
    params = LIMIT | {"price": "50000", "newClientOrderId": COID, "newOrderRespType": "RESULT"}
    order = Signer(stack).call("POST", "/fapi/v1/order", params).json()
    assert (order["orderId"], order["clientOrderId"], order["status"]) == (78, COID, "NEW")
    assert stack.produced == []


# --- batchOrders --------------------------------------------------------------------------


def test_batch_orders_answers_each_order_or_its_refusal(stack: Stack) -> None:
    batch = [LIMIT | {"price": "50000"}, LIMIT | {"price": "50000.05"}]
    reply = Signer(stack).call("POST", "/fapi/v1/batchOrders", {"batchOrders": json.dumps(batch)})
    first, second = reply.json()
    assert first["status"] == "NEW" and first["symbol"] == "BTCUSDT"
    assert second == {"code": -1013, "msg": "Filter failure: PRICE_FILTER"}


# --- GET and DELETE /fapi/v1/order --------------------------------------------------------


def test_an_order_is_read_back_by_id_or_client_id(stack: Stack) -> None:
    stack.seed_order(resting(78, coid="mine"))
    signer = Signer(stack)
    by_id = signer.call("GET", "/fapi/v1/order", {"symbol": "BTCUSDT", "orderId": 78}).json()
    by_coid = signer.call(
        "GET", "/fapi/v1/order", {"symbol": "BTCUSDT", "origClientOrderId": "mine"}
    ).json()
    assert by_id == by_coid and set(by_id) == ORDER_FIELDS
    assert (by_id["orderId"], by_id["price"], by_id["time"]) == (78, "50000.0", 1_700_000_000_000)


def test_someone_elses_or_an_unknown_order_does_not_exist(stack: Stack) -> None:
    stack.seed_order(resting(77, THEIRS, "theirs"))
    signer = Signer(stack)
    for order_id in (77, 999):
        reply = signer.call("GET", "/fapi/v1/order", {"symbol": "BTCUSDT", "orderId": order_id})
        refused(reply, -2013, "Order does not exist.")
        assert raised(reply) is ccxt.OrderNotFound


def test_a_cancel_answers_the_order_cancelled(stack: Stack) -> None:
    stack.seed_order(resting(78))
    reply = Signer(stack).call("DELETE", "/fapi/v1/order", {"symbol": "BTCUSDT", "orderId": 78})
    order = reply.json()
    ((_, command),) = stack.produced
    assert isinstance(command, CancelOrder) and command.order_id == 78
    assert (order["orderId"], order["status"], order["side"]) == (78, "CANCELED", "BUY")
    assert ccxt.binanceusdm().parse_order(order)["status"] == "canceled"


def test_a_cancel_of_an_unknown_order_is_unknown_order_sent() -> None:
    with started(reject(codes.UNKNOWN_ORDER, "Order is not open.")) as stack:
        reply = Signer(stack).call("DELETE", "/fapi/v1/order", {"symbol": "BTCUSDT", "orderId": 5})
        refused(reply, -2011, "Unknown order sent.")
        assert raised(reply) is ccxt.OrderNotFound


def test_cancel_all_answers_binances_done(stack: Stack) -> None:
    reply = Signer(stack).call("DELETE", "/fapi/v1/allOpenOrders", {"symbol": "BTCUSDT"})
    assert reply.json() == {"code": 200, "msg": "The operation of cancel all open order is done."}
    assert isinstance(stack.produced[0][1], CancelAll)


# --- PUT /fapi/v1/order -------------------------------------------------------------------

MODIFY = {"symbol": "BTCUSDT", "side": "BUY", "orderId": 78, "quantity": "0.020", "price": "50100"}


def test_a_modify_amends_the_order_by_the_original_flow_and_answers_the_order(
    stack: Stack,
) -> None:
    stack.seed_order(resting(78))
    reply = Signer(stack).call("PUT", "/fapi/v1/order", MODIFY)
    ((_, command),) = stack.produced
    assert isinstance(command, AmendOrder)
    assert (command.order_id, command.price, command.qty) == (78, 501_000, 20)
    order = reply.json()
    assert reply.status_code == 200 and set(order) == ORDER_FIELDS
    assert (order["orderId"], order["price"], order["origQty"], order["status"]) == (
        78,
        "50100.0",
        "0.020",
        "NEW",
    )
    parsed = ccxt.binanceusdm().parse_order(order)
    assert (parsed["id"], parsed["price"], parsed["amount"]) == ("78", 50100.0, 0.02)


def test_a_modify_finds_the_order_by_its_client_id(stack: Stack) -> None:
    stack.seed_order(resting(78, coid="mine"))
    params = {k: v for k, v in MODIFY.items() if k != "orderId"} | {"origClientOrderId": "mine"}
    assert Signer(stack).call("PUT", "/fapi/v1/order", params).json()["orderId"] == 78


MODIFY_REFUSALS: list[tuple[str, dict[str, Any], int, str, type[Exception]]] = [
    (
        "the other side",
        {"side": "SELL"},
        -1130,
        "Data sent for parameter 'side' is not valid.",
        ccxt.BadRequest,
    ),
    (
        "no price",
        {"price": ""},
        -1102,
        "Mandatory parameter 'price' was not sent, was empty/null, or malformed.",
        ccxt.BadRequest,
    ),
    (
        "no quantity",
        {"quantity": ""},
        -1102,
        "Mandatory parameter 'quantity' was not sent, was empty/null, or malformed.",
        ccxt.BadRequest,
    ),
    (
        "off the tick grid",
        {"price": "50100.05"},
        -1013,
        "Filter failure: PRICE_FILTER",
        ccxt.InvalidOrder,
    ),
    (
        "off the lot grid",
        {"quantity": "0.0205"},
        -1013,
        "Filter failure: LOT_SIZE",
        ccxt.InvalidOrder,
    ),
    ("an unknown order", {"orderId": 999}, -2013, "Order does not exist.", ccxt.OrderNotFound),
]


@pytest.mark.parametrize(
    ("what", "params", "code", "msg", "error"),
    MODIFY_REFUSALS,
    ids=[r[0] for r in MODIFY_REFUSALS],
)
def test_a_bad_modify_is_refused_as_binance_does(
    stack: Stack, what: str, params: dict, code: int, msg: str, error: type[Exception]
) -> None:
    stack.seed_order(resting(78))
    reply = Signer(stack).call("PUT", "/fapi/v1/order", MODIFY | params)
    refused(reply, code, msg)
    assert raised(reply) is error
    assert stack.produced == []


@pytest.mark.parametrize(
    ("code", "msg", "words", "error"),
    [
        (codes.NO_NEED_TO_MODIFY, "No need to modify", "No need to modify the order.", None),
        (codes.UNKNOWN_ORDER, "Unknown order sent", "Unknown order sent.", ccxt.OrderNotFound),
    ],
)
def test_the_matchers_refusal_of_a_modify_is_worded_as_binance_words_it(
    code: int, msg: str, words: str, error: type[Exception] | None
) -> None:
    with started(reject(code, msg)) as stack:
        stack.seed_order(resting(78))
        reply = Signer(stack).call("PUT", "/fapi/v1/order", MODIFY)
        refused(reply, code, words)
        if error is not None:
            assert raised(reply) is error


def test_a_modify_unanswered_in_time_is_binances_timeout() -> None:
    with started(unanswered) as stack:
        stack.seed_order(resting(78))
        reply = Signer(stack).call("PUT", "/fapi/v1/order", MODIFY)
        assert (reply.status_code, reply.json()["code"]) == (503, -1007)


# --- lists --------------------------------------------------------------------------------


def test_open_and_all_orders_list_the_callers_orders_oldest_first(stack: Stack) -> None:
    stack.seed_order(resting(78))
    stack.seed_order(resting(79, coid="m2"))
    waiting = {"order_type": "stop_market", "price": None, "stop_price": 490_000}
    stack.seed_order(resting(76, coid="stop", **waiting))  # an algo order: openAlgoOrders
    stack.seed_order(resting(80, coid="m3", status=OrderStatus.FILLED, filled=10), open_=False)
    stack.seed_order(resting(77, THEIRS, "theirs"))
    signer = Signer(stack)
    opened = signer.call("GET", "/fapi/v1/openOrders").json()
    assert [o["orderId"] for o in opened] == [78, 79]
    everything = signer.call("GET", "/fapi/v1/allOrders", {"symbol": "BTCUSDT"}).json()
    assert [o["orderId"] for o in everything] == [76, 78, 79, 80]
    assert everything[-1]["status"] == "FILLED"
    limited = signer.call("GET", "/fapi/v1/allOrders", {"symbol": "BTCUSDT", "limit": 1})
    assert [o["orderId"] for o in limited.json()] == [80]
    refused(
        signer.call("GET", "/fapi/v1/allOrders"),
        -1102,
        "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.",
    )


def test_user_trades_are_the_callers_fills_and_ccxt_parses_them(stack: Stack) -> None:
    seed_fill(stack, 78, 5, 500_000, 4, 1_700_000_000_000)
    seed_fill(stack, 78, 6, 500_010, 6, 1_700_000_000_500)
    trades = Signer(stack).call("GET", "/fapi/v1/userTrades", {"symbol": "BTCUSDT"}).json()
    assert [t["id"] for t in trades] == [5, 6]
    assert trades[0]["quoteQty"] == "200"
    assert (trades[0]["commission"], trades[0]["commissionAsset"]) == ("0.001", "USDT")
    parsed = ccxt.binanceusdm().parse_trade(trades[1])
    assert (parsed["id"], parsed["order"], parsed["price"], parsed["amount"]) == (
        "6",
        "78",
        50001.0,
        0.006,
    )
    assert [t["realizedPnl"] for t in trades] == ["0", "0"]


def test_user_trades_answer_the_pnl_each_fill_realised(stack: Stack) -> None:
    seed_fill(stack, 78, 5, 500_000, 4, 1_700_000_000_000)
    seed_fill(stack, 79, 6, 500_010, 6, 1_700_000_000_500)
    seed_fill(stack, 80, 7, 500_020, 1, 1_700_000_000_900)
    realised = {
        json.dumps(["BTC-PERP", 6, 125_000_000]): 1_700_000_000_500,
        json.dumps(["BTC-PERP", 7, -50_000_000]): 1_700_000_000_900,
        json.dumps(["ETH-PERP", 5, 999]): 1_700_000_000_000,  # another symbol's trade 5
    }
    stack.run(stack.redis.zadd(keys.realised_pnl_key(MINE), realised))
    trades = Signer(stack).call("GET", "/fapi/v1/userTrades", {"symbol": "BTCUSDT"}).json()
    assert [(t["id"], t["realizedPnl"]) for t in trades] == [(5, "0"), (6, "1.25"), (7, "-0.5")]
    assert [t["commission"] for t in trades] == ["0.001"] * 3
    parsed = ccxt.binanceusdm().parse_trade(trades[1])
    assert parsed["info"]["realizedPnl"] == "1.25"
    later = Signer(stack).call("GET", "/fapi/v1/userTrades", {"symbol": "BTCUSDT", "fromId": "7"})
    assert [(t["id"], t["realizedPnl"]) for t in later.json()] == [(7, "-0.5")]


# --- signing ------------------------------------------------------------------------------


def test_bad_signatures_timestamps_and_keys_are_binances_errors(stack: Stack) -> None:
    signer = Signer(stack)
    path, params = "/fapi/v1/openOrders", {"symbol": "BTCUSDT"}
    good = signer.encoded(params)
    forged = good[:-4] + ("0000" if not good.endswith("0000") else "1111")
    key = {"X-MBX-APIKEY": signer.key}
    reply = stack.client.get(f"{path}?{forged}", headers=key)
    refused(reply, -1022, "Signature for this request is not valid.")
    assert raised(reply) is ccxt.AuthenticationError
    stale = signer.encoded(params, timestamp=int(time.time() * 1000) - 60_000)
    reply = stack.client.get(f"{path}?{stale}", headers=key)
    refused(reply, -1021, "Timestamp for this request is outside of the recvWindow.")
    assert raised(reply) is ccxt.InvalidNonce
    reply = stack.client.get(f"{path}?{good}", headers={"X-MBX-APIKEY": "nobody"})
    refused(reply, -2015, "Invalid API-key, IP, or permissions for action.", 401)
    assert raised(reply) is ccxt.AuthenticationError
    reply = stack.client.get(f"{path}?{good}")
    refused(reply, -2014, "API-key format invalid.", 401)
    assert raised(reply) is ccxt.AuthenticationError


# --- ccxt itself, over HTTP into the app --------------------------------------------------


def exchange(stack: Stack, user_id: int = MINE) -> ccxt.binanceusdm:
    """ccxt's binanceusdm pointed at the app, as docs/BINANCE-USDM.md's constructor."""
    key, secret = stack.users.create_api_key(user_id, "ccxt")
    base = "http://gateway"
    ex = ccxt.binanceusdm(
        {
            "apiKey": key.key,
            "secret": secret,
            "urls": {
                "api": {
                    "fapiPublic": base + "/fapi/v1",
                    "fapiPrivate": base + "/fapi/v1",
                    "fapiPrivateV2": base + "/fapi/v2",
                    "fapiPrivateV3": base + "/fapi/v3",
                }
            },
            "options": {"fetchCurrencies": False},
            "enableRateLimit": False,
        }
    )
    ex.session = InProcess(stack)
    return ex


def test_ccxt_places_reads_and_cancels_an_order(stack: Stack) -> None:
    ex = exchange(stack)
    order = ex.create_order("BTC/USDT:USDT", "limit", "buy", 0.01, 50000)
    command = placed(stack)
    assert order["id"] == str(command.order_id) and order["status"] == "open"
    assert (order["price"], order["amount"]) == (50000.0, 0.01)
    assert command.client_order_id is not None and command.client_order_id.startswith("x-")
    stack.seed_order(resting(command.order_id, coid=command.client_order_id))
    assert ex.fetch_order(order["id"], "BTC/USDT:USDT")["status"] == "open"
    assert [o["id"] for o in ex.fetch_open_orders("BTC/USDT:USDT")] == [order["id"]]
    assert ex.cancel_order(order["id"], "BTC/USDT:USDT")["status"] == "canceled"
    with pytest.raises(ccxt.InvalidOrder):
        ex.create_order("BTC/USDT:USDT", "limit", "buy", 0.01, 50000, {"price": "50000.05"})


def test_ccxt_edits_an_order_through_put_order(stack: Stack) -> None:
    stack.seed_order(resting(78))
    ex = exchange(stack)
    order = ex.edit_order("78", "BTC/USDT:USDT", "limit", "buy", 0.02, 50100)
    ((_, command),) = stack.produced
    assert isinstance(command, AmendOrder)
    assert (command.order_id, command.price, command.qty) == (78, 501_000, 20)
    assert (order["id"], order["status"], order["price"], order["amount"]) == (
        "78",
        "open",
        50100.0,
        0.02,
    )
