"""The Binance face's account endpoints: balances, positions, leverage and the account's modes.

Balances and positions are the same read-model reads as the original API's ``/account`` and
``/positions`` (with the same read-your-writes waits), shaped as Binance's. Every account here
is cross margin, one-way, USDT only: the fields of isolated margin and of hedge mode are
constants. docs/BINANCE-API-SIGNED.md lists the fields.
"""

from __future__ import annotations

from decimal import Decimal

from fastapi import APIRouter, Request
from pydantic import ValidationError

from libs import codes
from libs.messages import OrderStatus
from libs.money import format_cash, format_rate
from libs.perpetual import ceil_div
from libs.symbols import SymbolSpec
from services.gateway.api.account import set_leverage
from services.gateway.binance.names import binance_name, mandatory, not_valid
from services.gateway.binance.orders import (
    engines_refusal,
    flag,
    limit_of,
    number,
    timed_out,
)
from services.gateway.binance.signed import SignedCall
from services.gateway.errors import ApiError
from services.gateway.schemas import LeverageBody
from services.gateway.state import Gateway, Gw

router = APIRouter(tags=["binance"])

SUCCESS = {"code": 200, "msg": "success"}


class Account:
    """One user's account and positions as the read model shows them (integers)."""

    def __init__(
        self,
        gw: Gateway,
        fields: dict[str, str],
        leverage: dict[str, int],
        held: dict[str, dict[str, int]],
        now_ms: int,
    ) -> None:
        def cash(name: str) -> int:
            return int(fields.get(name) or 0)

        self.balance, self.holds, self.available = cash("balance"), cash("holds"), cash("available")
        self.margin, self.upnl = cash("margin"), cash("upnl")
        self.leverage = {
            s: leverage.get(s, spec.default_leverage) for s, spec in gw.symbols.items()
        }
        self.held = {s: view for s, view in held.items() if s in gw.symbols}
        self.specs = gw.symbols
        self.now_ms = now_ms

    def notional(self, symbol: str) -> int:
        """The position's signed notional at its mark (cash)."""
        view = self.held[symbol]
        return self.specs[symbol].notional(view["mark"], abs(view["size"])) * (
            1 if view["size"] > 0 else -1
        )

    def initial(self, symbol: str) -> int:
        """The wallet's initial margin of a position: notional at mark / leverage, rounded up."""
        return ceil_div(abs(self.notional(symbol)), self.leverage[symbol])

    def maintenance(self, symbol: str) -> int:
        return self.specs[symbol].maintenance_margin(abs(self.notional(symbol)))

    @property
    def maint_total(self) -> int:
        return sum(self.maintenance(s) for s in self.held)

    @property
    def withdrawable(self) -> int:
        """What may leave: as available, but unrealised profit does not count."""
        return max(
            0, min(self.available, self.balance + min(self.upnl, 0) - self.margin - self.holds)
        )

    def totals(self) -> dict:
        return {
            "totalInitialMargin": format_cash(self.margin + self.holds),
            "totalMaintMargin": format_cash(self.maint_total),
            "totalWalletBalance": format_cash(self.balance),
            "totalUnrealizedProfit": format_cash(self.upnl),
            "totalMarginBalance": format_cash(self.balance + self.upnl),
            "totalPositionInitialMargin": format_cash(self.margin),
            "totalOpenOrderInitialMargin": format_cash(self.holds),
            "totalCrossWalletBalance": format_cash(self.balance),
            "totalCrossUnPnl": format_cash(self.upnl),
            "availableBalance": format_cash(self.available),
            "maxWithdrawAmount": format_cash(self.withdrawable),
        }

    def asset(self) -> dict:
        return {
            "asset": "USDT",
            "walletBalance": format_cash(self.balance),
            "unrealizedProfit": format_cash(self.upnl),
            "marginBalance": format_cash(self.balance + self.upnl),
            "maintMargin": format_cash(self.maint_total),
            "initialMargin": format_cash(self.margin + self.holds),
            "positionInitialMargin": format_cash(self.margin),
            "openOrderInitialMargin": format_cash(self.holds),
            **self._cross(),
        }

    def balance_row(self) -> dict:
        return {
            "accountAlias": "",
            "asset": "USDT",
            "balance": format_cash(self.balance),
            **self._cross(),
        }

    def _cross(self) -> dict:
        """The fields an account's asset and its balance row share."""
        return {
            "crossWalletBalance": format_cash(self.balance),
            "crossUnPnl": format_cash(self.upnl),
            "availableBalance": format_cash(self.available),
            "maxWithdrawAmount": format_cash(self.withdrawable),
            "marginAvailable": True,
            "updateTime": self.now_ms,
        }

    def position(self, symbol: str, mark: str | None = None) -> dict:
        """Binance's position-risk fields of a symbol (zeros without a position; ``mark``:
        the symbol's mark in ticks then)."""
        spec = self.specs[symbol]
        view = self.held.get(symbol)
        if view is None:
            return {
                "symbol": binance_name(spec),
                "positionSide": "BOTH",
                "positionAmt": spec.lots_to_qty(0),
                "entryPrice": "0",
                "breakEvenPrice": "0",
                "markPrice": spec.ticks_to_price(int(mark)) if mark else "0",
                "unRealizedProfit": "0",
                "liquidationPrice": "0",
                "notional": "0",
                "initialMargin": "0",
                "maintMargin": "0",
                "updateTime": 0,
            }
        size = view["size"]

        def price(name: str) -> str:
            return spec.ticks_to_price(view[name]) if view[name] else "0"

        return {
            "symbol": binance_name(spec),
            "positionSide": "BOTH",
            "positionAmt": ("-" if size < 0 else "") + spec.lots_to_qty(abs(size)),
            "entryPrice": price("entry_price"),
            "breakEvenPrice": price("break_even"),
            "markPrice": price("mark"),
            "unRealizedProfit": format_cash(view["upnl"]),
            "liquidationPrice": price("liq_price"),
            "notional": format_cash(self.notional(symbol)),
            "initialMargin": format_cash(self.initial(symbol)),
            "maintMargin": format_cash(self.maintenance(symbol)),
            "updateTime": self.now_ms,
        }


