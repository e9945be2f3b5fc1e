"""The Binance face's order endpoints: place, modify, query, cancel and list orders, the
caller's trades.

A new order is Binance's parameters turned into the original API's ``PlaceOrderBody`` and
validated by the one validation path (``api.trading.to_command``), then placed by the same
flow (``api.trading.place``); a modification goes through the original amend flow
(``api.trading.amend_open``). Refusals are re-worded where ccxt needs Binance's own words to
raise the right exception. Conditional orders waiting for their trigger are Binance's algo
orders (``algo.py``): the order lists here leave them out. docs/BINANCE-API.md lists the
parameters and fields.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, cast

from fastapi import APIRouter
from pydantic import ValidationError

from libs import codes
from libs.messages import WAITS_FOR_TRIGGER, OrderAmended, OrderStatus, PlaceOrder
from libs.money import format_cash
from libs.symbols import SymbolSpec
from services.gateway.api.trading import (
    amend_open,
    cancel_all_open,
    cancel_open,
    place,
    retried,
    to_command,
)
from services.gateway.binance.names import STATUSES, TYPE_NAMES, binance_name, mandatory, not_valid
from services.gateway.binance.signed import SignedCall
from services.gateway.errors import ApiError
from services.gateway.replies import Outcome
from services.gateway.schemas import PlaceOrderBody
from services.gateway.state import Gateway, Gw

router = APIRouter(tags=["binance"])

INSUFFICIENT = "Account has insufficient balance for requested action."
"""Binance's words for -2019 that ccxt maps to InsufficientFunds away from fapi.binance.com."""
PRICE_FILTER = "Filter failure: PRICE_FILTER"
LOT_SIZE = "Filter failure: LOT_SIZE"
NO_ORDER = "Order does not exist."
UNKNOWN_ORDER = "Unknown order sent."
NO_NEED_TO_MODIFY = "No need to modify the order."
TIMEOUT_MSG = (
    "Timeout waiting for response from backend server. Send status unknown; "
    "execution status unknown."
)
CANCEL_ALL_DONE = {"code": 200, "msg": "The operation of cancel all open order is done."}

ORDER_TYPES = {
    "LIMIT": "Limit",
    "MARKET": "Market",
    "STOP": "StopLimit",
    "STOP_MARKET": "StopMarket",
    "TAKE_PROFIT": "TakeProfitLimit",
    "TAKE_PROFIT_MARKET": "TakeProfitMarket",
    "TRAILING_STOP_MARKET": "TrailingStop",
}
"""Binance's order types -> the original API's."""
TRIGGERED_AS = {
    "stop_limit": "LIMIT",
    "take_profit_limit": "LIMIT",
    "stop_market": "MARKET",
    "take_profit_market": "MARKET",
    "trailing_stop": "MARKET",
}
"""What a conditional order became when it triggered (Binance's ``type``; ``origType`` stays)."""
SIDES = {"BUY": "Buy", "SELL": "Sell"}
WORKING_TYPES = {"CONTRACT_PRICE": "Last", "MARK_PRICE": "Mark"}
PARAMS = {
    "symbol": "symbol",
    "side": "side",
    "order_type": "type",
    "price": "price",
    "quantity": "quantity",
    "time_in_force": "timeInForce",
    "stop_price": "stopPrice",
    "trigger_by": "workingType",
    "callback_rate": "callbackRate",
    "activation_price": "activationPrice",
    "reduce_only": "reduceOnly",
    "close_position": "closePosition",
    "client_order_id": "newClientOrderId",
    "stp_mode": "selfTradePreventionMode",
}
"""The original API's field names -> Binance's, to name a refused parameter Binance's way."""
PRICES = ("price", "stop_price", "activation_price")
MAX_LIMIT = 1000


# --- parameters ---------------------------------------------------------------------------


def illegal(name: str) -> ApiError:
    return ApiError(400, codes.ILLEGAL_CHARS, f"Illegal characters found in parameter '{name}'.")


