"""Balances, positions, leverage, and money in and out."""

from __future__ import annotations

from typing import cast

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from libs import codes
from libs.messages import AccountUpdated, Deposit, OrderStatus, SetLeverage, Withdraw
from libs.money import MAX_TRANSFER, MoneyError, format_cash, parse_cash
from libs.symbols import SymbolSpec
from services.gateway import views
from services.gateway.auth import Caller, same_user
from services.gateway.errors import ApiError, invalid
from services.gateway.replies import Kind, Outcome
from services.gateway.schemas import AmountBody, LeverageBody
from services.gateway.state import Gateway, Gw

router = APIRouter(tags=["account"])


def _amount(body: AmountBody) -> int:
    try:
        amount = parse_cash(body.amount)
    except MoneyError as error:
        raise invalid(str(error)) from None
    if amount <= 0:
        raise invalid("amount must be positive.")
    if amount > MAX_TRANSFER:  # the wallet checks it too, and the balance limits
        raise invalid(f"amount above the maximum {format_cash(MAX_TRANSFER)}.")
    return amount


@router.get("/account")
async def account(caller: Caller, gw: Gw) -> dict:
    """Wallet balance, margin held by open orders and positions, and what is available."""
    fields, leverage = await gw.reads.account(caller)
    return views.account(fields, leverage)


@router.get("/positions")
async def positions(caller: Caller, gw: Gw) -> list[dict]:
    held = await gw.reads.positions(caller)
    return [
        views.position(gw.symbols[s], view) for s, view in sorted(held.items()) if s in gw.symbols
    ]


@router.post("/deposit")
async def deposit(body: AmountBody, caller: Caller, gw: Gw) -> JSONResponse:
    """The dev faucet: credit USDT from nowhere. Off (403) when GATEWAY faucet is disabled."""
    same_user(caller, body.user_id)
    if not gw.settings.faucet_enabled:
        raise ApiError(403, codes.FORBIDDEN, "Deposits through the faucet are switched off.")
    command = Deposit(
        request_id=gw.request_id(), user_id=caller, amount=_amount(body), ts=gw.now_ns()
    )
    outcome = await gw.ask(caller, command, Kind.DEPOSIT)
    if outcome is None:
        return JSONResponse({"status": OrderStatus.PENDING, "amount": body.amount}, 202)
    if outcome.status == OrderStatus.REJECTED:
        return JSONResponse({"code": outcome.code, "msg": outcome.msg}, 400)
    event = cast(AccountUpdated, outcome.event)  # a deposit is settled by its AccountUpdated
    return JSONResponse(
        {
            "status": OrderStatus.DONE,
            "asset": "USDT",
            "amount": format_cash(command.amount),
            "balance": format_cash(event.balance),
            "available": format_cash(event.available),
        }
    )


@router.post("/withdraw")
async def withdraw(body: AmountBody, caller: Caller, gw: Gw) -> JSONResponse:
    """Send USDT out; refused when what stays would not cover positions and open orders."""
    same_user(caller, body.user_id)
    command = Withdraw(
        request_id=gw.request_id(), user_id=caller, amount=_amount(body), ts=gw.now_ns()
    )
    outcome = await gw.ask(caller, command, Kind.WITHDRAW)
    if outcome is None:
        return JSONResponse({"status": OrderStatus.PENDING, "amount": body.amount}, 202)
    if outcome.status == OrderStatus.REJECTED:
        return JSONResponse({"code": outcome.code, "msg": outcome.msg}, 400)
    return JSONResponse(
        {"status": OrderStatus.DONE, "asset": "USDT", "amount": format_cash(command.amount)}
    )


async def set_leverage(gw: Gateway, caller: int, spec: SymbolSpec, leverage: int) -> Outcome | None:
    """Ask the wallet to set the caller's leverage on a symbol: its answer, None while
    unanswered. Shared by the original API and the Binance face."""
    command = SetLeverage(
        request_id=gw.request_id(),
        user_id=caller,
        symbol=spec.name,
        leverage=leverage,
        ts=gw.now_ns(),
    )
    return await gw.ask(caller, command, Kind.LEVERAGE)


@router.post("/leverage")
async def leverage(body: LeverageBody, caller: Caller, gw: Gw) -> JSONResponse:
    same_user(caller, body.user_id)
    spec = gw.symbol(body.symbol)
    outcome = await set_leverage(gw, caller, spec, body.leverage)
    if outcome is None:
        return JSONResponse({"status": OrderStatus.PENDING, "symbol": spec.name}, 202)
    if outcome.status == OrderStatus.REJECTED:
        return JSONResponse({"code": outcome.code, "msg": outcome.msg}, 400)
    return JSONResponse(
        {"status": OrderStatus.DONE, "symbol": spec.name, "leverage": body.leverage}
    )
