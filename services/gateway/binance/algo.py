"""The Binance face's conditional orders, in the shape of Binance's Algo Service
(``/fapi/v1/algoOrder``): stop, take-profit and trailing orders that wait for their trigger.

Binance keeps such an order apart from its order book until it fires. Here it is one of the
exchange's own stop orders (``StopMarket``, ``TakeProfitMarket``, ``StopLimit``,
``TakeProfitLimit``, ``TrailingStop``), placed by the original API's one validation path and
flow, and the algo id is its order id: once it fires, the same id is the order that reached the
book (Binance's ``actualOrderId``), shown by ``/fapi/v1/order`` and ``openOrders``.
docs/BINANCE-API.md lists the parameters and fields.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter

from libs import codes
from libs.messages import WAITS_FOR_TRIGGER, OrderStatus
from libs.symbols import SymbolSpec
from services.gateway.api.trading import cancel_open, to_command
from services.gateway.binance.names import TYPE_NAMES, mandatory, not_valid
from services.gateway.binance.orders import (
    NO_ORDER,
    PARAMS,
    UNKNOWN_ORDER,
    binance_refusal,
    body_of,
    done_of,
    engines_refusal,
    executions,
    number,
    order_object,
    owner,
    settle,
    timed_out,
    waiting,
    window,
)
from services.gateway.binance.signed import SignedCall
from services.gateway.errors import ApiError
from services.gateway.state import Gateway, Gw

router = APIRouter(tags=["binance"])

ALGO_ORDER_TYPES = (
    "STOP_MARKET",
    "TAKE_PROFIT_MARKET",
    "STOP",
    "TAKE_PROFIT",
    "TRAILING_STOP_MARKET",
)
"""The order types Binance's algo service takes (algoType CONDITIONAL)."""
RENAMED = {
    "triggerPrice": "stopPrice",
    "activatePrice": "activationPrice",
    "clientAlgoId": "newClientOrderId",
}
"""An algo order's parameters -> the names Binance's order endpoint gives them (``body_of``)."""
ALGO_PARAMS = PARAMS | {
    "stop_price": "triggerPrice",
    "activation_price": "activatePrice",
    "client_order_id": "clientAlgoId",
}
"""The original API's field names -> the algo service's, to name a refused parameter."""
FINAL_STATUSES: dict[str, str] = {
    OrderStatus.CANCELLED: "CANCELED",
    OrderStatus.EXPIRED: "EXPIRED",
    OrderStatus.REJECTED: "REJECTED",
}
"""How an order that never fired ended, as an algo status."""
CANCELLED = {"code": "200", "msg": "success"}
ALL_CANCELLED = {"code": 200, "msg": "The operation of cancel all open order is done."}


def fired(fields: dict[str, str]) -> bool:
    """Whether a conditional order's trigger fired (it then filled, or reached the book)."""
    return fields.get("triggered") == "1" or int(fields.get("filled") or 0) > 0


def algo_status(fields: dict[str, str]) -> str:
    """NEW while it waits for its trigger; TRIGGERED once it fired and its order is open,
    FINISHED once that order is done; CANCELED, EXPIRED or REJECTED if it never fired."""
    status = fields.get("status", "")
    if fired(fields) or status == OrderStatus.FILLED:
        open_ = status in (OrderStatus.PENDING, OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED)
        return "TRIGGERED" if open_ else "FINISHED"
    return FINAL_STATUSES.get(status, "NEW")


def algo_object(
    spec: SymbolSpec,
    fields: dict[str, str],
    done: tuple[int, int, int] | None = None,
    read_back: bool = False,
    **extra: Any,
) -> dict:
    """Binance's algo order for a conditional order as the read model holds it
    (``order:{id}``); ``read_back``: with the fired order's ``actualOrderId``/``actualPrice``,
    as Binance's queries show it."""
    order = order_object(spec, fields, done)  # the one place fields become Binance's
    kind = TYPE_NAMES.get(fields.get("order_type", ""), order["origType"])
    triggered = fired(fields) or fields.get("status") == OrderStatus.FILLED
    shown = {
        "algoId": order["orderId"],
        "clientAlgoId": order["clientOrderId"],
        "algoType": "CONDITIONAL",
        "orderType": kind,
        "type": kind,  # ccxt before 4.5.27 reads only ``type``
        "symbol": order["symbol"],
        "side": order["side"],
        "positionSide": "BOTH",
        "timeInForce": order["timeInForce"],
        "quantity": order["origQty"],
        "algoStatus": algo_status(fields),
        "triggerPrice": order["stopPrice"],
        "price": order["price"],
        "icebergQuantity": None,
        "selfTradePreventionMode": order["selfTradePreventionMode"],
        "workingType": order["workingType"],
        "priceMatch": "NONE",
        "closePosition": order["closePosition"],
        "priceProtect": False,
        "reduceOnly": order["reduceOnly"],
        "createTime": order["time"],
        "updateTime": order["updateTime"],
        "triggerTime": order["updateTime"] if triggered else 0,
        "goodTillDate": 0,
    }
    if read_back:
        shown["actualOrderId"] = str(order["orderId"]) if triggered else ""
        shown["actualPrice"] = order["avgPrice"]
    return shown | extra


def is_conditional(fields: dict[str, str]) -> bool:
    return fields.get("order_type") in WAITS_FOR_TRIGGER


# --- endpoints ----------------------------------------------------------------------------


