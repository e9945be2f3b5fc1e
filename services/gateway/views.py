"""Turn read-model values (integers in exchange units) into API shapes (decimal strings)."""

from __future__ import annotations

from libs.money import format_cash, format_rate
from libs.symbols import SymbolSpec

TYPE_NAMES = {
    "limit": "Limit",
    "market": "Market",
    "stop_market": "StopMarket",
    "stop_limit": "StopLimit",
    "take_profit_market": "TakeProfitMarket",
    "take_profit_limit": "TakeProfitLimit",
    "trailing_stop": "TrailingStop",
    "liquidation": "Liquidation",
}
TYPE_VALUES = {name: value for value, name in TYPE_NAMES.items()}
SIDE_NAMES = {"buy": "Buy", "sell": "Sell"}


def _int(text: str | None) -> int | None:
    return int(text) if text not in (None, "") else None


def price_or_none(spec: SymbolSpec, ticks: int | None) -> str | None:
    return spec.ticks_to_price(ticks) if ticks else None


def order(spec: SymbolSpec, fields: dict[str, str]) -> dict:
    qty = int(fields.get("qty") or 0)
    filled = int(fields.get("filled") or 0)
    return {
        "order_id": int(fields["order_id"]),
        "symbol": spec.name,
        "side": SIDE_NAMES.get(fields.get("side", ""), fields.get("side")),
        "order_type": TYPE_NAMES.get(fields.get("order_type", ""), fields.get("order_type")),
        "time_in_force": fields.get("tif") or None,
        "price": price_or_none(spec, _int(fields.get("price"))),
        "stop_price": price_or_none(spec, _int(fields.get("stop_price"))),
        "quantity": spec.lots_to_qty(qty),
        "filled": spec.lots_to_qty(filled),
        "remaining": spec.lots_to_qty(max(qty - filled, 0)),
        "status": fields.get("status"),
        "reason": fields.get("reason") or None,
        "code": _int(fields.get("code")),
        "msg": fields.get("msg") or None,
        "reduce_only": fields.get("reduce_only") == "1",
        "client_order_id": fields.get("client_order_id") or None,
        "time": int(fields.get("ts") or 0) // 1_000_000,
    }


def account(fields: dict[str, str], leverage: dict[str, int]) -> dict:
    def cash(name: str) -> str:
        return format_cash(int(fields.get(name) or 0))

    return {
        "asset": "USDT",
        "balance": cash("balance"),
        "available": cash("available"),
        "holds": cash("holds"),
        "position_margin": cash("margin"),
        "unrealised_pnl": cash("upnl"),
        "leverage": {symbol: int(value) for symbol, value in sorted(leverage.items())},
    }


def position(spec: SymbolSpec, view: dict[str, int]) -> dict:
    """Shape a position's view (``libs.read_model.positions.view``)."""
    size = view["size"]
    return {
        "symbol": spec.name,
        "side": "Long" if size > 0 else "Short",
        "size": ("-" if size < 0 else "") + spec.lots_to_qty(abs(size)),
        "entry_price": price_or_none(spec, view["entry_price"]),
        "break_even_price": price_or_none(spec, view["break_even"]),
        "mark_price": price_or_none(spec, view["mark"]),
        "unrealised_pnl": format_cash(view["upnl"]),
        "liquidation_price": price_or_none(spec, view["liq_price"]),
        "margin_ratio": format_rate(view["margin_ratio"]),
        "entry_notional": format_cash(view["entry_notional"]),
    }


def levels(spec: SymbolSpec, rows: list[list[int]]) -> list[list[str]]:
    return [[spec.ticks_to_price(p), spec.lots_to_qty(q)] for p, q in rows]


def trade(spec: SymbolSpec, raw: dict) -> dict:
    return {
        "trade_id": raw["trade_id"],
        "price": spec.ticks_to_price(int(raw["price"])),
        "quantity": spec.lots_to_qty(int(raw["qty"])),
        "taker_side": SIDE_NAMES.get(raw["taker_side"], raw["taker_side"]),
        "time": raw.get("ts"),
    }


def fill(spec: SymbolSpec, raw: dict) -> dict:
    return {
        "trade_id": raw["trade_id"],
        "order_id": raw["order_id"],
        "symbol": spec.name,
        "side": SIDE_NAMES.get(raw["side"], raw["side"]),
        "price": spec.ticks_to_price(int(raw["price"])),
        "quantity": spec.lots_to_qty(int(raw["qty"])),
        "maker": bool(raw["maker"]),
        "fee": format_cash(int(raw["fee"])),
        "liquidation": bool(raw.get("liquidation", False)),
        "time": raw.get("ts"),
    }
