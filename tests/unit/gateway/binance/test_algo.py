"""The Binance face's conditional orders (services/gateway/binance/algo.py), Binance's algo
service shape, on the real gateway app built on in-memory adapters: each is one of the
exchange's own stop orders placed through the original API's validation and flow, answered
and read back as Binance's algo order, refused with Binance's codes, and read by ccxt's own
parser and by ccxt itself (``triggerPrice``, ``{'trigger': True}``) over HTTP into the app."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import ccxt
import pytest

from libs import codes
from libs.messages import CancelOrder, OrderStatus, OrderType, TriggerBy
from libs.money import parse_rate
from tests.unit.gateway.binance.test_orders import (
    COID,
    MINE,
    THEIRS,
    Signer,
    accept,
    exchange,
    placed,
    raised,
    refused,
    reject,
    resting,
)
from tests.unit.gateway.fakes import Stack, started, unanswered

SYMBOL = "BTC/USDT:USDT"
STOP = {
    "algoType": "CONDITIONAL",
    "symbol": "BTCUSDT",
    "side": "SELL",
    "type": "STOP_MARKET",
    "quantity": "0.010",
    "triggerPrice": "49000",
}
ALGO_FIELDS = {
    "algoId", "clientAlgoId", "algoType", "orderType", "type", "symbol", "side",
    "positionSide", "timeInForce", "quantity", "algoStatus", "triggerPrice", "price",
    "icebergQuantity", "selfTradePreventionMode", "workingType", "priceMatch", "closePosition",
    "priceProtect", "reduceOnly", "createTime", "updateTime", "triggerTime", "goodTillDate",
}  # fmt: skip
READ_BACK_FIELDS = ALGO_FIELDS | {"actualOrderId", "actualPrice"}


@pytest.fixture
def stack() -> Iterator[Stack]:
    with started(accept()) as running:
        yield running


def stop(order_id: int, user_id: int = MINE, coid: str = "stop", **more: Any) -> Any:
    """A sell stop-market of 0.010 triggering at 49000.0, as the projector writes it."""
    fields = {"side": "sell", "order_type": "stop_market", "price": None, "stop_price": 490_000}
    return resting(order_id, user_id, coid, **(fields | more))


# --- POST /fapi/v1/algoOrder --------------------------------------------------------------


def test_a_conditional_order_is_one_original_stop_order_answered_as_an_algo_order(
    stack: Stack,
) -> None:
    params = STOP | {
        "workingType": "MARK_PRICE",
        "reduceOnly": "true",
        "clientAlgoId": COID,
        "newOrderRespType": "RESULT",
        "positionSide": "BOTH",
        "priceProtect": "false",
    }
    reply = Signer(stack).call("POST", "/fapi/v1/algoOrder", params)
    command = placed(stack)
    assert (command.order_type, command.stop_price, command.trigger_by) == (
        OrderType.STOP_MARKET,
        490_000,
        TriggerBy.MARK,
    )
    assert (command.qty, command.reduce_only, command.client_order_id) == (10, True, COID)
    algo = reply.json()
    assert reply.status_code == 200 and set(algo) == ALGO_FIELDS
    assert (algo["algoId"], algo["clientAlgoId"], algo["algoStatus"]) == (
        command.order_id,
        COID,
        "NEW",
    )
    assert (algo["algoType"], algo["orderType"], algo["type"]) == (
        "CONDITIONAL",
        "STOP_MARKET",
        "STOP_MARKET",
    )
    assert (algo["triggerPrice"], algo["price"], algo["quantity"]) == ("49000.0", "0", "0.010")
    assert (algo["workingType"], algo["reduceOnly"], algo["positionSide"]) == (
        "MARK_PRICE",
        True,
        "BOTH",
    )
    assert (algo["icebergQuantity"], algo["priceMatch"], algo["goodTillDate"]) == (None, "NONE", 0)
    assert (algo["triggerTime"], algo["priceProtect"]) == (0, False)
    parsed = ccxt.binanceusdm().parse_order(algo)
    assert (parsed["id"], parsed["clientOrderId"], parsed["status"]) == (
        str(command.order_id),
        COID,
        "open",
    )
    assert (parsed["type"], parsed["side"], parsed["triggerPrice"], parsed["amount"]) == (
        "market",
        "sell",
        49000.0,
        0.01,
    )


@pytest.mark.parametrize(
    ("binance", "original", "more"),
    [
        ("STOP", OrderType.STOP_LIMIT, {"price": "48900", "timeInForce": "GTC"}),
        ("TAKE_PROFIT", OrderType.TAKE_PROFIT_LIMIT, {"price": "51100", "triggerPrice": "51000"}),
        ("TAKE_PROFIT_MARKET", OrderType.TAKE_PROFIT_MARKET, {"triggerPrice": "51000"}),
    ],
)
def test_each_algo_type_is_one_original_stop_type(
    stack: Stack, binance: str, original: OrderType, more: dict[str, str]
) -> None:
    reply = Signer(stack).call("POST", "/fapi/v1/algoOrder", STOP | {"type": binance} | more)
    assert reply.status_code == 200, reply.json()
    command = placed(stack)
    assert command.order_type == original and command.stop_price is not None
    algo = reply.json()
    assert algo["orderType"] == binance
    parsed = ccxt.binanceusdm().parse_order(algo)
    assert parsed["type"] == ("limit" if "price" in more else "market")
    assert parsed["triggerPrice"] == float(more.get("triggerPrice", "49000"))
    if binance.startswith("TAKE_PROFIT"):
        assert parsed["takeProfitPrice"] == 51000.0


def test_a_trailing_stop_takes_its_callback_rate_and_activate_price(stack: Stack) -> None:
    params = {k: v for k, v in STOP.items() if k != "triggerPrice"}
    params |= {"type": "TRAILING_STOP_MARKET", "callbackRate": "1", "activatePrice": "48000"}
    reply = Signer(stack).call("POST", "/fapi/v1/algoOrder", params)
    assert reply.status_code == 200, reply.json()
    command = placed(stack)
    assert command.order_type == OrderType.TRAILING_STOP
    assert (command.activation_price, command.callback_rate) == (480_000, parse_rate("0.01"))
    assert reply.json()["orderType"] == "TRAILING_STOP_MARKET"


def test_close_position_needs_no_quantity(stack: Stack) -> None:
    params = {k: v for k, v in STOP.items() if k != "quantity"} | {"closePosition": "true"}
    algo = Signer(stack).call("POST", "/fapi/v1/algoOrder", params).json()
    command = placed(stack)
    assert (command.close_position, command.qty) == (True, 0)
    assert (algo["closePosition"], algo["quantity"]) == (True, "0.000")


REFUSALS: list[tuple[str, dict[str, Any], int, str, type[Exception]]] = [
    (
        "no algoType",
        {"algoType": ""},
        -1102,
        "Mandatory parameter 'algoType' was not sent, was empty/null, or malformed.",
        ccxt.BadRequest,
    ),
    (
        "an algoType other than CONDITIONAL",
        {"algoType": "VP"},
        -1130,
        "Data sent for parameter 'algoType' is not valid.",
        ccxt.BadRequest,
    ),
    ("a plain limit", {"type": "LIMIT"}, -1116, "Invalid orderType.", ccxt.BadRequest),
    (
        "no trigger price",
        {"triggerPrice": ""},
        -1102,
        "Mandatory parameter 'triggerPrice' was not sent, was empty/null, or malformed.",
        ccxt.BadRequest,
    ),
    (
        "a trigger price off the tick grid",
        {"triggerPrice": "49000.05"},
        -1013,
        "Filter failure: PRICE_FILTER",
        ccxt.InvalidOrder,
    ),
    (
        "no limit price on a STOP",
        {"type": "STOP"},
        -1102,
        "Mandatory parameter 'price' was not sent, was empty/null, or malformed.",
        ccxt.BadRequest,
    ),
    (
        "a malformed clientAlgoId",
        {"clientAlgoId": "no spaces"},
        -1100,
        "Illegal characters found in parameter 'clientAlgoId'.",
        ccxt.BadRequest,
    ),
    (
        "a bad workingType",
        {"workingType": "INDEX_PRICE"},
        -1130,
        "Data sent for parameter 'workingType' is not valid.",
        ccxt.BadRequest,
    ),
    (
        "a hedge-mode side",
        {"positionSide": "SHORT"},
        -4061,
        "Order's position side does not match user's setting.",
        ccxt.OperationRejected,
    ),
    ("an unknown symbol", {"symbol": "DOGEUSDT"}, -1121, "Invalid symbol.", ccxt.BadSymbol),
]


@pytest.mark.parametrize(
    ("what", "params", "code", "msg", "error"), REFUSALS, ids=[r[0] for r in REFUSALS]
)
def test_a_bad_conditional_order_is_refused_as_binance_does(
    stack: Stack, what: str, params: dict, code: int, msg: str, error: type[Exception]
) -> None:
    reply = Signer(stack).call("POST", "/fapi/v1/algoOrder", STOP | params)
    refused(reply, code, msg)
    assert raised(reply) is error
    assert stack.produced == []


def test_the_engines_refusal_passes_through() -> None:
    with started(reject(codes.WOULD_IMMEDIATELY_TRIGGER, "Order would immediately trigger.")) as s:
        reply = Signer(s).call("POST", "/fapi/v1/algoOrder", STOP)
        refused(reply, -2021, "Order would immediately trigger.")


def test_a_conditional_order_unanswered_in_time_is_binances_timeout() -> None:
    with started(unanswered) as stack:
        reply = Signer(stack).call("POST", "/fapi/v1/algoOrder", STOP)
        assert (reply.status_code, reply.json()["code"]) == (503, -1007)


def test_a_retried_client_algo_id_is_answered_with_the_original(stack: Stack) -> None:
    stack.seed_order(stop(78, coid=COID))
    algo = Signer(stack).call("POST", "/fapi/v1/algoOrder", STOP | {"clientAlgoId": COID}).json()
    assert (algo["algoId"], algo["clientAlgoId"], algo["algoStatus"]) == (78, COID, "NEW")
    assert stack.produced == []


# --- GET /fapi/v1/algoOrder ---------------------------------------------------------------

STATUSES = [
    ({}, "NEW", "open"),
    ({"triggered": True}, "TRIGGERED", "closed"),
    ({"triggered": True, "status": OrderStatus.FILLED, "filled": 10}, "FINISHED", "closed"),
    ({"status": OrderStatus.CANCELLED}, "CANCELED", "canceled"),
    ({"status": OrderStatus.EXPIRED}, "EXPIRED", "expired"),
    ({"status": OrderStatus.REJECTED}, "REJECTED", "rejected"),
]


@pytest.mark.parametrize(("more", "algo_status", "ccxt_status"), STATUSES)
def test_an_algo_order_is_read_back_with_binances_algo_status(
    stack: Stack, more: dict[str, Any], algo_status: str, ccxt_status: str
) -> None:
    stack.seed_order(stop(78, **more), open_=algo_status in ("NEW", "TRIGGERED"))
    signer = Signer(stack)
    by_id = signer.call("GET", "/fapi/v1/algoOrder", {"symbol": "BTCUSDT", "algoId": 78}).json()
    by_client = signer.call("GET", "/fapi/v1/algoOrder", {"clientAlgoId": "stop"}).json()
    assert by_id == by_client and set(by_id) == READ_BACK_FIELDS
    assert by_id["algoStatus"] == algo_status
    fired = algo_status in ("TRIGGERED", "FINISHED")
    assert by_id["actualOrderId"] == ("78" if fired else "")
    assert (by_id["triggerTime"] > 0) is fired
    assert by_id["createTime"] == 1_700_000_000_000
    assert ccxt.binanceusdm().parse_order(by_id)["status"] == ccxt_status


def test_a_plain_order_someone_elses_or_an_unknown_id_is_no_algo_order(stack: Stack) -> None:
    stack.seed_order(resting(77))  # a limit order: not an algo order
    stack.seed_order(stop(78, THEIRS, "theirs"))
    stack.seed_order(stop(79))
    signer = Signer(stack)
    for params in (
        {"algoId": 77},
        {"algoId": 78},
        {"algoId": 999},
        {"algoId": 79, "symbol": "ETHUSDT"},
    ):
        reply = signer.call("GET", "/fapi/v1/algoOrder", params)
        refused(reply, -2013, "Order does not exist.")
        assert raised(reply) is ccxt.OrderNotFound
    refused(
        signer.call("GET", "/fapi/v1/algoOrder", {"symbol": "BTCUSDT"}),
        -1102,
        "Mandatory parameter 'algoId' was not sent, was empty/null, or malformed.",
    )


# --- DELETE /fapi/v1/algoOrder, algoOpenOrders --------------------------------------------


def test_a_cancel_cancels_the_waiting_order_and_answers_binances_success(stack: Stack) -> None:
    stack.seed_order(stop(78))
    reply = Signer(stack).call("DELETE", "/fapi/v1/algoOrder", {"symbol": "BTCUSDT", "algoId": 78})
    ((_, command),) = stack.produced
    assert isinstance(command, CancelOrder) and command.order_id == 78
    assert reply.json() == {"algoId": 78, "clientAlgoId": "stop", "code": "200", "msg": "success"}
    assert ccxt.binanceusdm().parse_order(reply.json())["id"] == "78"


def test_an_order_that_fired_or_ended_cannot_be_cancelled_as_an_algo_order(stack: Stack) -> None:
    stack.seed_order(stop(78, triggered=True))
    stack.seed_order(stop(79, coid="s2", status=OrderStatus.CANCELLED), open_=False)
    for algo_id in (78, 79, 999):
        reply = Signer(stack).call("DELETE", "/fapi/v1/algoOrder", {"algoId": algo_id})
        refused(reply, -2011, "Unknown order sent.")
        assert raised(reply) is ccxt.OrderNotFound
    assert stack.produced == []


def test_cancel_all_algo_orders_cancels_only_the_waiting_ones_of_the_symbol(stack: Stack) -> None:
    stack.seed_order(stop(78))
    stack.seed_order(stop(79, coid="s2"))
    stack.seed_order(stop(80, coid="s3", triggered=True))
    stack.seed_order(resting(81, coid="l1"))
    stack.seed_order(stop(82, coid="s4", symbol="ETH-PERP", stop_price=20_000))
    reply = Signer(stack).call("DELETE", "/fapi/v1/algoOpenOrders", {"symbol": "BTCUSDT"})
    assert reply.json() == {"code": 200, "msg": "The operation of cancel all open order is done."}
    cancelled = sorted(c.order_id or 0 for _, c in stack.produced if isinstance(c, CancelOrder))
    assert cancelled == [78, 79] and len(stack.produced) == 2


# --- lists --------------------------------------------------------------------------------


def test_open_algo_orders_are_the_waiting_ones_and_open_orders_the_rest(stack: Stack) -> None:
    stack.seed_order(stop(78))
    stack.seed_order(stop(79, coid="s2", symbol="ETH-PERP", stop_price=20_000))
    stack.seed_order(stop(80, coid="s3", triggered=True, order_type="stop_limit", price=489_000))
    stack.seed_order(resting(81, coid="l1"))
    stack.seed_order(stop(82, THEIRS, "theirs"))
    signer = Signer(stack)
    waiting = signer.call("GET", "/fapi/v1/openAlgoOrders").json()
    assert [a["algoId"] for a in waiting] == [78, 79]
    assert set(waiting[0]) == READ_BACK_FIELDS and waiting[0]["actualOrderId"] == ""
    here = signer.call("GET", "/fapi/v1/openAlgoOrders", {"symbol": "ETHUSDT"}).json()
    assert [a["algoId"] for a in here] == [79]
    orders = signer.call("GET", "/fapi/v1/openOrders").json()
    assert [(o["orderId"], o["type"], o["origType"]) for o in orders] == [
        (80, "LIMIT", "STOP"),
        (81, "LIMIT", "LIMIT"),
    ]


def test_all_algo_orders_are_the_conditional_orders_of_the_symbol(stack: Stack) -> None:
    stack.seed_order(stop(78))
    stack.seed_order(stop(79, coid="s2", status=OrderStatus.CANCELLED), open_=False)
    stack.seed_order(resting(80, coid="l1"))
    signer = Signer(stack)
    listed = signer.call("GET", "/fapi/v1/allAlgoOrders", {"symbol": "BTCUSDT"}).json()
    assert [(a["algoId"], a["algoStatus"]) for a in listed] == [(78, "NEW"), (79, "CANCELED")]
    later = {"symbol": "BTCUSDT", "algoId": 79}
    assert [a["algoId"] for a in signer.call("GET", "/fapi/v1/allAlgoOrders", later).json()] == [79]


# --- ccxt itself, over HTTP into the app --------------------------------------------------


@pytest.mark.parametrize(
    ("params", "price", "binance"),
    [
        ({"triggerPrice": 49000}, None, OrderType.STOP_MARKET),
        ({"stopLossPrice": 49000}, None, OrderType.STOP_MARKET),
        ({"takeProfitPrice": 49000}, None, OrderType.TAKE_PROFIT_MARKET),
        ({"triggerPrice": 49000}, 48900, OrderType.STOP_LIMIT),
    ],
)
def test_ccxt_places_a_conditional_order_through_the_algo_endpoint(
    stack: Stack, params: dict[str, Any], price: float | None, binance: OrderType
) -> None:
    ex = exchange(stack)
    kind = "market" if price is None else "limit"
    order = ex.create_order(SYMBOL, kind, "sell", 0.01, price, params | {"reduceOnly": True})
    command = placed(stack)
    assert (command.order_type, command.stop_price, command.reduce_only) == (binance, 490_000, True)
    assert command.client_order_id is not None and command.client_order_id.startswith("x-")
    assert (order["id"], order["status"], order["triggerPrice"]) == (
        str(command.order_id),
        "open",
        49000.0,
    )
    assert (order["type"], order["clientOrderId"]) == (kind, command.client_order_id)


def test_ccxt_places_a_trailing_stop_through_the_algo_endpoint(stack: Stack) -> None:
    ex = exchange(stack)
    params = {"callbackRate": 1, "activationPrice": 48000}
    order = ex.create_order(SYMBOL, "market", "sell", 0.01, None, params)
    command = placed(stack)
    assert command.order_type == OrderType.TRAILING_STOP
    assert (command.callback_rate, command.activation_price) == (parse_rate("0.01"), 480_000)
    assert (order["id"], order["status"]) == (str(command.order_id), "open")


def test_ccxt_lists_fetches_and_cancels_a_conditional_order_with_trigger(stack: Stack) -> None:
    ex = exchange(stack)
    order = ex.create_order(SYMBOL, "market", "sell", 0.01, None, {"triggerPrice": 49000})
    command = placed(stack)
    stack.seed_order(stop(command.order_id, coid=command.client_order_id or ""))
    stack.seed_order(resting(command.order_id + 1, coid="l1"))
    trigger = {"trigger": True}
    assert [o["id"] for o in ex.fetch_open_orders(SYMBOL, params=trigger)] == [order["id"]]
    assert [o["id"] for o in ex.fetch_open_orders(SYMBOL)] == [str(command.order_id + 1)]
    fetched = ex.fetch_order(order["id"], SYMBOL, trigger)
    assert (fetched["status"], fetched["triggerPrice"]) == ("open", 49000.0)
    assert [o["id"] for o in ex.fetch_orders(SYMBOL, params=trigger)] == [order["id"]]
    assert ex.cancel_order(order["id"], SYMBOL, trigger)["id"] == order["id"]
    cancel = stack.produced[-1][1]
    assert isinstance(cancel, CancelOrder) and cancel.order_id == command.order_id
    ex.cancel_all_orders(SYMBOL, trigger)
    assert isinstance(stack.produced[-1][1], CancelOrder) and len(stack.produced) == 3
