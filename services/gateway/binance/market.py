"""The Binance face's public endpoints: Binance USDⓈ-M's market data from the read model.

Binance's paths, parameter names and response fields (docs/BINANCE-API.md, "Public
endpoints"); prices and quantities are decimal strings on the contract's grid, times ms.
A value the exchange does not know yet (no trade, no mark, an empty side of the book) reads
as zero, as Binance shows a symbol that has not traded. Plus the two wallet calls ccxt's
``load_markets`` makes with credentials, so ccxt needs nothing but ``urls.api`` changed.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from libs import codes
from libs.money import CASH_SCALE, RATE_ONE, RATE_SCALE, format_cash, format_rate, format_units
from libs.read_model.keys import TRADES_KEPT
from libs.symbols import SymbolSpec
from services.gateway.binance.names import binance_name, integer, not_valid
from services.gateway.binance.signed import SignedCall
from services.gateway.errors import ApiError
from services.gateway.state import Gateway, Gw

router = APIRouter(tags=["binance"])

DEPTH_LIMITS = (5, 10, 20, 50, 100, 500, 1000)
DEFAULT_LIMIT = 500
MAX_LIMIT = 1000
AGG_TRADES_SPAN_MS = 3_600_000
"""Binance's widest ``startTime``..``endTime`` of one aggTrades call: an hour."""

PERPETUAL_DELIVERY_MS = 4_133_404_800_000
"""Binance's delivery date of a perpetual (2100-12-25), which ccxt also reads as one."""
ONBOARD_DATE_MS = 0
"""No listing date is kept: every contract is listed from the start."""
BASE_ASSET_PRECISION = 8
"""As Binance: no base asset is held here (positions are in lots), so nothing depends on it."""
ORDER_TYPES = [
    "LIMIT",
    "MARKET",
    "STOP",
    "STOP_MARKET",
    "TAKE_PROFIT",
    "TAKE_PROFIT_MARKET",
    "TRAILING_STOP_MARKET",
]
TIME_IN_FORCE = ["GTC", "IOC", "FOK", "GTX"]


# --- parameters ---------------------------------------------------------------------------


def _limit(text: str | None, allowed: range | tuple[int, ...]) -> int:
    limit = integer("limit", text)
    if limit is None:
        return DEFAULT_LIMIT
    if limit not in allowed:
        raise not_valid("limit")
    return limit


def _specs(gw: Gateway, symbol: str | None) -> list[SymbolSpec]:
    """Return the contract named ``symbol``, or every listed one when no symbol is sent."""
    return list(gw.symbols.values()) if symbol is None else [gw.binance.spec(symbol)]


def _one_or_all(symbol: str | None, rows: list[dict]) -> dict | list[dict]:
    """Answer an optional ``symbol`` as Binance does: one object for one, else a list."""
    return rows if symbol is None else rows[0]


def _now_ms(gw: Gateway) -> int:
    return gw.now_ns() // 1_000_000


def _ms(ns: str | None) -> int:
    return int(ns or 0) // 1_000_000


# --- general ------------------------------------------------------------------------------


@router.get("/fapi/v1/ping")
async def ping() -> dict:
    return {}


@router.get("/fapi/v1/time")
async def server_time(gw: Gw) -> dict:
    return {"serverTime": _now_ms(gw)}


@router.get("/fapi/v1/exchangeInfo")
async def exchange_info(gw: Gw) -> dict:
    """The listed contracts with their filters (libs/symbols.toml), and the gateway's limits."""
    settings = gw.settings
    return {
        "timezone": "UTC",
        "serverTime": _now_ms(gw),
        "futuresType": "U_MARGINED",
        "rateLimits": [
            # every request counts 1 against its IP's budget per minute
            {
                "rateLimitType": "REQUEST_WEIGHT",
                "interval": "MINUTE",
                "intervalNum": 1,
                "limit": settings.ip_rate_per_minute,
            },
            # every signed request (orders among them) counts 1 against its user's per second
            {
                "rateLimitType": "ORDERS",
                "interval": "SECOND",
                "intervalNum": 1,
                "limit": settings.user_rate_per_second,
            },
        ],
        "exchangeFilters": [],
        "assets": [{"asset": "USDT", "marginAvailable": True, "autoAssetExchange": "0"}],
        "symbols": [_contract(spec) for spec in gw.symbols.values()],
    }