async def account_of(gw: Gateway, caller: int) -> Account:
    """The original API's ``/account`` and ``/positions`` reads, in that order."""
    fields, leverage = await gw.reads.account(caller)
    held = await gw.reads.positions(caller)
    return Account(gw, fields, leverage, held, gw.now_ns() // 1_000_000)


def max_notional(spec: SymbolSpec, leverage: int) -> int:
    """The largest position (cash) that ``leverage`` allows: the cap of the last bracket
    whose maximum leverage is at least it."""
    allowed = [b for b in spec.brackets if b.max_leverage >= leverage] or [spec.brackets[0]]
    return allowed[-1].cap


def _cross_fields(account: Account, symbol: str) -> dict:
    """The fields every position here has the same value of: cross, one-way, no isolated wallet."""
    return {
        "marginType": "cross",
        "isolatedMargin": "0",
        "isolatedWallet": "0",
        "marginAsset": "USDT",
        "positionInitialMargin": account.position(symbol)["initialMargin"],
        "openOrderInitialMargin": "0",
        "bidNotional": "0",
        "askNotional": "0",
    }


def _symbols(gw: Gateway, params: dict[str, str]) -> list[str]:
    name = params.get("symbol")
    return [gw.binance.spec(name).name] if name else list(gw.symbols)


@router.get("/fapi/v2/account")
async def account_v2(call: SignedCall, gw: Gw) -> dict:
    """The USDT asset, the totals, and a row for every symbol (Binance's v2)."""
    account = await account_of(gw, call.user_id)
    positions = []
    for symbol, spec in gw.symbols.items():
        row = account.position(symbol)
        lev = account.leverage[symbol]
        positions.append(
            {
                "symbol": row["symbol"],
                "initialMargin": row["initialMargin"],
                "maintMargin": row["maintMargin"],
                "unrealizedProfit": row["unRealizedProfit"],
                "positionInitialMargin": row["initialMargin"],
                "openOrderInitialMargin": "0",
                "leverage": str(lev),
                "isolated": False,
                "entryPrice": row["entryPrice"],
                "breakEvenPrice": row["breakEvenPrice"],
                "maxNotional": format_cash(max_notional(spec, lev)),
                "bidNotional": "0",
                "askNotional": "0",
                "positionSide": "BOTH",
                "positionAmt": row["positionAmt"],
                "updateTime": row["updateTime"],
            }
        )
    return {
        "feeTier": 0,
        "canTrade": True,
        "canDeposit": True,
        "canWithdraw": True,
        "updateTime": 0,
        "multiAssetsMargin": False,
        "tradeGroupId": -1,
        **account.totals(),
        "assets": [account.asset()],
        "positions": positions,
    }


@router.get("/fapi/v3/account")
async def account_v3(call: SignedCall, gw: Gw) -> dict:
    """The USDT asset, the totals, and the open positions (Binance's v3)."""
    account = await account_of(gw, call.user_id)
    positions = []
    for symbol in sorted(account.held):
        row = account.position(symbol)
        positions.append(
            {
                "symbol": row["symbol"],
                "positionSide": "BOTH",
                "positionAmt": row["positionAmt"],
                "unrealizedProfit": row["unRealizedProfit"],
                "isolatedMargin": "0",
                "notional": row["notional"],
                "isolatedWallet": "0",
                "initialMargin": row["initialMargin"],
                "maintMargin": row["maintMargin"],
                "updateTime": row["updateTime"],
            }
        )
    return {**account.totals(), "assets": [account.asset()], "positions": positions}


@router.get("/fapi/v2/balance")
@router.get("/fapi/v3/balance")
async def balance(call: SignedCall, gw: Gw) -> list[dict]:
    fields, leverage = await gw.reads.account(call.user_id)
    return [Account(gw, fields, leverage, {}, gw.now_ns() // 1_000_000).balance_row()]


@router.get("/fapi/v2/positionRisk")
async def position_risk_v2(call: SignedCall, gw: Gw) -> list[dict]:
    """Every symbol (or the one asked), open or not, as Binance's v2 answers."""
    wanted = _symbols(gw, call.params)
    account = await account_of(gw, call.user_id)
    rows = []
    for symbol in wanted:
        mark = None if symbol in account.held else (await gw.reads.mark(symbol)).get("mark")
        lev = account.leverage[symbol]
        rows.append(
            account.position(symbol, mark)
            | _cross_fields(account, symbol)
            | {
                "leverage": str(lev),
                "maxNotionalValue": format_cash(max_notional(gw.symbols[symbol], lev)),
                "isAutoAddMargin": "false",
            }
        )
    return rows


@router.get("/fapi/v3/positionRisk")
async def position_risk_v3(call: SignedCall, gw: Gw) -> list[dict]:
    """The open positions (of the symbol asked), as Binance's v3 answers."""
    wanted = _symbols(gw, call.params)
    account = await account_of(gw, call.user_id)
    return [
        account.position(symbol) | _cross_fields(account, symbol) | {"adl": 0}
        for symbol in wanted
        if symbol in account.held
    ]


@router.post("/fapi/v1/leverage")
async def change_leverage(call: SignedCall, gw: Gw) -> dict:
    """Set the caller's leverage on a symbol through the original API's flow."""
    spec = gw.binance.spec(call.params.get("symbol"))
    text = call.params.get("leverage")
    if not text:
        raise mandatory("leverage")
    try:
        body = LeverageBody.model_validate({"symbol": spec.name, "leverage": text})
    except ValidationError:
        raise ApiError(400, codes.INVALID_LEVERAGE, f"Leverage {text[:8]} is not valid") from None
    outcome = await set_leverage(gw, call.user_id, spec, body.leverage)
    if outcome is None:
        raise timed_out()
    if outcome.status == OrderStatus.REJECTED:
        raise engines_refusal(outcome.code, outcome.msg)
    return {
        "leverage": body.leverage,
        "maxNotionalValue": format_cash(max_notional(spec, body.leverage)),
        "symbol": binance_name(spec),
    }


def _number(text: str) -> int | float:
    """A config value as Binance's JSON number: exact when whole (display only, not money)."""
    value = Decimal(text)
    return int(value) if value == value.to_integral_value() else float(value)


def brackets_of(spec: SymbolSpec) -> dict:
    return {
        "symbol": binance_name(spec),
        "notionalCoef": 1.0,
        "brackets": [
            {
                "bracket": n,
                "initialLeverage": b.max_leverage,
                "notionalCap": _number(format_cash(b.cap)),
                "notionalFloor": _number(format_cash(b.floor)),
                "maintMarginRatio": _number(format_rate(b.mmr)),
                "cum": _number(format_cash(b.cum)),
            }
            for n, b in enumerate(spec.brackets, start=1)
        ],
    }


@router.get("/fapi/v1/leverageBracket")
async def leverage_brackets(call: SignedCall, gw: Gw) -> list[dict] | dict:
    """The maintenance-margin brackets of libs/symbols.toml: every symbol's, or (``symbol``
    sent) the one symbol's object, as Binance answers."""
    name = call.params.get("symbol")
    if name:
        return brackets_of(gw.binance.spec(name))
    return [brackets_of(spec) for spec in gw.symbols.values()]


@router.get("/fapi/v1/positionSide/dual")
async def position_mode(call: SignedCall) -> dict:
    """Positions are one-way here."""
    return {"dualSidePosition": False}


@router.post("/fapi/v1/positionSide/dual")
async def change_position_mode(call: SignedCall) -> dict:
    """One-way is the only mode: asking for it is Binance's no-change, hedge mode is refused."""
    if "dualSidePosition" not in call.params:
        raise mandatory("dualSidePosition")
    if flag(call.params, "dualSidePosition"):
        raise ApiError(
            400,
            codes.INVALID_PARAM,
            "Hedge mode is not supported: positions are one-way (dualSidePosition=false).",
        )
    raise ApiError(400, codes.NO_POSITION_SIDE_CHANGE, "No need to change position side.")


@router.post("/fapi/v1/marginType")
async def change_margin_type(call: SignedCall, gw: Gw, request: Request) -> dict:
    """Cross is the only margin type: CROSSED is accepted (Binance's -4046 when this gateway
    already accepted it for the caller and symbol), ISOLATED is refused."""
    spec = gw.binance.spec(call.params.get("symbol"))
    kind = call.params.get("marginType", "").upper()
    if not kind:
        raise mandatory("marginType")
    if kind == "ISOLATED":
        raise ApiError(
            400,
            codes.ISOLATED_REFUSED,
            "Isolated margin is not supported: every position is cross.",
        )
    if kind != "CROSSED":
        raise not_valid("marginType")
    accepted: set[tuple[int, str]] = getattr(request.app.state, "binance_crossed", set())
    request.app.state.binance_crossed = accepted
    if (call.user_id, spec.name) in accepted:
        raise ApiError(400, codes.NO_MARGIN_TYPE_CHANGE, "No need to change margin type.")
    if len(accepted) < 100_000:  # a memory of courtesy, bounded: either answer means cross
        accepted.add((call.user_id, spec.name))
    return SUCCESS


INCOME_TYPES = ("REALIZED_PNL", "COMMISSION", "FUNDING_FEE", "INSURANCE_CLEAR")
"""The income types the read model keeps (``income:{user}``); others are never there."""
RECENT_MS = 7 * 24 * 3600 * 1000
"""Without ``startTime`` and ``endTime``, Binance answers from the last 7 days."""


@router.get("/fapi/v1/income")
async def income(call: SignedCall, gw: Gw) -> list[dict]:
    """The caller's income rows (the read model keeps the newest 1000), oldest first: from
    ``startTime`` on when it is given, else the newest ones up to ``endTime`` (or now, within
    the last 7 days when neither is given); ``page`` (from 1) pages on in that direction."""
    params = call.params
    name = params.get("symbol")
    spec = gw.binance.spec(name) if name else None
    kind = params.get("incomeType") or None
    start, end = number(params, "startTime"), number(params, "endTime")
    limit = limit_of(params, 100)
    page = number(params, "page", 1)
    if page is None or page < 1:
        raise not_valid("page")
    if kind is not None and kind not in INCOME_TYPES:
        return []
    if start is None and end is None:
        end = gw.now_ns() // 1_000_000
        start_ms, newest_first = end - RECENT_MS, True
    else:
        start_ms, newest_first = start or 0, start is None
    end_ms = end if end is not None else 2**63 - 1
    if start_ms > end_ms:
        return []
    rows = [
        row
        for row in await gw.reads.income(call.user_id, start_ms, end_ms)
        if (kind is None or row["incomeType"] == kind)
        and (spec is None or row["symbol"] == spec.name)
        and row["symbol"] in gw.symbols
    ]
    first, stop = (page - 1) * limit, page * limit
    if newest_first:  # pages count back from the newest row
        first, stop = max(len(rows) - stop, 0), max(len(rows) - first, 0)
    return [income_object(gw.symbols[row["symbol"]], row) for row in rows[first:stop]]


def income_object(spec: SymbolSpec, row: dict) -> dict:
    """A ``GET /fapi/v1/income`` row from an ``income:{user}`` member."""
    return {
        "symbol": binance_name(spec),
        "incomeType": row["incomeType"],
        "income": format_cash(int(row["income"])),
        "asset": "USDT",
        "info": row["incomeType"],
        "time": int(row["time"]),
        "tranId": int(row["tranId"]),
        "tradeId": str(row["tradeId"]),
    }
