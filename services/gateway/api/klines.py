"""Candles (klines) in the original API's shape: the read model's candles, read by the Binance
face's own code (``services/gateway/binance/candles.py``), each as an object of decimal
strings keyed by name."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from services.gateway.binance import candles
from services.gateway.binance.names import binance_name
from services.gateway.state import Gw

router = APIRouter(tags=["market"])

FIELDS = (
    "open_time",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "close_time",
    "quote_volume",
    "trades",
    "taker_buy_volume",
    "taker_buy_quote_volume",
)


@router.get("/klines")
async def klines(
    gw: Gw,
    symbol: Annotated[str, Query(max_length=32)],
    interval: Annotated[str, Query(max_length=8)] = "1m",
    start_time: Annotated[int | None, Query(ge=0)] = None,
    end_time: Annotated[int | None, Query(ge=0)] = None,
    limit: Annotated[int, Query(ge=1, le=candles.KLINES_MAX)] = candles.KLINES_DEFAULT,
) -> list[dict]:
    """A symbol's candles of one interval, oldest first, one per interval since its first
    trade (an interval without trades is flat at the last close). Times are ms."""
    spec = gw.symbol(symbol)
    rows = await candles.klines(
        gw,
        symbol=binance_name(spec),
        interval=interval,
        startTime=None if start_time is None else str(start_time),
        endTime=None if end_time is None else str(end_time),
        limit=str(limit),
    )
    return [dict(zip(FIELDS, row, strict=False)) for row in rows]