def flag(params: dict[str, str], name: str) -> bool:
    """A Binance boolean (``true``/``false``, any case); absent is false."""
    value = params.get(name, "false").lower()
    if value not in ("true", "false"):
        raise not_valid(name)
    return value == "true"


def number(params: dict[str, str], name: str, default: int | None = None) -> int | None:
    """A whole-number parameter (ids, times, limits); absent is ``default``."""
    text = params.get(name)
    if text is None or text == "":
        return default
    if not (text.isascii() and text.isdigit()) or len(text) > 19:
        raise illegal(name)
    return int(text)


def limit_of(params: dict[str, str], default: int = 500) -> int:
    limit = number(params, "limit", default)
    assert limit is not None
    if not 1 <= limit <= MAX_LIMIT:
        raise not_valid("limit")
    return limit


def one_way(params: dict[str, str]) -> None:
    """Positions are one-way here: ``positionSide`` is BOTH or absent."""
    if params.get("positionSide", "BOTH").upper() != "BOTH":
        raise ApiError(
            400,
            codes.POSITION_SIDE_MISMATCH,
            "Order's position side does not match user's setting.",
        )


def body_of(
    params: dict[str, str], spec: SymbolSpec, names: dict[str, str] = PARAMS
) -> PlaceOrderBody:
    """Binance's new-order parameters as the original API's body (unknown ones ignored);
    ``names``: Binance's name of each field, to name a refused one."""
    side = params.get("side")
    if not side:
        raise mandatory("side")
    if side.upper() not in SIDES:
        raise ApiError(400, codes.INVALID_SIDE, "Invalid side.")
    kind = params.get("type")
    if not kind:
        raise mandatory("type")
    if kind.upper() not in ORDER_TYPES:
        raise ApiError(400, codes.INVALID_ORDER_TYPE, "Invalid orderType.")
    one_way(params)
    tif = params.get("timeInForce", "GTC").upper()
    if tif not in ("GTC", "IOC", "FOK", "GTX"):
        raise ApiError(400, codes.INVALID_TIF, "Invalid timeInForce.")
    working = params.get("workingType", "CONTRACT_PRICE").upper()
    if working not in WORKING_TYPES:
        raise not_valid("workingType")
    if params.get("priceMatch", "NONE").upper() != "NONE":
        raise not_valid("priceMatch")
    fields: dict[str, Any] = {
        "symbol": spec.name,
        "side": SIDES[side.upper()],
        "order_type": ORDER_TYPES[kind.upper()],
        "time_in_force": tif,
        "trigger_by": WORKING_TYPES[working],
        "reduce_only": flag(params, "reduceOnly"),
        "close_position": flag(params, "closePosition"),
        "stp_mode": params.get("selfTradePreventionMode", "NONE").upper(),
    }
    given = {
        "price": params.get("price"),
        "quantity": params.get("quantity"),
        "stop_price": params.get("stopPrice"),
        "callback_rate": params.get("callbackRate"),
        "activation_price": params.get("activationPrice") or params.get("activatePrice"),
        "client_order_id": params.get("newClientOrderId"),
    }
    fields |= {name: value for name, value in given.items() if value not in (None, "")}
    try:
        return PlaceOrderBody.model_validate(fields)
    except ValidationError as error:
        first = error.errors()[0]
        name = names.get(str(first["loc"][0]), str(first["loc"][0]))
        if first["type"] == "missing":
            raise mandatory(name) from None
        if first["type"] == "string_pattern_mismatch":
            raise illegal(name) from None
        raise not_valid(name) from None


