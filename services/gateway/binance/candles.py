"""The Binance face's candles and statistics: klines, the rolling 24 hours, funding history and
open interest, from the projector's ``candles:``, ``funding_rates:`` and ``mark:`` keys.

Binance's paths, parameters, paging and fields (docs/BINANCE-API.md, "Candles and
statistics"). Candles are built from trades by the read model (``libs/read_model/candles.py``);
an interval without trades has no candle there, and klines answer Binance's flat candle at the
last close for it. Bad input is refused as Binance refuses it:
4xx ``{"code", "msg"}``.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import cast

from fastapi import APIRouter

from libs import codes
from libs.money import RATE_SCALE, format_cash, format_units
from libs.read_model import keys
from libs.read_model.candles import INTERVALS, MINUTE_MS, Candle, open_time
from libs.symbols import SymbolSpec
from services.gateway.binance.names import binance_name, integer, mandatory, not_valid
from services.gateway.errors import ApiError
from services.gateway.state import Gateway, Gw

router = APIRouter(tags=["binance"])

KLINES_DEFAULT, KLINES_MAX = 500, 1500
FUNDING_DEFAULT, FUNDING_MAX = 100, 1000
DAY_MS = 24 * 3600 * 1000
DAY_MINUTES = DAY_MS // MINUTE_MS


# --- parameters ---------------------------------------------------------------------------


def _limit(text: str | None, default: int, most: int) -> int:
    limit = integer("limit", text)
    if limit is None:
        return default
    if not 1 <= limit <= most:
        raise not_valid("limit")
    return limit


def _window(start_text: str | None, end_text: str | None) -> tuple[int | None, int | None]:
    start, end = integer("startTime", start_text), integer("endTime", end_text)
    if start is not None and start < 0:
        raise not_valid("startTime")
    if end is not None and end < 0:
        raise not_valid("endTime")
    if start is not None and end is not None and start > end:
        raise not_valid("startTime")
    return start, end


def _interval(text: str | None) -> tuple[str, int]:
    if not text:
        raise mandatory("interval")
    length = INTERVALS.get(text)
    if length is None:
        raise ApiError(400, codes.INVALID_INTERVAL, "Invalid interval.")
    return text, length


async def _page(gw: Gateway, key: str, start: int | None, end: int | None, limit: int) -> list[str]:
    """Return the members of a sorted set scored by time, oldest first, paged as Binance
    pages: from ``start`` the oldest ``limit`` there (up to ``end``); with only ``end`` the
    newest ``limit`` up to it; with neither the newest ``limit``."""
    redis = gw.reads.redis
    if start is not None:
        top = "+inf" if end is None else end
        return cast("list[str]", await redis.zrangebyscore(key, start, top, start=0, num=limit))
    if end is not None:
        newest = await redis.zrevrangebyscore(key, end, "-inf", start=0, num=limit)
        return cast("list[str]", newest)[::-1]
    return cast("list[str]", await redis.zrange(key, -limit, -1))


# --- klines -------------------------------------------------------------------------------


def kline_row(spec: SymbolSpec, candle: Candle, length: int) -> list:
    """One candle in Binance's kline format."""
    return [
        candle.open_time,
        spec.ticks_to_price(candle.open),
        spec.ticks_to_price(candle.high),
        spec.ticks_to_price(candle.low),
        spec.ticks_to_price(candle.close),
        spec.lots_to_qty(candle.volume),
        candle.open_time + length - 1,
        format_cash(candle.quote_volume),
        candle.count,
        spec.lots_to_qty(candle.taker_buy_volume),
        format_cash(candle.taker_buy_quote_volume),
        "0",
    ]


