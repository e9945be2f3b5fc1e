"""Orders: place, cancel, cancel-all, amend, and reading them back."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import partial
from typing import Annotated, Literal, cast

from fastapi import APIRouter, Path, Query
from fastapi.responses import JSONResponse

from libs import codes
from libs.messages import (
    LIMIT_PRICED,
    STOP_PRICED,
    AmendOrder,
    CancelAll,
    CancelOrder,
    OrderAmended,
    OrderStatus,
    OrderType,
    PlaceOrder,
    SelfTradePrevention,
    Side,
    TimeInForce,
    TriggerBy,
)
from libs.money import RATE_ONE, MoneyError, parse_rate
from libs.symbols import SymbolSpec
from services.gateway import views
from services.gateway.auth import Caller, same_user
from services.gateway.errors import ApiError, invalid, missing
from services.gateway.lean_route import LeanRoute
from services.gateway.replies import Kind, Outcome
from services.gateway.schemas import (
    AmendBody,
    CancelAllBody,
    CancelBody,
    OrderReply,
    PlaceOrderBody,
)
from services.gateway.state import Gateway, Gw

router = APIRouter(tags=["orders"], route_class=LeanRoute)

ORIGINAL_IN_MSG = re.compile(r"original order_id=(\d+)")
MAX_TICKS = 10**15  # bounds the other numbers; prices have the symbol's own (spec.max_price)
OrderId = Annotated[int, Path(ge=1, lt=2**63)]


def _parse(what: str, parse, text: str | None) -> int:
    try:
        value = parse(text)
    except MoneyError as error:
        raise invalid(f"{what}: {error}", what) from None
    if value > MAX_TICKS:
        raise invalid(f"{what} is too large.", what)
    return value


def _price(what: str, spec: SymbolSpec, text: str | None) -> int:
    """Parse a price; above ``spec.max_price`` an order could pass ``libs.money.MAX_NOTIONAL``."""
    value = _parse(what, spec.price_to_ticks, text)
    if value > spec.max_price:
        raise ApiError(
            400,
            codes.PRICE_ABOVE_MAX,
            f"{what} above the maximum {spec.ticks_to_price(spec.max_price)}.",
            field=what,
        )
    return value


def _leverage(value: int | str | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, str):
        # isdigit() is also true of superscripts (int() refuses them: a 500) and of other
        # scripts' digits (int() reads them); the API's numbers are ASCII
        if not (value.isascii() and value.isdigit()) or len(value) > 3:
            raise invalid("leverage must be a whole number from 1 to 125.")
        value = int(value)
    if not 1 <= value <= 125:
        raise invalid("leverage must be a whole number from 1 to 125.")
    return value


def to_command(body: PlaceOrderBody, spec: SymbolSpec, user_id: int, gw: Gateway) -> PlaceOrder:
    """Validate the body against the symbol's grids and build the request for the wallet."""
    kind = body.order_type  # the API's name, for the messages
    order_type = OrderType(views.TYPE_VALUES[kind])
    if body.quantity is None:
        if not body.close_position:
            raise missing("quantity", "quantity is required.")
        qty = 0
    else:
        qty = _parse("quantity", spec.qty_to_lots, body.quantity)
        if qty <= 0:
            raise invalid("quantity must be positive.", "quantity")
        if qty > spec.max_qty:
            raise ApiError(
                400,
                codes.QTY_ABOVE_MAX,
                f"quantity above the maximum {spec.lots_to_qty(spec.max_qty)}.",
                field="quantity",
            )
    price = None
    if order_type in LIMIT_PRICED:
        if body.price is None:
            raise missing("price", f"price is required for {kind} orders.")
        price = _price("price", spec, body.price)
        if price <= 0:
            raise invalid("price must be positive.", "price")
    stop_price = None
    if order_type in STOP_PRICED:
        if body.stop_price is None:
            raise missing("stop_price", f"stop_price is required for {kind}.")
        stop_price = _price("stop_price", spec, body.stop_price)
    callback_rate = activation_price = None
    if order_type is OrderType.TRAILING_STOP:
        if body.callback_rate is None:
            raise missing("callback_rate", "callback_rate is required (percent).")
        percent = _parse("callback_rate", parse_rate, body.callback_rate)
        callback_rate = percent // 100
        if percent % 100 or percent > 100 * RATE_ONE:
            raise invalid(
                "callback_rate is a percent from 0 to 100 with at most 6 decimals.", "callback_rate"
            )
        if body.activation_price is not None:
            activation_price = _price("activation_price", spec, body.activation_price)
    return PlaceOrder(
        request_id=gw.request_id(),
        order_id=gw.ids.next(),
        user_id=user_id,
        symbol=spec.name,
        side=Side.BUY if body.side == "Buy" else Side.SELL,
        order_type=order_type,
        qty=qty,
        price=price,
        tif=TimeInForce(body.time_in_force),
        leverage=_leverage(body.leverage),
        stop_price=stop_price,
        trigger_by=TriggerBy.MARK if body.trigger_by == "Mark" else TriggerBy.LAST,
        callback_rate=callback_rate,
        activation_price=activation_price,
        reduce_only=body.reduce_only,
        close_position=body.close_position,
        client_order_id=body.client_order_id,
        stp=SelfTradePrevention(body.stp_mode),
        ts=gw.now_ns(),
    )