def binance_refusal(error: ApiError, names: dict[str, str] = PARAMS) -> ApiError:
    """Re-word a refusal of the one validation path the way Binance words it: a price off the
    tick grid or out of bounds is PRICE_FILTER, a quantity off the lot grid LOT_SIZE, a missing
    field Binance's -1102 with Binance's name for it (``names``)."""
    field = error.field
    if error.code == codes.PRICE_ABOVE_MAX or (
        error.code == codes.INVALID_PARAM and field in PRICES
    ):
        return ApiError(400, codes.FILTER_LOT_SIZE, PRICE_FILTER)
    if error.code == codes.QTY_ABOVE_MAX or (
        error.code == codes.INVALID_PARAM and field == "quantity"
    ):
        return ApiError(400, codes.FILTER_LOT_SIZE, LOT_SIZE)
    if error.code == codes.MANDATORY_PARAM and field in names:
        return mandatory(names[field])
    return error


def engines_refusal(code: int | None, msg: str | None) -> ApiError:
    """An engine's rejection, in the words ccxt maps to the right exception."""
    code = code if code is not None else codes.NEW_ORDER_REJECTED
    worded = {
        codes.MARGIN_INSUFFICIENT: INSUFFICIENT,
        codes.FILTER_LOT_SIZE: LOT_SIZE,
        codes.UNKNOWN_ORDER: UNKNOWN_ORDER,
        codes.NO_NEED_TO_MODIFY: NO_NEED_TO_MODIFY,
    }
    return ApiError(400, code, worded.get(code) or msg or "New order rejected.")


def timed_out() -> ApiError:
    """Binance's answer when the engines did not answer in time: the request may yet be done."""
    return ApiError(503, codes.TIMEOUT, TIMEOUT_MSG)


def waiting(fields: dict[str, str]) -> bool:
    """Whether an order (``order:{id}``) is a conditional one still waiting for its trigger:
    Binance's open algo order, which its order lists do not show."""
    return (
        fields.get("order_type") in WAITS_FOR_TRIGGER
        and fields.get("triggered") != "1"
        and fields.get("status") in (OrderStatus.PENDING, OrderStatus.NEW)
        and int(fields.get("filled") or 0) == 0
    )


# --- the order object ---------------------------------------------------------------------

Executions = dict[int, tuple[int, int, int]]
"""order id -> (lots, ticks x lots, last time in ms) of the caller's fills the read model keeps."""


def executions(fills: list[dict]) -> Executions:
    done: Executions = {}
    for fill in fills:
        order_id, qty = int(fill["order_id"]), int(fill["qty"])
        lots, tick_lots, last = done.get(order_id, (0, 0, 0))
        at = int(fill.get("ts") or 0)
        done[order_id] = (lots + qty, tick_lots + int(fill["price"]) * qty, max(last, at))
    return done


def _average(spec: SymbolSpec, lots: int, tick_lots: int) -> str:
    """The average fill price: exact decimal division, shown to 8 places."""
    price = Decimal(spec.ticks_to_price(1)) * tick_lots / lots
    return format(price.quantize(Decimal("0.00000001")).normalize(), "f")


def order_object(
    spec: SymbolSpec,
    fields: dict[str, str],
    done: tuple[int, int, int] | None = None,
    **extra: Any,
) -> dict:
    """Binance's order object for an order as the read model holds it (``order:{id}``).
    ``done``: its fills (``executions``): avgPrice and cumQuote are "0" when the fills kept do
    not cover what it executed."""

    def ticks(name: str) -> str:
        text = fields.get(name) or ""
        return spec.ticks_to_price(int(text)) if text else "0"

    filled = int(fields.get("filled") or 0)
    kind = fields.get("order_type", "")
    created = int(fields.get("ts") or 0) // 1_000_000
    avg, cum, updated = "0", "0", created
    if done is not None and done[0] == filled and filled:
        avg = _average(spec, filled, done[1])
        cum = format_cash(done[1] * spec.cash_per_tick_lot)
        updated = max(created, done[2])
    shown_type = TYPE_NAMES.get(kind, kind.upper())
    if fields.get("triggered") == "1" and kind in TRIGGERED_AS:
        shown_type = TRIGGERED_AS[kind]
    executed = spec.lots_to_qty(filled)
    return {
        "orderId": int(fields["order_id"]),
        "symbol": binance_name(spec),
        "status": STATUSES.get(fields.get("status", ""), "NEW"),
        "clientOrderId": fields.get("client_order_id") or "",
        "price": ticks("price"),
        "avgPrice": avg,
        "origQty": spec.lots_to_qty(int(fields.get("qty") or 0)),
        "executedQty": executed,
        "cumQty": executed,
        "cumQuote": cum,
        "timeInForce": fields.get("tif") or "GTC",
        "type": shown_type,
        "origType": TYPE_NAMES.get(kind, kind.upper()),
        "reduceOnly": fields.get("reduce_only") == "1",
        "closePosition": False,
        "side": fields.get("side", "").upper(),
        "positionSide": "BOTH",
        "stopPrice": ticks("stop_price"),
        "workingType": "CONTRACT_PRICE",
        "priceProtect": False,
        "priceMatch": "NONE",
        "selfTradePreventionMode": "NONE",
        "goodTillDate": 0,
        "time": created,
        "updateTime": updated,
    } | extra