@router.post("/fapi/v1/algoOrder")
async def new_algo_order(call: SignedCall, gw: Gw) -> dict:
    """Place a conditional order (algoType CONDITIONAL) and answer it once matching took it
    (``newOrderRespType`` is ignored: the answer is always the algo order)."""
    caller, params = call.user_id, call.params
    algo_type = params.get("algoType")
    if not algo_type:
        raise mandatory("algoType")
    if algo_type.upper() != "CONDITIONAL":
        raise not_valid("algoType")
    spec = gw.binance.spec(params.get("symbol"))
    kind = params.get("type")
    if kind and kind.upper() not in ALGO_ORDER_TYPES:
        raise ApiError(400, codes.INVALID_ORDER_TYPE, "Invalid orderType.")
    as_order = {k: v for k, v in params.items() if k not in RENAMED.values()}
    body = body_of({RENAMED.get(k, k): v for k, v in as_order.items()}, spec, ALGO_PARAMS)
    try:
        command = to_command(body, spec, caller, gw)
    except ApiError as error:
        raise binance_refusal(error, ALGO_PARAMS) from None
    got = await settle(gw, caller, spec, command)
    return got.shown(algo_object, gw.now_ns() // 1_000_000)


async def _algo_of(
    gw: Gateway, caller: int, params: dict[str, str]
) -> tuple[SymbolSpec, dict[str, str]] | None:
    """The caller's conditional order named by ``algoId`` or ``clientAlgoId`` (on ``symbol``
    when it is sent), or None."""
    spec = gw.binance.spec(params["symbol"]) if params.get("symbol") else None
    algo_id = number(params, "algoId")
    coid = params.get("clientAlgoId")
    if algo_id is None and not coid:
        raise mandatory("algoId")
    fields = await gw.reads.named_order(caller, algo_id, coid)
    here = owner(gw, caller, fields)
    if fields is None or here is None or not is_conditional(fields):
        return None
    if spec is not None and here is not spec:
        return None
    return here, fields


@router.get("/fapi/v1/algoOrder")
async def query_algo_order(call: SignedCall, gw: Gw) -> dict:
    """One of the caller's conditional orders, by ``algoId`` or ``clientAlgoId``."""
    found = await _algo_of(gw, call.user_id, call.params)
    if found is None:
        raise ApiError(400, codes.NO_SUCH_ORDER, NO_ORDER)
    spec, fields = found
    done = await done_of(gw, call.user_id, int(fields["order_id"]))
    return algo_object(spec, fields, done, read_back=True)


@router.delete("/fapi/v1/algoOrder")
async def cancel_algo_order(call: SignedCall, gw: Gw) -> dict:
    """Cancel a conditional order waiting for its trigger (one that fired is an order:
    ``DELETE /fapi/v1/order`` cancels it)."""
    found = await _algo_of(gw, call.user_id, call.params)
    if found is None or not waiting(found[1]):
        raise ApiError(400, codes.UNKNOWN_ORDER, UNKNOWN_ORDER)
    spec, fields = found
    order_id = int(fields["order_id"])
    outcome = await cancel_open(gw, call.user_id, spec, order_id)
    if outcome is None:
        raise timed_out()
    if outcome.status == OrderStatus.REJECTED:
        raise engines_refusal(outcome.code, outcome.msg)
    return {"algoId": order_id, "clientAlgoId": fields.get("client_order_id") or ""} | CANCELLED


async def _waiting(gw: Gateway, caller: int, spec: SymbolSpec | None) -> list[dict[str, str]]:
    """The caller's conditional orders waiting for their trigger (on ``spec``), oldest first."""
    found = [
        fields
        for fields in await gw.reads.orders(caller, True, 1000)
        if waiting(fields)
        and fields.get("symbol") in gw.symbols
        and (spec is None or fields["symbol"] == spec.name)
    ]
    return sorted(found, key=lambda fields: int(fields["order_id"]))


@router.get("/fapi/v1/openAlgoOrders")
async def open_algo_orders(call: SignedCall, gw: Gw) -> list[dict]:
    """The caller's conditional orders waiting for their trigger, on one symbol or all."""
    name = call.params.get("symbol")
    spec = gw.binance.spec(name) if name else None
    return [
        algo_object(gw.symbols[fields["symbol"]], fields, read_back=True)
        for fields in await _waiting(gw, call.user_id, spec)
    ]


@router.get("/fapi/v1/allAlgoOrders")
async def all_algo_orders(call: SignedCall, gw: Gw) -> list[dict]:
    """The caller's conditional orders on a symbol, waiting, fired or ended (of the caller's
    last 1000 orders the read model keeps); paged as ``allOrders``."""
    spec = gw.binance.spec(call.params.get("symbol"))
    done = executions(await gw.reads.fills(call.user_id, 500))
    rows = [
        algo_object(spec, fields, done.get(int(fields["order_id"])), read_back=True)
        for fields in await gw.reads.orders(call.user_id, False, 1000)
        if fields.get("symbol") == spec.name and is_conditional(fields)
    ]
    rows.sort(key=lambda row: row["algoId"])
    return window(call.params, rows, "algoId", "algoId", time_field="createTime")


@router.delete("/fapi/v1/algoOpenOrders")
async def cancel_open_algo_orders(call: SignedCall, gw: Gw) -> dict:
    """Cancel the caller's conditional orders waiting for their trigger on a symbol (orders in
    the book stay: ``DELETE /fapi/v1/allOpenOrders`` cancels both)."""
    spec = gw.binance.spec(call.params.get("symbol"))
    found = await _waiting(gw, call.user_id, spec)
    outcomes = await asyncio.gather(
        *(cancel_open(gw, call.user_id, spec, int(fields["order_id"])) for fields in found)
    )
    for outcome in outcomes:
        if outcome is None:
            raise timed_out()
        # one that fired or ended meanwhile is not open any more: nothing to cancel
        if outcome.status == OrderStatus.REJECTED and outcome.code != codes.UNKNOWN_ORDER:
            raise engines_refusal(outcome.code, outcome.msg)
    return ALL_CANCELLED