def _reply(spec: SymbolSpec, outcome: Outcome, status_code: int = 200, **extra) -> JSONResponse:
    body = OrderReply(
        order_id=outcome.order_id or 0,
        status=outcome.status,
        filled=spec.lots_to_qty(outcome.filled),
        remaining=spec.lots_to_qty(outcome.remaining),
        symbol=spec.name,
        reason=outcome.reason,
        code=outcome.code,
        msg=outcome.msg,
        **extra,
    )
    return JSONResponse(body.model_dump(exclude_none=True), status_code)


def _pending(spec: SymbolSpec, order_id: int, command: PlaceOrder) -> JSONResponse:
    pending = Outcome(OrderStatus.PENDING, order_id, spec.name, command.qty)
    return _reply(spec, pending, 202, client_order_id=command.client_order_id)


def _stored_reply(gw: Gateway, fields: dict[str, str]) -> JSONResponse:
    """The order as the read model holds it, with the status code its first reply had."""
    view = views.order(gw.symbols[fields["symbol"]], fields)
    keep: tuple[str, ...] = (
        "order_id",
        "status",
        "filled",
        "remaining",
        "symbol",
        "client_order_id",
    )
    keep += ("reason", "code", "msg")
    status_code = {OrderStatus.PENDING: 202, OrderStatus.REJECTED: 400}.get(view["status"], 200)
    return JSONResponse({k: view[k] for k in keep if view[k] is not None}, status_code)


def _mine(gw: Gateway, caller: int, fields: dict[str, str] | None) -> dict[str, str] | None:
    if fields is None or int(fields.get("user_id", -1)) != caller:
        return None
    return fields if fields.get("symbol") in gw.symbols else None


def _original_id(outcome: Outcome) -> int | None:
    """The order holding the client order id of a -4015: the wallet names it in a field, the
    matcher (a second line of defence) only in its message."""
    if outcome.code != codes.DUPLICATE_CLIENT_ORDER_ID:
        return None
    original = getattr(outcome.event, "original_order_id", None)
    if original is None:
        found = ORIGINAL_IN_MSG.search(outcome.msg or "")
        original = int(found.group(1)) if found else None
    return original


@dataclass(frozen=True, slots=True)
class Placed:
    """What a placement came to: the engines' ``outcome`` (a rejection carries the new order's
    id and size), or the ``stored`` original order of a retried client order id, or neither
    yet: ``pending`` is then the id of the order to look for."""

    outcome: Outcome | None = None
    stored: dict[str, str] | None = None
    pending: int = 0


async def retried(gw: Gateway, caller: int, command: PlaceOrder) -> Placed | None:
    """Find the original of a retried client order id without asking: the read model, else
    this gateway's recent placements (the original may still be on its way); None if new."""
    coid = command.client_order_id
    if coid is None:
        return None
    stored = _mine(gw, caller, await gw.reads.order_by_client_id(caller, coid))
    if stored is not None:
        return Placed(stored=stored)
    original = gw.placements.get(caller, coid)
    if original is not None:
        return Placed(pending=original)
    return None


async def place(gw: Gateway, caller: int, command: PlaceOrder) -> Placed:
    """Put a validated order (``to_command``) in the log and wait for what matching did to it
    (or the reply timeout). A retry with a client order id used before comes to the original
    order, never a new one: from the read model, else this gateway's recent placements (the
    original may still be on its way). Shared by the original API and the Binance face."""
    coid = command.client_order_id
    on_lost = None
    if coid is not None:
        known = await retried(gw, caller, command)
        if known is not None:
            return known
        gw.placements.add(caller, coid, command.order_id)  # no await until it is produced
        on_lost = partial(gw.placements.lost, caller, coid, command.order_id)
    outcome = await gw.ask(caller, command, Kind.PLACE, on_lost)
    if outcome is None:
        if coid is not None:  # unanswered: the read model may know an original by now
            stored = _mine(gw, caller, await gw.reads.order_by_client_id(caller, coid))
            if stored is not None and int(stored["order_id"]) != command.order_id:
                gw.placements.original(caller, coid, int(stored["order_id"]))
                return Placed(stored=stored)
        return Placed(pending=command.order_id)
    if outcome.status != OrderStatus.REJECTED:
        return Placed(outcome=outcome)
    original = _original_id(outcome)
    if coid is not None and original is not None:  # a retry: the original, Pending if unread
        gw.placements.original(caller, coid, original)
        stored = _mine(gw, caller, await gw.reads.order(original))
        if stored is not None:
            return Placed(stored=stored)
        return Placed(pending=original)
    outcome.order_id, outcome.qty = command.order_id, command.qty
    return Placed(outcome=outcome)