def contiguous(stored: list[Candle], before: Candle | None, opens: range) -> list[Candle]:
    """Return a candle for every open time of ``opens``: the stored one, or, for an interval
    without trades, Binance's flat candle at the last close (no volume, no trades)."""
    by_open = {candle.open_time: candle for candle in stored}
    close = before.close if before is not None else None
    out = []
    for opened in opens:
        candle = by_open.get(opened)
        if candle is None:
            if close is None:
                continue  # before the first trade: nothing to show
            candle = Candle(opened, close, close, close, close, 0, 0, 0, 0, 0, -1, -1)
        out.append(candle)
        close = candle.close
    return out


def _opens(
    oldest: int, now: int, length: int, start: int | None, end: int | None, count: int
) -> range:
    """The open times Binance answers: from ``start`` the oldest ``count`` opening at or
    after it; with only ``end`` the newest ``count`` opening up to it; with neither the newest
    ``count``; never after the interval now open, nor before the oldest candle kept."""
    last = open_time(now if end is None else min(end, now), length)
    if start is not None:
        first = max(-(-start // length) * length, oldest)
        return range(first, min(last, first + (count - 1) * length) + 1, length)
    first = max(last - (count - 1) * length, oldest)
    return range(first, last + 1, length)


@router.get("/fapi/v1/klines")
async def klines(
    gw: Gw,
    symbol: str | None = None,
    interval: str | None = None,
    startTime: str | None = None,
    endTime: str | None = None,
    limit: str | None = None,
) -> list[list]:
    """A symbol's candles of one interval, oldest first, one per interval as Binance has them:
    an interval without trades is a flat candle at the last close."""
    spec = gw.binance.spec(symbol)
    name, length = _interval(interval)
    start, end = _window(startTime, endTime)
    count = _limit(limit, KLINES_DEFAULT, KLINES_MAX)
    key = keys.candles_key(spec.name, name)
    redis = gw.reads.redis
    oldest = cast("list[str]", await redis.zrange(key, 0, 0))
    if not oldest:
        return []
    opens = _opens(
        Candle.from_member(oldest[0]).open_time, gw.now_ns() // 1_000_000, length, start, end, count
    )
    if not opens:
        return []
    stored = cast("list[str]", await redis.zrangebyscore(key, opens[0], opens[-1]))
    before = cast(
        "list[str]", await redis.zrevrangebyscore(key, opens[0] - 1, "-inf", start=0, num=1)
    )
    candles = contiguous(
        [Candle.from_member(m) for m in stored],
        Candle.from_member(before[0]) if before else None,
        opens,
    )
    return [kline_row(spec, candle, length) for candle in candles]


# --- ticker/24hr --------------------------------------------------------------------------


def day_start(now_ms: int) -> int:
    """Return the open time of the first of the 1,440 1m candles of the day up to ``now_ms``."""
    return (now_ms // MINUTE_MS - DAY_MINUTES + 1) * MINUTE_MS


def day_statistics(
    spec: SymbolSpec, candles: list[Candle], last_qty: int, now_ms: int
) -> dict[str, object]:
    """Binance's 24-hour statistics of the 1m candles of the rolling day up to ``now_ms``."""
    name = binance_name(spec)
    opened = day_start(now_ms)
    if not candles:
        zero_price, zero_qty = spec.ticks_to_price(0), spec.lots_to_qty(0)
        return {
            "symbol": name,
            "priceChange": zero_price,
            "priceChangePercent": "0.000",
            "weightedAvgPrice": zero_price,
            "lastPrice": zero_price,
            "lastQty": zero_qty,
            "openPrice": zero_price,
            "highPrice": zero_price,
            "lowPrice": zero_price,
            "volume": zero_qty,
            "quoteVolume": "0",
            "openTime": opened,
            "closeTime": now_ms,
            "firstId": -1,
            "lastId": -1,
            "count": 0,
        }
    first, last = candles[0], candles[-1]
    volume = sum(c.volume for c in candles)
    quote = sum(c.quote_volume for c in candles)
    change = last.close - first.open
    percent = Decimal(change * 100) / Decimal(first.open)
    weighted = quote // (volume * spec.cash_per_tick_lot) if volume else 0
    return {
        "symbol": name,
        "priceChange": ("-" if change < 0 else "") + spec.ticks_to_price(abs(change)),
        "priceChangePercent": f"{percent:.3f}",
        "weightedAvgPrice": spec.ticks_to_price(weighted),
        "lastPrice": spec.ticks_to_price(last.close),
        "lastQty": spec.lots_to_qty(last_qty),
        "openPrice": spec.ticks_to_price(first.open),
        "highPrice": spec.ticks_to_price(max(c.high for c in candles)),
        "lowPrice": spec.ticks_to_price(min(c.low for c in candles)),
        "volume": spec.lots_to_qty(volume),
        "quoteVolume": format_cash(quote),
        "openTime": opened,
        "closeTime": now_ms,
        "firstId": first.first_trade_id,
        "lastId": last.last_trade_id,
        "count": sum(c.count for c in candles),
    }


@router.get("/fapi/v1/ticker/24hr")
async def ticker_24hr(gw: Gw, symbol: str | None = None) -> dict | list[dict]:
    """One symbol's 24-hour statistics, or every symbol's when none is named."""
    specs = list(gw.symbols.values()) if symbol is None else [gw.binance.spec(symbol)]
    now_ms = gw.now_ns() // 1_000_000
    opened = day_start(now_ms)
    async with gw.reads.redis.pipeline(transaction=True) as pipe:
        for spec in specs:
            pipe.zrangebyscore(keys.candles_key(spec.name, "1m"), opened, "+inf")
            pipe.lindex(keys.trades_key(spec.name), 0)
        found = await pipe.execute()
    rows = []
    for n, spec in enumerate(specs):
        members, newest = found[2 * n], found[2 * n + 1]
        candles = [Candle.from_member(m) for m in members]
        last_qty = int(json.loads(newest)["qty"]) if newest else 0
        rows.append(day_statistics(spec, candles, last_qty, now_ms))
    return rows if symbol is None else rows[0]


# --- funding history and open interest ----------------------------------------------------


def funding_row(spec: SymbolSpec, member: str) -> dict[str, object]:
    entry = json.loads(member)
    mark = int(entry.get("mark") or 0)
    return {
        "symbol": binance_name(spec),
        "fundingRate": format_units(int(entry["rate"]), RATE_SCALE, min_decimals=RATE_SCALE),
        "fundingTime": int(entry["funding_time"]) // 1_000_000,
        "markPrice": spec.ticks_to_price(mark) if mark else "",
    }


@router.get("/fapi/v1/fundingRate")
async def funding_rate_history(
    gw: Gw,
    symbol: str | None = None,
    startTime: str | None = None,
    endTime: str | None = None,
    limit: str | None = None,
) -> list[dict]:
    """The fundings of a symbol (of every symbol when none is named), oldest first."""
    specs = list(gw.symbols.values()) if symbol is None else [gw.binance.spec(symbol)]
    start, end = _window(startTime, endTime)
    count = _limit(limit, FUNDING_DEFAULT, FUNDING_MAX)
    rows = []
    for spec in specs:
        for member in await _page(gw, keys.funding_rates_key(spec.name), start, end, count):
            rows.append(funding_row(spec, member))
    if len(specs) > 1:  # the page of the merged histories, as one symbol's would be
        rows.sort(key=lambda row: (row["fundingTime"], row["symbol"]))
        rows = rows[:count] if start is not None else rows[-count:]
    return rows


@router.get("/fapi/v1/openInterest")
async def open_interest(gw: Gw, symbol: str | None = None) -> dict[str, object]:
    """The lots of a symbol's long positions as of its last mark (ms)."""
    spec = gw.binance.spec(symbol)
    mark = await gw.reads.mark(spec.name)
    ts = int(mark.get("ts") or 0)
    return {
        "openInterest": spec.lots_to_qty(int(mark.get("open_interest") or 0)),
        "symbol": binance_name(spec),
        "time": ts // 1_000_000 if ts else gw.now_ns() // 1_000_000,
    }
