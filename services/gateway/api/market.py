"""Public market data: symbols, book, trades, mark price, funding."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from libs.money import format_cash, format_rate
from services.gateway import views
from services.gateway.state import Gw

router = APIRouter(tags=["market"])

Symbol = Annotated[str, Path(max_length=32)]


@router.get("/symbols")
async def symbols(gw: Gw) -> list[dict]:
    return [
        {
            "symbol": s.name,
            "base": s.base,
            "quote": s.quote,
            "tick_size": s.prices.step,
            "lot_size": s.quantities.step,
            "min_qty": s.lots_to_qty(s.min_qty),
            "max_qty": s.lots_to_qty(s.max_qty),
            "min_notional": format_cash(s.min_notional),
            "max_leverage": s.max_leverage,
            "maker_fee": format_rate(s.maker_fee),
            "taker_fee": format_rate(s.taker_fee),
            "max_open_orders": s.max_open_orders,
            "funding_interval_seconds": s.funding_interval_seconds,
        }
        for s in gw.symbols.values()
    ]


@router.get("/orderbook/{symbol}")
async def orderbook(symbol: Symbol, gw: Gw, limit: int = Query(100, ge=1, le=5000)) -> dict:
    """Aggregated depth, best first; ``update_id`` matches the WebSocket depth stream."""
    spec = gw.symbol(symbol)
    update_id, bids, asks = await gw.reads.book(spec.name)
    return {
        "symbol": spec.name,
        "update_id": update_id,
        "bids": views.levels(spec, bids[:limit]),
        "asks": views.levels(spec, asks[:limit]),
    }


@router.get("/trades/{symbol}")
async def trades(symbol: Symbol, gw: Gw, limit: int = Query(100, ge=1, le=500)) -> list[dict]:
    spec = gw.symbol(symbol)
    return [views.trade(spec, t) for t in await gw.reads.trades(spec.name, limit)]


@router.get("/markprice/{symbol}")
async def markprice(symbol: Symbol, gw: Gw) -> dict:
    spec = gw.symbol(symbol)
    mark = await gw.reads.mark(spec.name)
    funding = await gw.reads.funding(spec.name)
    return {
        "symbol": spec.name,
        "mark_price": views.price_or_none(spec, int(mark.get("mark") or 0)),
        "index_price": views.price_or_none(spec, int(mark.get("index") or 0)),
        "time": int(mark.get("ts") or 0) // 1_000_000,
        "last_funding_rate": format_rate(int(funding.get("rate") or 0)),
        "next_funding_time": int(funding.get("next_funding_time") or 0) // 1_000_000,
    }


@router.get("/funding/{symbol}")
async def funding(symbol: Symbol, gw: Gw) -> dict:
    spec = gw.symbol(symbol)
    fields = await gw.reads.funding(spec.name)
    return {
        "symbol": spec.name,
        "funding_rate": format_rate(int(fields.get("rate") or 0)),
        "next_funding_time": int(fields.get("next_funding_time") or 0) // 1_000_000,
        "interval_seconds": spec.funding_interval_seconds,
    }