def _contract(spec: SymbolSpec) -> dict:
    name = binance_name(spec)
    up = format_units(RATE_ONE + spec.price_band, RATE_SCALE, min_decimals=4)
    down = format_units(RATE_ONE - spec.price_band, RATE_SCALE, min_decimals=4)
    lots = {
        "minQty": spec.lots_to_qty(spec.min_qty),
        "maxQty": spec.lots_to_qty(spec.max_qty),
        "stepSize": spec.quantities.step,
    }
    return {
        "symbol": name,
        "pair": name,
        "contractType": "PERPETUAL",
        "deliveryDate": PERPETUAL_DELIVERY_MS,
        "onboardDate": ONBOARD_DATE_MS,
        "status": "TRADING",
        "baseAsset": spec.base,
        "quoteAsset": spec.quote,
        "marginAsset": "USDT",
        "pricePrecision": spec.prices.decimals,
        "quantityPrecision": spec.quantities.decimals,
        "baseAssetPrecision": BASE_ASSET_PRECISION,
        "quotePrecision": CASH_SCALE,
        "underlyingType": "COIN",
        "settlePlan": 0,
        "triggerProtect": "0",  # stops fire at their trigger: no price protection here
        "liquidationFee": "0",  # a liquidation pays the taker fee and nothing on top
        "marketTakeBound": format_rate(spec.market_take_bound),
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": spec.prices.step,
                "maxPrice": spec.ticks_to_price(spec.max_price),
                "tickSize": spec.prices.step,
            },
            {"filterType": "LOT_SIZE", **lots},
            {"filterType": "MARKET_LOT_SIZE", **lots},
            {"filterType": "MAX_NUM_ORDERS", "limit": spec.max_open_orders},
            {"filterType": "MIN_NOTIONAL", "notional": format_cash(spec.min_notional)},
            {
                "filterType": "PERCENT_PRICE",
                "multiplierUp": up,
                "multiplierDown": down,
                "multiplierDecimal": str(max(_decimals(up), _decimals(down))),
            },
        ],
        "orderTypes": ORDER_TYPES,
        "timeInForce": TIME_IN_FORCE,
    }


def _decimals(text: str) -> int:
    return len(text.partition(".")[2])


# --- the book and trades ------------------------------------------------------------------


def _levels(spec: SymbolSpec, rows: list[list[int]]) -> list[list[str]]:
    return [[spec.ticks_to_price(p), spec.lots_to_qty(q)] for p, q in rows]


@router.get("/fapi/v1/depth")
async def depth(gw: Gw, symbol: str | None = None, limit: str | None = None) -> dict:
    """The book, best first. It keeps no time of its own: ``E`` and ``T`` are the answer's."""
    spec = gw.binance.spec(symbol)
    levels = _limit(limit, DEPTH_LIMITS)
    update_id, bids, asks = await gw.reads.book(spec.name)
    now = _now_ms(gw)
    return {
        "lastUpdateId": update_id,
        "E": now,
        "T": now,
        "bids": _levels(spec, bids[:levels]),
        "asks": _levels(spec, asks[:levels]),
    }


@router.get("/fapi/v1/trades")
async def trades(gw: Gw, symbol: str | None = None, limit: str | None = None) -> list[dict]:
    """The newest trades (at most the read model's last ``TRADES_KEPT``), oldest first."""
    spec = gw.binance.spec(symbol)
    count = _limit(limit, range(1, MAX_LIMIT + 1))
    kept = await gw.reads.trades(spec.name, count)
    return [
        {
            "id": t["trade_id"],
            "price": spec.ticks_to_price(int(t["price"])),
            "qty": spec.lots_to_qty(int(t["qty"])),
            "quoteQty": format_cash(spec.notional(int(t["price"]), int(t["qty"]))),
            "time": int(t["ts"]),
            "isBuyerMaker": t["taker_side"] == "sell",
        }
        for t in reversed(kept)
    ]


@router.get("/fapi/v1/aggTrades")
async def agg_trades(
    gw: Gw,
    symbol: str | None = None,
    from_id: Annotated[str | None, Query(alias="fromId")] = None,
    start_time: Annotated[str | None, Query(alias="startTime")] = None,
    end_time: Annotated[str | None, Query(alias="endTime")] = None,
    limit: str | None = None,
) -> list[dict]:
    """One aggregate per trade (a taker's fills at one price are one trade each here), oldest
    first, from the trades the read model keeps: ``fromId`` and ``startTime`` take the first
    ``limit`` at or after them, otherwise the last ``limit`` (at or before ``endTime``)."""
    spec = gw.binance.spec(symbol)
    count = _limit(limit, range(1, MAX_LIMIT + 1))
    first_id = integer("fromId", from_id)
    start = integer("startTime", start_time)
    end = integer("endTime", end_time)
    if start is not None and end is not None and end - start > AGG_TRADES_SPAN_MS:
        raise ApiError(
            400, codes.RANGE_TOO_LONG, "More than 1 hours between startTime and endTime."
        )
    kept = reversed(await gw.reads.trades(spec.name, TRADES_KEPT))
    chosen = [
        t
        for t in kept
        if (first_id is None or t["trade_id"] >= first_id)
        and (start is None or int(t["ts"]) >= start)
        and (end is None or int(t["ts"]) <= end)
    ]
    chosen = chosen[:count] if first_id is not None or start is not None else chosen[-count:]
    return [
        {
            "a": t["trade_id"],
            "p": spec.ticks_to_price(int(t["price"])),
            "q": spec.lots_to_qty(int(t["qty"])),
            "f": t["trade_id"],
            "l": t["trade_id"],
            "T": int(t["ts"]),
            "m": t["taker_side"] == "sell",
        }
        for t in chosen
    ]