def as_stored(command: PlaceOrder, outcome: Outcome | None) -> dict[str, str]:
    """The ``order:{id}`` hash the projector will hold for a placement, from its command and
    what the engines answered (None: acknowledged only)."""
    status = outcome.status if outcome is not None else OrderStatus.NEW
    return {
        "order_id": str(outcome.order_id if outcome and outcome.order_id else command.order_id),
        "symbol": command.symbol,
        "side": str(command.side),
        "order_type": str(command.order_type),
        "tif": str(command.tif),
        "price": "" if command.price is None else str(command.price),
        "stop_price": "" if command.stop_price is None else str(command.stop_price),
        "qty": str(outcome.qty if outcome and outcome.qty else command.qty),
        "filled": str(outcome.filled if outcome else 0),
        "status": str(status),
        "reduce_only": "1" if command.reduce_only else "0",
        "client_order_id": command.client_order_id or "",
        "ts": str(command.ts),
    }


def asked(command: PlaceOrder) -> dict[str, Any]:
    """The fields of a new order that only its command knows (the read model keeps none)."""
    return {
        "closePosition": command.close_position,
        "workingType": "MARK_PRICE" if command.trigger_by == "mark" else "CONTRACT_PRICE",
        "selfTradePreventionMode": str(command.stp),
    }


async def done_of(gw: Gateway, caller: int, order_id: int) -> tuple[int, int, int] | None:
    return executions(await gw.reads.fills(caller, 500)).get(order_id)


def owner(gw: Gateway, caller: int, fields: dict[str, str] | None) -> SymbolSpec | None:
    if fields is None or int(fields.get("user_id", -1)) != caller:
        return None
    return gw.symbols.get(fields.get("symbol", ""))


# --- endpoints ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Settled:
    """A placement as it came out: the order (``order:{id}`` fields) on ``spec``, its fills,
    and, for a new order (not a retry's original), the fields only its command knows."""

    spec: SymbolSpec
    fields: dict[str, str]
    done: tuple[int, int, int] | None = None
    asked: dict[str, Any] | None = None

    def shown(self, render: Callable[..., dict], now_ms: int) -> dict:
        """The placement as ``render`` (``order_object``, an algo order's) shows it; a new
        order's ``updateTime`` no earlier than ``now_ms``."""
        if self.asked is None:
            return render(self.spec, self.fields, self.done)
        shown = render(self.spec, self.fields, self.done, **self.asked)
        shown["updateTime"] = max(shown["updateTime"], now_ms)
        return shown


