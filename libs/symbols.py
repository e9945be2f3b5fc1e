"""Symbol specifications: the contract terms every service shares.

Loaded once from ``symbols.toml`` beside this module (or a file named by the
caller). A ``SymbolSpec`` converts between the API's decimal strings and the
integer ticks, lots and cash units used everywhere inside.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from libs.money import (
    CASH_SCALE,
    MAX_NOTIONAL,
    RATE_ONE,
    Grid,
    MoneyError,
    parse_cash,
    parse_rate,
)

DEFAULT_LEVERAGE = 20
"""A user's leverage on a symbol until they set one (capped by the symbol's first bracket)."""

DEFAULT_FILE = Path(__file__).with_name("symbols.toml")


class SymbolError(ValueError):
    """An unknown symbol or an inconsistent symbol file."""


@dataclass(frozen=True, slots=True)
class Bracket:
    """One maintenance-margin tier, with amounts in cash units and the ratio in rate units."""

    floor: int
    cap: int
    max_leverage: int
    mmr: int
    cum: int


@dataclass(frozen=True, slots=True)
class SymbolSpec:
    """The terms of one perpetual contract, with every amount an integer."""

    name: str
    index: int
    """Position in the symbol file: the partition of this symbol's log."""
    base: str
    quote: str
    prices: Grid
    quantities: Grid
    min_qty: int
    max_qty: int
    min_notional: int
    max_open_orders: int
    maker_fee: int
    taker_fee: int
    price_band: int
    market_take_bound: int
    funding_interval_seconds: int
    funding_interest_rate: int
    funding_premium_clamp: int
    funding_rate_cap: int
    brackets: tuple[Bracket, ...]
    cash_per_tick_lot: int
    """Cash units (1e-8 USDT) of one tick times one lot: notional = ticks * lots * this."""

    def price_to_ticks(self, text: str) -> int:
        """Return a price string as ticks; reject values off the tick grid."""
        ticks = self.prices.parse(text)
        if ticks <= 0:
            raise MoneyError(f"price must be positive: {text!r}")
        return ticks

    def ticks_to_price(self, ticks: int) -> str:
        return self.prices.format(ticks)

    @property
    def max_price(self) -> int:
        """Return the highest accepted price in ticks: max_qty at it is ``MAX_NOTIONAL``."""
        return MAX_NOTIONAL // (self.max_qty * self.cash_per_tick_lot)

    def qty_to_lots(self, text: str) -> int:
        """Return a quantity string as lots; reject values off the lot grid."""
        lots = self.quantities.parse(text)
        if lots <= 0:
            raise MoneyError(f"quantity must be positive: {text!r}")
        return lots

    def lots_to_qty(self, lots: int) -> str:
        return self.quantities.format(lots)

    def notional(self, ticks: int, lots: int) -> int:
        """Return price * quantity in cash units, exactly."""
        return ticks * lots * self.cash_per_tick_lot

    def fee(self, notional: int, *, maker: bool) -> int:
        """Return the trading fee on ``notional`` (cash units), rounded up."""
        rate = self.maker_fee if maker else self.taker_fee
        return -((-notional * rate) // RATE_ONE)

    @property
    def max_leverage(self) -> int:
        return self.brackets[0].max_leverage

    @property
    def default_leverage(self) -> int:
        """The leverage of a user who never set one for this symbol."""
        return min(DEFAULT_LEVERAGE, self.max_leverage)

    def bracket_for(self, notional: int) -> Bracket:
        """Return the maintenance-margin tier that a position of ``notional`` falls in."""
        for bracket in self.brackets:
            if notional <= bracket.cap:
                return bracket
        return self.brackets[-1]

    def maintenance_margin(self, notional: int) -> int:
        """Return notional * mmr - cum in cash units (rounded up, in the exchange's favour)."""
        bracket = self.bracket_for(notional)
        return -((-notional * bracket.mmr) // RATE_ONE) - bracket.cum


def _brackets(name: str, rows: list[list]) -> tuple[Bracket, ...]:
    brackets: list[Bracket] = []
    cum = 0
    previous_mmr = 0
    expected_floor = 0
    for floor_text, cap_text, max_leverage, mmr_text in rows:
        floor = parse_cash(floor_text, field=f"{name} bracket floor")
        cap = parse_cash(cap_text, field=f"{name} bracket cap")
        mmr = parse_rate(mmr_text, field=f"{name} bracket mmr")
        if floor != expected_floor or cap <= floor:
            raise SymbolError(f"{name}: brackets must be contiguous and increasing at {floor_text}")
        if brackets and (mmr <= previous_mmr or max_leverage >= brackets[-1].max_leverage):
            raise SymbolError(f"{name}: mmr must rise and leverage fall from bracket to bracket")
        # cum keeps MM continuous at each floor: floor * mmr - cum == floor * prev_mmr - prev_cum
        cum += floor * (mmr - previous_mmr) // RATE_ONE
        brackets.append(Bracket(floor, cap, int(max_leverage), mmr, cum))
        previous_mmr, expected_floor = mmr, cap
    if not brackets:
        raise SymbolError(f"{name}: no maintenance-margin brackets")
    return tuple(brackets)


def _spec(index: int, raw: dict) -> SymbolSpec:
    name = raw["name"]
    prices = Grid(raw["tick_size"], field=f"{name} price")
    quantities = Grid(raw["lot_size"], field=f"{name} quantity")
    # tick * lot in cash units must be a whole number so notional stays an integer
    exponent = CASH_SCALE - prices.decimals - quantities.decimals
    if exponent < 0:
        raise SymbolError(f"{name}: tick * lot is finer than the cash unit")
    cash_per_tick_lot = prices.step_units * quantities.step_units * 10**exponent
    spec = SymbolSpec(
        name=name,
        index=index,
        base=raw["base"],
        quote=raw["quote"],
        prices=prices,
        quantities=quantities,
        min_qty=quantities.parse(raw["min_qty"]),
        max_qty=quantities.parse(raw["max_qty"]),
        min_notional=parse_cash(raw["min_notional"], field=f"{name} min_notional"),
        max_open_orders=int(raw["max_open_orders"]),
        maker_fee=parse_rate(raw["maker_fee"], field=f"{name} maker_fee"),
        taker_fee=parse_rate(raw["taker_fee"], field=f"{name} taker_fee"),
        price_band=parse_rate(raw["price_band"], field=f"{name} price_band"),
        market_take_bound=parse_rate(raw["market_take_bound"], field=f"{name} market_take_bound"),
        funding_interval_seconds=int(raw["funding_interval_seconds"]),
        funding_interest_rate=parse_rate(raw["funding_interest_rate"]),
        funding_premium_clamp=parse_rate(raw["funding_premium_clamp"]),
        funding_rate_cap=parse_rate(raw["funding_rate_cap"]),
        brackets=_brackets(name, raw["brackets"]),
        cash_per_tick_lot=cash_per_tick_lot,
    )
    if not 0 < spec.min_qty <= spec.max_qty:
        raise SymbolError(f"{name}: need 0 < min_qty <= max_qty")
    if spec.max_price < 1:
        raise SymbolError(f"{name}: max_qty at one tick is already above the largest notional")
    return spec


def load_symbols(path: Path | str = DEFAULT_FILE) -> dict[str, SymbolSpec]:
    """Return every symbol in the file, by name, in file order."""
    with open(path, "rb") as file:
        raw = tomllib.load(file)
    specs: dict[str, SymbolSpec] = {}
    for index, entry in enumerate(raw.get("symbol", [])):
        spec = _spec(index, entry)
        if spec.name in specs:
            raise SymbolError(f"duplicate symbol {spec.name}")
        specs[spec.name] = spec
    if not specs:
        raise SymbolError(f"no symbols in {path}")
    return specs


@cache
def default_symbols() -> dict[str, SymbolSpec]:
    """Return the exchange's listed symbols: ``libs/symbols.toml``, or the file the
    SYMBOLS_FILE environment names (every process of one exchange must read the same: a
    symbol's index is its partition of ``orders.commands`` and ``matcher.events``)."""
    return load_symbols(os.environ.get("SYMBOLS_FILE") or DEFAULT_FILE)


def get_symbol(name: str) -> SymbolSpec:
    """Return a listed symbol's spec or raise SymbolError naming the listed ones."""
    try:
        return default_symbols()[name]
    except KeyError:
        listed = ", ".join(default_symbols())
        raise SymbolError(f"unknown symbol {name!r} (listed: {listed})") from None


__all__ = [
    "Bracket",
    "SymbolError",
    "SymbolSpec",
    "default_symbols",
    "get_symbol",
    "load_symbols",
]