@router.post("/place_order", response_model=OrderReply)
async def place_order(body: PlaceOrderBody, caller: Caller, gw: Gw) -> JSONResponse:
    """Place an order; the reply tells what matching did to it (or Pending after 2 s). A retry
    with a client order id used before answers the original order, never a new one."""
    same_user(caller, body.user_id)
    spec = gw.symbol(body.symbol)
    command = to_command(body, spec, caller, gw)
    placed = await place(gw, caller, command)
    if placed.stored is not None:
        return _stored_reply(gw, placed.stored)
    outcome = placed.outcome
    if outcome is None:
        return _pending(spec, placed.pending, command)
    status_code = 400 if outcome.status == OrderStatus.REJECTED else 200
    return _reply(spec, outcome, status_code, client_order_id=command.client_order_id)


async def _owned_order(gw: Gateway, caller: int, order_id: int | None, coid: str | None):
    """Return the caller's order from the read model, or raise 404 (also for others' orders)."""
    if order_id is None and coid is None:
        raise ApiError(400, codes.MANDATORY_PARAM, "Send order_id or client_order_id.")
    fields = await gw.reads.named_order(caller, order_id, coid)
    if fields is None or int(fields.get("user_id", -1)) != caller:
        raise ApiError(404, codes.NO_SUCH_ORDER, "Order does not exist.")
    return fields


@router.post("/cancel", response_model=OrderReply)
async def cancel(body: CancelBody, caller: Caller, gw: Gw) -> JSONResponse:
    same_user(caller, body.user_id)
    symbol, order_id = body.symbol, body.order_id
    if symbol is None or (order_id is None and body.client_order_id is None):
        fields = await _owned_order(gw, caller, order_id, body.client_order_id)
        symbol, order_id = fields["symbol"], int(fields["order_id"])
    spec = gw.symbol(symbol)
    outcome = await cancel_open(gw, caller, spec, order_id, body.client_order_id)
    if outcome is None:
        return _reply(spec, Outcome(OrderStatus.PENDING, order_id, spec.name), 202)
    if outcome.status == OrderStatus.REJECTED:
        return JSONResponse({"code": outcome.code, "msg": outcome.msg}, 400)
    return _reply(spec, outcome)


async def cancel_open(
    gw: Gateway, caller: int, spec: SymbolSpec, order_id: int | None, coid: str | None = None
) -> Outcome | None:
    """Cancel one of the caller's orders on a symbol, by id, else by client order id: the
    engines' outcome, None while unanswered. Shared by the original API and the Binance face."""
    command = CancelOrder(
        request_id=gw.request_id(),
        user_id=caller,
        symbol=spec.name,
        order_id=order_id,
        client_order_id=coid if order_id is None else None,
        ts=gw.now_ns(),
    )
    return await gw.ask(caller, command, Kind.CANCEL)


async def cancel_all_open(gw: Gateway, caller: int, spec: SymbolSpec) -> Outcome | None:
    """Cancel the caller's open orders (and untriggered stops) on a symbol: the engines'
    outcome (Done with nothing cancelled when nothing was open), None while unanswered."""
    command = CancelAll(
        request_id=gw.request_id(), user_id=caller, symbol=spec.name, ts=gw.now_ns()
    )
    open_here = [o for o in await gw.reads.orders(caller, True, 1000) if o["symbol"] == spec.name]
    if not open_here:  # nothing to wait for: the matcher answers a no-op with silence
        if not await gw.send(caller, command):
            return None
        return Outcome(OrderStatus.DONE, symbol=spec.name)
    return await gw.ask(caller, command, Kind.CANCEL_ALL)