async def settle(gw: Gateway, caller: int, spec: SymbolSpec, command: PlaceOrder) -> Settled:
    """Place a validated order by the original flow (``api.trading.place``) and wait for what
    matching did: the order, a retried client id's original, or Binance's refusal."""
    placed = await place(gw, caller, command)
    if placed.stored is not None:
        stored = placed.stored
        done = await done_of(gw, caller, int(stored["order_id"]))
        return Settled(gw.symbols[stored["symbol"]], stored, done)
    outcome = placed.outcome
    if outcome is None:
        if placed.pending != command.order_id:  # a retry whose original is still on its way
            return Settled(spec, as_stored(command, None) | {"order_id": str(placed.pending)})
        raise timed_out()
    if outcome.status == OrderStatus.REJECTED:
        raise engines_refusal(outcome.code, outcome.msg)
    done = await done_of(gw, caller, command.order_id) if outcome.filled else None
    return Settled(spec, as_stored(command, outcome), done, asked(command))


async def _new_order(gw: Gateway, caller: int, params: dict[str, str]) -> dict:
    """Place one order; return its order object or raise Binance's refusal."""
    spec = gw.binance.spec(params.get("symbol"))
    body = body_of(params, spec)
    try:
        command = to_command(body, spec, caller, gw)
    except ApiError as error:
        raise binance_refusal(error) from None
    respond = params.get("newOrderRespType", "ACK").upper()
    if respond not in ("ACK", "RESULT"):
        raise not_valid("newOrderRespType")
    if respond == "ACK":
        return await _acknowledged(gw, caller, spec, command)
    got = await settle(gw, caller, spec, command)
    return got.shown(order_object, gw.now_ns() // 1_000_000)


async def _acknowledged(gw: Gateway, caller: int, spec: SymbolSpec, command: PlaceOrder) -> dict:
    """ACK: answer once the log holds the order (the broker's acks=all), not after matching."""
    known = await retried(gw, caller, command)
    if known is not None and known.stored is not None:
        stored = known.stored
        return order_object(gw.symbols[stored["symbol"]], stored)
    if known is not None:
        return order_object(spec, as_stored(command, None) | {"order_id": str(known.pending)})
    coid = command.client_order_id
    if coid is not None:
        gw.placements.add(caller, coid, command.order_id)
    try:
        taken = await gw.send(caller, command)
    except ApiError:
        if coid is not None:
            gw.placements.lost(caller, coid, command.order_id)
        raise
    if not taken:
        raise timed_out()
    return order_object(spec, as_stored(command, None), **asked(command))


@router.post("/fapi/v1/order")
async def new_order(call: SignedCall, gw: Gw) -> dict:
    """Place an order (newOrderRespType ACK: once in the log; RESULT: after matching)."""
    return await _new_order(gw, call.user_id, call.params)


@router.post("/fapi/v1/batchOrders")
async def new_orders(call: SignedCall, gw: Gw) -> list[dict]:
    """Place up to 5 orders (``batchOrders``: a JSON list of new-order parameters), one after
    the other; each answer is an order object or Binance's ``{"code","msg"}``."""
    raw = call.params.get("batchOrders")
    if not raw:
        raise mandatory("batchOrders")
    try:
        orders = json.loads(raw)
    except ValueError:
        raise not_valid("batchOrders") from None
    if not isinstance(orders, list) or not 1 <= len(orders) <= 5:
        raise not_valid("batchOrders")
    answers: list[dict] = []
    for order in orders:
        if not isinstance(order, dict):
            answers.append({"code": codes.INVALID_PARAM, "msg": "Invalid order."})
            continue
        params = {
            str(k): str(v).lower() if isinstance(v, bool) else str(v) for k, v in order.items()
        }
        try:
            answers.append(await _new_order(gw, call.user_id, params))
        except ApiError as error:
            answers.append({"code": error.code, "msg": error.msg})
    return answers


async def _order_of(gw: Gateway, caller: int, params: dict[str, str]) -> tuple[SymbolSpec, dict]:
    """The caller's order named by orderId or origClientOrderId on ``symbol``, or -2013."""
    spec = gw.binance.spec(params.get("symbol"))
    order_id = number(params, "orderId")
    coid = params.get("origClientOrderId")
    if order_id is None and not coid:
        raise mandatory("orderId")
    fields = await gw.reads.named_order(caller, order_id, coid)
    if fields is None or owner(gw, caller, fields) is not spec:
        raise ApiError(400, codes.NO_SUCH_ORDER, NO_ORDER)
    return spec, fields


@router.get("/fapi/v1/order")
async def query_order(call: SignedCall, gw: Gw) -> dict:
    spec, fields = await _order_of(gw, call.user_id, call.params)
    return order_object(spec, fields, await done_of(gw, call.user_id, int(fields["order_id"])))


@router.put("/fapi/v1/order")
async def modify_order(call: SignedCall, gw: Gw) -> dict:
    """Change an open limit order's price and quantity (Binance's Modify Order) by the original
    amend flow; answer the order as it is once amended."""
    caller, params = call.user_id, call.params
    spec, fields = await _order_of(gw, caller, params)
    side = params.get("side")
    if not side:
        raise mandatory("side")
    if side.upper() not in SIDES:
        raise ApiError(400, codes.INVALID_SIDE, "Invalid side.")
    if side.lower() != fields.get("side"):
        raise not_valid("side")
    if params.get("priceMatch", "NONE").upper() != "NONE":
        raise not_valid("priceMatch")
    for name in ("quantity", "price"):
        if not params.get(name):
            raise mandatory(name)
    order_id = int(fields["order_id"])
    try:
        outcome = await amend_open(gw, caller, spec, order_id, params["price"], params["quantity"])
    except ApiError as error:
        raise binance_refusal(error) from None
    if outcome is None:
        raise timed_out()
    if outcome.status == OrderStatus.REJECTED:
        raise engines_refusal(outcome.code, outcome.msg)
    event = cast(OrderAmended, outcome.event)  # an amend is settled by its OrderAmended
    now = await gw.reads.order(order_id, caller)  # waits for the amend to show
    if now is not None and owner(gw, caller, now) is spec:
        fields = now
    amended = {"price": "" if event.price is None else str(event.price), "qty": str(event.qty)}
    shown = order_object(spec, fields | amended, await done_of(gw, caller, order_id))
    shown["updateTime"] = max(shown["updateTime"], gw.now_ns() // 1_000_000)
    return shown


@router.delete("/fapi/v1/order")
async def cancel_order(call: SignedCall, gw: Gw) -> dict:
    """Cancel an open order; answer it as it is once cancelled."""
    caller, params = call.user_id, call.params
    spec = gw.binance.spec(params.get("symbol"))
    order_id = number(params, "orderId")
    coid = params.get("origClientOrderId") or None
    if order_id is None and coid is None:
        raise mandatory("orderId")
    outcome = await cancel_open(gw, caller, spec, order_id, coid)
    if outcome is None:
        raise timed_out()
    if outcome.status == OrderStatus.REJECTED:
        raise engines_refusal(outcome.code, outcome.msg)
    cancelled = outcome.order_id or order_id or 0
    fields = await gw.reads.order(cancelled, caller)  # waits for the cancel to show
    if fields is None or owner(gw, caller, fields) is not spec:
        fields = {
            "order_id": str(cancelled),
            "qty": str(outcome.qty),
            "client_order_id": coid or "",
        }
    fields = fields | {"status": str(outcome.status), "filled": str(outcome.filled)}
    return order_object(spec, fields, await done_of(gw, caller, cancelled))


@router.delete("/fapi/v1/allOpenOrders")
async def cancel_all_orders(call: SignedCall, gw: Gw) -> dict:
    spec = gw.binance.spec(call.params.get("symbol"))
    outcome = await cancel_all_open(gw, call.user_id, spec)
    if outcome is None:
        raise timed_out()
    if outcome.status == OrderStatus.REJECTED:
        raise engines_refusal(outcome.code, outcome.msg)
    return CANCEL_ALL_DONE


async def _listed(gw: Gateway, caller: int, open_only: bool, spec: SymbolSpec | None) -> list:
    found = await gw.reads.orders(caller, open_only, 1000)
    done = executions(await gw.reads.fills(caller, 500))
    shown = []
    for fields in found:
        here = gw.symbols.get(fields.get("symbol", ""))
        if here is None or (spec is not None and here is not spec):
            continue
        if open_only and waiting(fields):  # an open algo order (``openAlgoOrders``)
            continue
        shown.append(order_object(here, fields, done.get(int(fields["order_id"]))))
    return sorted(shown, key=lambda o: o["orderId"])


@router.get("/fapi/v1/openOrders")
async def open_orders(call: SignedCall, gw: Gw) -> list[dict]:
    """The caller's open orders, on one symbol or all. Conditional orders waiting for their
    trigger are not among them (as on Binance): ``GET /fapi/v1/openAlgoOrders`` lists them."""
    name = call.params.get("symbol")
    spec = gw.binance.spec(name) if name else None
    return await _listed(gw, call.user_id, True, spec)


def window(
    params: dict[str, str],
    rows: list[dict],
    id_field: str,
    from_name: str,
    default: int = 500,
    time_field: str = "time",
) -> list:
    """Binance's paging of a history, oldest first: ids from ``from_name`` on, else the
    ``limit`` newest; ``startTime``/``endTime`` (ms) bound ``time_field``."""
    start, end = number(params, "startTime"), number(params, "endTime")
    first = number(params, from_name)
    limit = limit_of(params, default)
    rows = [
        row
        for row in rows
        if (start is None or row[time_field] >= start)
        and (end is None or row[time_field] <= end)
        and (first is None or row[id_field] >= first)
    ]
    return rows[:limit] if first is not None else rows[-limit:]


@router.get("/fapi/v1/allOrders")
async def all_orders(call: SignedCall, gw: Gw) -> list[dict]:
    """The caller's orders on a symbol (the read model keeps each user's last 1000)."""
    spec = gw.binance.spec(call.params.get("symbol"))
    return window(call.params, await _listed(gw, call.user_id, False, spec), "orderId", "orderId")


def trade_object(spec: SymbolSpec, fill: dict, realised_pnl: int = 0) -> dict:
    price, qty = int(fill["price"]), int(fill["qty"])
    return {
        "symbol": binance_name(spec),
        "id": int(fill["trade_id"]),
        "orderId": int(fill["order_id"]),
        "side": str(fill["side"]).upper(),
        "price": spec.ticks_to_price(price),
        "qty": spec.lots_to_qty(qty),
        "realizedPnl": format_cash(realised_pnl),
        "quoteQty": format_cash(spec.notional(price, qty)),
        "commission": format_cash(int(fill["fee"])),
        "commissionAsset": spec.quote,
        "time": int(fill.get("ts") or 0),
        "positionSide": "BOTH",
        "buyer": fill["side"] == "buy",
        "maker": bool(fill["maker"]),
    }


@router.get("/fapi/v1/userTrades")
async def user_trades(call: SignedCall, gw: Gw) -> list[dict]:
    """The caller's fills on a symbol, oldest first (the read model keeps the last 500), each
    with the PnL it realised (``realised_pnl:{user}``, found by the fill's time)."""
    spec = gw.binance.spec(call.params.get("symbol"))
    fills = [
        {**f, "trade_id": int(f["trade_id"]), "ts": int(f.get("ts") or 0)}
        for f in reversed(await gw.reads.fills(call.user_id, 500))
        if f.get("symbol") == spec.name
    ]
    fills = window(call.params, fills, "trade_id", "fromId", time_field="ts")
    if not fills:
        return []
    times = [f["ts"] for f in fills]
    pnl = await gw.reads.realised_pnl(call.user_id, min(times), max(times))
    return [trade_object(spec, f, pnl.get((spec.name, f["trade_id"]), 0)) for f in fills]
