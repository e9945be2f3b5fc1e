"""Binance's names: for the listed contracts (``BTCUSDT`` for ``BTC-PERP``: base + quote), the
read model's order types and statuses, and a parameter missing, malformed or not valid."""

from __future__ import annotations

import re

from libs import codes
from libs.messages import OrderStatus
from libs.symbols import SymbolSpec
from services.gateway.errors import ApiError

TYPE_NAMES = {
    "limit": "LIMIT",
    "market": "MARKET",
    "stop_limit": "STOP",
    "stop_market": "STOP_MARKET",
    "take_profit_limit": "TAKE_PROFIT",
    "take_profit_market": "TAKE_PROFIT_MARKET",
    "trailing_stop": "TRAILING_STOP_MARKET",
    "liquidation": "LIMIT",
}
"""The read model's order types -> Binance's."""
STATUSES: dict[str, str] = {
    OrderStatus.PENDING: "NEW",  # in the log, not matched yet: Binance has no other word
    OrderStatus.NEW: "NEW",
    OrderStatus.PARTIALLY_FILLED: "PARTIALLY_FILLED",
    OrderStatus.FILLED: "FILLED",
    OrderStatus.CANCELLED: "CANCELED",
    OrderStatus.EXPIRED: "EXPIRED",
    OrderStatus.REJECTED: "REJECTED",
}
"""The read model's order statuses -> Binance's: a ``Pending`` order (in the log, no engine
answered yet) is ``NEW``, the one word Binance has for it."""


def binance_name(spec: SymbolSpec) -> str:
    return f"{spec.base}{spec.quote}"


class BinanceNames:
    """The listed contracts by their Binance names."""

    def __init__(self, specs: dict[str, SymbolSpec]) -> None:
        self.specs = {binance_name(spec): spec for spec in specs.values()}

    def spec(self, name: str | None) -> SymbolSpec:
        """Return the contract called ``name``, or refuse it as Binance does (-1121)."""
        if not name:
            raise mandatory("symbol")
        spec = self.specs.get(name.upper())
        if spec is None:
            raise ApiError(400, codes.INVALID_SYMBOL, "Invalid symbol.")
        return spec


def mandatory(name: str) -> ApiError:
    """Binance's answer to a parameter missing or empty (-1102)."""
    return ApiError(
        400,
        codes.MANDATORY_PARAM,
        f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.",
    )


def not_valid(name: str) -> ApiError:
    """Binance's answer to a parameter of the right form but a value it refuses (-1130)."""
    return ApiError(400, codes.INVALID_PARAM, f"Data sent for parameter '{name}' is not valid.")


_INTEGER = re.compile(r"-?[0-9]{1,19}")


def integer(name: str, text: str | None) -> int | None:
    """Return an optional integer parameter (None when absent), or refuse it as Binance does."""
    if text is None:
        return None
    if not _INTEGER.fullmatch(text):
        raise ApiError(400, codes.INVALID_PARAM, f"Illegal characters found in parameter '{name}'.")
    return int(text)