# --- tickers ------------------------------------------------------------------------------


async def _last_price(gw: Gateway, spec: SymbolSpec) -> dict:
    """Return the last trade's price and time; before the first trade, the mark's."""
    newest = await gw.reads.trades(spec.name, 1)
    if newest:
        ticks, at = int(newest[0]["price"]), int(newest[0]["ts"])
    else:
        mark = await gw.reads.mark(spec.name)
        ticks, at = int(mark.get("mark") or 0), _ms(mark.get("ts"))
    return {"symbol": binance_name(spec), "price": spec.ticks_to_price(ticks), "time": at}


@router.get("/fapi/v1/ticker/price")
@router.get("/fapi/v2/ticker/price")
async def ticker_price(gw: Gw, symbol: str | None = None) -> dict | list[dict]:
    return _one_or_all(symbol, [await _last_price(gw, s) for s in _specs(gw, symbol)])


async def _best(gw: Gateway, spec: SymbolSpec, now: int) -> dict:
    update_id, bids, asks = await gw.reads.book(spec.name)
    bid = bids[0] if bids else (0, 0)
    ask = asks[0] if asks else (0, 0)
    return {
        "lastUpdateId": update_id,
        "symbol": binance_name(spec),
        "bidPrice": spec.ticks_to_price(bid[0]),
        "bidQty": spec.lots_to_qty(bid[1]),
        "askPrice": spec.ticks_to_price(ask[0]),
        "askQty": spec.lots_to_qty(ask[1]),
        "time": now,
    }


@router.get("/fapi/v1/ticker/bookTicker")
async def book_ticker(gw: Gw, symbol: str | None = None) -> dict | list[dict]:
    """The best bid and ask; the book keeps no time of its own: ``time`` is the answer's."""
    now = _now_ms(gw)
    return _one_or_all(symbol, [await _best(gw, s, now) for s in _specs(gw, symbol)])


async def _premium(gw: Gateway, spec: SymbolSpec) -> dict:
    mark = await gw.reads.mark(spec.name)
    funding = await gw.reads.funding(spec.name)
    index = spec.ticks_to_price(int(mark.get("index") or 0))
    return {
        "symbol": binance_name(spec),
        "markPrice": spec.ticks_to_price(int(mark.get("mark") or 0)),
        "indexPrice": index,
        "estimatedSettlePrice": index,  # a perpetual never settles: the index it would use
        "lastFundingRate": format_rate(int(funding.get("rate") or 0)),
        "interestRate": format_rate(spec.funding_interest_rate),
        "nextFundingTime": _ms(funding.get("next_funding_time")),
        "time": _ms(mark.get("ts")),
    }


@router.get("/fapi/v1/premiumIndex")
async def premium_index(gw: Gw, symbol: str | None = None) -> dict | list[dict]:
    """The mark, index and funding of one contract or of all."""
    return _one_or_all(symbol, [await _premium(gw, s) for s in _specs(gw, symbol)])


# --- the two wallet calls of ccxt's load_markets ------------------------------------------


@router.get("/sapi/v1/capital/config/getall")
async def coins(_caller: SignedCall) -> list[dict]:
    """The one asset, USDT. There is no spot wallet and no chain here (money comes and goes
    through the original API's /deposit and /withdraw): its balances are 0, it has no
    networks, and ccxt reads only its code, name and ``trading``."""
    return [
        {
            "coin": "USDT",
            "name": "TetherUS",
            "depositAllEnable": False,
            "withdrawAllEnable": False,
            "free": "0",
            "locked": "0",
            "freeze": "0",
            "withdrawing": "0",
            "ipoing": "0",
            "ipoable": "0",
            "storage": "0",
            "isLegalMoney": False,
            "trading": True,
            "networkList": [],
        }
    ]


@router.get("/sapi/v1/margin/allPairs")
async def margin_pairs() -> list[dict]:
    """No spot margin pairs: futures only."""
    return []