@router.post("/cancel_all")
async def cancel_all(body: CancelAllBody, caller: Caller, gw: Gw) -> JSONResponse:
    """Cancel the caller's open orders (and untriggered stops) on a symbol."""
    same_user(caller, body.user_id)
    spec = gw.symbol(body.symbol)
    outcome = await cancel_all_open(gw, caller, spec)
    if outcome is None:
        return JSONResponse(
            {"symbol": spec.name, "status": OrderStatus.PENDING, "cancelled": []}, 202
        )
    if outcome.status == OrderStatus.REJECTED:
        return JSONResponse({"code": outcome.code, "msg": outcome.msg}, 400)
    cancelled = [
        {
            "order_id": e.order_id,
            "filled": spec.lots_to_qty(e.filled),
            "remaining": spec.lots_to_qty(e.remaining),
        }
        for e in outcome.cancelled
    ]
    return JSONResponse({"symbol": spec.name, "status": OrderStatus.DONE, "cancelled": cancelled})


async def amend_open(
    gw: Gateway,
    caller: int,
    spec: SymbolSpec,
    order_id: int,
    price: str | None,
    quantity: str | None,
) -> Outcome | None:
    """Validate a new price and/or quantity for the caller's open order on the symbol's grids
    and ask the matcher to amend it: the engines' outcome (settled by ``OrderAmended``, or a
    rejection), None while unanswered. Shared by the original API and the Binance face."""
    ticks = None if price is None else _price("price", spec, price)
    lots = None if quantity is None else _parse("quantity", spec.qty_to_lots, quantity)
    command = AmendOrder(
        request_id=gw.request_id(),
        user_id=caller,
        symbol=spec.name,
        order_id=order_id,
        price=ticks,
        qty=lots,
        ts=gw.now_ns(),
    )
    return await gw.ask(caller, command, Kind.AMEND)


@router.post("/amend")
async def amend(body: AmendBody, caller: Caller, gw: Gw) -> JSONResponse:
    """Change an open order's price and/or quantity (it keeps its place only if qty shrinks)."""
    same_user(caller, body.user_id)
    if body.price is None and body.quantity is None:
        raise ApiError(400, codes.MANDATORY_PARAM, "Send price and/or quantity.")
    fields = await _owned_order(gw, caller, body.order_id, None)
    spec = gw.symbol(fields["symbol"])
    outcome = await amend_open(gw, caller, spec, body.order_id, body.price, body.quantity)
    if outcome is None:
        return JSONResponse({"order_id": body.order_id, "status": OrderStatus.PENDING}, 202)
    if outcome.status == OrderStatus.REJECTED:
        return JSONResponse({"code": outcome.code, "msg": outcome.msg}, 400)
    event = cast(OrderAmended, outcome.event)  # an amend is settled by its OrderAmended
    return JSONResponse(
        {
            "order_id": event.order_id,
            "status": "Amended",
            "price": views.price_or_none(spec, event.price),
            "quantity": spec.lots_to_qty(event.qty),
            "kept_priority": event.kept_priority,
        }
    )


@router.get("/orders")
async def list_orders(
    caller: Caller,
    gw: Gw,
    symbol: str | None = Query(None, max_length=32),
    status: Literal["open", "all"] = "open",
    limit: int = Query(100, ge=1, le=1000),
) -> list[dict]:
    """The caller's open orders (default) or most recent orders, newest first."""
    if symbol is not None:
        gw.symbol(symbol)
    found = await gw.reads.orders(caller, status == "open", 1000 if symbol else limit)
    shown = [
        views.order(gw.symbols[o["symbol"]], o)
        for o in found
        if o.get("symbol") in gw.symbols and (symbol is None or o["symbol"] == symbol)
    ]
    return shown[:limit]


@router.get("/orders/{order_id}")
async def get_order(order_id: OrderId, caller: Caller, gw: Gw) -> dict:
    fields = await _owned_order(gw, caller, order_id, None)
    return views.order(gw.symbol(fields["symbol"]), fields)


@router.get("/orders/client/{client_order_id}")
async def get_order_by_client_id(
    client_order_id: Annotated[str, Path(pattern=r"^[A-Za-z0-9._:\-]{1,36}$")],
    caller: Caller,
    gw: Gw,
) -> dict:
    fields = await _owned_order(gw, caller, None, client_order_id)
    return views.order(gw.symbol(fields["symbol"]), fields)


@router.get("/fills")
async def list_fills(caller: Caller, gw: Gw, limit: int = Query(100, ge=1, le=500)) -> list[dict]:
    """The caller's most recent fills, newest first, with the fee charged on each."""
    return [
        views.fill(gw.symbols[f["symbol"]], f)
        for f in await gw.reads.fills(caller, limit)
        if f.get("symbol") in gw.symbols
    ]
