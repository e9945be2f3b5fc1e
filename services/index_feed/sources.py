"""Index price feeds: a seeded random walk, a CSV replay, and Binance's mark-price stream.

Each yields ``IndexPriceTick`` (price in the symbol's ticks, ``ts`` in ns). They sit at the
edge: the engine's core only ever sees the ticks, through ``index.prices``.
"""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from pathlib import Path

from libs.messages import IndexPriceTick
from libs.symbols import SymbolSpec

MS = 1_000_000


class FeedError(ValueError):
    """A feed record that cannot become an index tick."""


def price_to_ticks(spec: SymbolSpec, text: str) -> int:
    """Return a venue's decimal price on ``spec``'s tick grid (half-even), never a float."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise FeedError(f"not a price: {text!r}") from None
    if not value.is_finite() or value <= 0:
        raise FeedError(f"not a positive price: {text!r}")
    step = Decimal(spec.prices.step)
    ticks = int((value / step).to_integral_value(rounding=ROUND_HALF_EVEN))
    if ticks <= 0:
        raise FeedError(f"price below one tick: {text!r}")
    return ticks


# --- simulated ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SimulatedFeed:
    """A seeded random walk per symbol: the same seed gives the same prices, tick for tick.

    Each step moves each symbol by a uniform integer number of ticks within
    +-``step_bps`` basis points of its price. ``start`` maps symbol -> first price (ticks).
    """

    specs: dict[str, SymbolSpec]
    start: dict[str, int]
    seed: int = 7
    step_bps: int = 5
    source: str = "sim"

    def ticks(self, start_ts: int, interval_ns: int) -> Iterator[IndexPriceTick]:
        rng = random.Random(self.seed)
        prices = dict(self.start)
        ts = start_ts
        while True:
            for symbol in sorted(prices):
                price = prices[symbol]
                reach = max(1, price * self.step_bps // 10_000)
                price = max(1, price + rng.randint(-reach, reach))
                prices[symbol] = price
                yield IndexPriceTick(symbol=symbol, price=price, ts=ts, source=self.source)
            ts += interval_ns


DEFAULT_START = {"BTC-PERP": "60000", "ETH-PERP": "3000", "SOL-PERP": "150"}


def default_simulation(specs: dict[str, SymbolSpec], seed: int = 7) -> SimulatedFeed:
    start = {
        name: spec.price_to_ticks(DEFAULT_START.get(name, "100")) for name, spec in specs.items()
    }
    return SimulatedFeed(specs, start, seed=seed)


# --- CSV replay --------------------------------------------------------------------------


def _timestamp_ns(text: str) -> int:
    """Return ns since epoch from integer ms (Binance style) or an ISO-8601 time."""
    text = text.strip()
    if text.isdigit():
        return int(text) * MS
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise FeedError(f"not a timestamp: {text!r}") from None
    if moment.tzinfo is None:
        raise FeedError(f"timestamp without a time zone: {text!r}")
    seconds = int(moment.timestamp())
    return seconds * 1_000_000_000 + moment.microsecond * 1_000


def csv_replay(
    lines: Iterable[str], specs: dict[str, SymbolSpec], source: str = "csv"
) -> Iterator[IndexPriceTick]:
    """Yield the ticks of a CSV of ``timestamp,symbol,price`` (a header row is skipped).

    ``timestamp`` is integer milliseconds since the epoch or ISO-8601 with a zone.
    Unknown symbols and malformed rows raise ``FeedError`` naming the line.
    """
    for number, row in enumerate(csv.reader(lines), start=1):
        if not row or row[0].startswith("#"):
            continue
        if number == 1 and row[0].strip().lower() in {"timestamp", "ts", "time"}:
            continue
        if len(row) != 3:
            raise FeedError(f"line {number}: expected timestamp,symbol,price")
        stamp, symbol, price = (cell.strip() for cell in row)
        spec = specs.get(symbol)
        if spec is None:
            raise FeedError(f"line {number}: unknown symbol {symbol!r}")
        try:
            yield IndexPriceTick(
                symbol=symbol,
                price=price_to_ticks(spec, price),
                ts=_timestamp_ns(stamp),
                source=source,
            )
        except FeedError as error:
            raise FeedError(f"line {number}: {error}") from None


def read_csv(path: Path | str, specs: dict[str, SymbolSpec]) -> Iterator[IndexPriceTick]:
    with open(path, newline="") as file:
        yield from csv_replay(file, specs)


# --- Binance USDⓈ-M mark price stream ----------------------------------------------------


def venue_symbol(spec: SymbolSpec) -> str:
    """Return Binance's name of our perpetual: BTC-PERP (BTC/USDT) -> BTCUSDT."""
    return f"{spec.base}{spec.quote}"


def parse_binance_mark_price(
    payload: str | bytes | dict | list, specs: dict[str, SymbolSpec]
) -> list[IndexPriceTick]:
    """Return the index ticks in a Binance ``markPriceUpdate`` message.

    Accepts one event (``<symbol>@markPrice``), the array of ``!markPrice@arr``, or either
    wrapped in a combined-stream envelope (``{"stream": ..., "data": ...}``). Takes the index
    price ``i`` and the event time ``E`` (ms); symbols we do not list are ignored.
    """
    data = json.loads(payload) if isinstance(payload, (str, bytes)) else payload
    if isinstance(data, dict) and "data" in data and "stream" in data:
        data = data["data"]
    events = data if isinstance(data, list) else [data]
    by_venue = {venue_symbol(spec): name for name, spec in specs.items()}
    ticks = []
    for event in events:
        if not isinstance(event, dict) or event.get("e") != "markPriceUpdate":
            raise FeedError(f"not a markPriceUpdate event: {str(event)[:80]}")
        name = by_venue.get(event.get("s", ""))
        if name is None:
            continue
        try:
            ts = int(event["E"]) * MS
            price = price_to_ticks(specs[name], str(event["i"]))
        except (KeyError, TypeError, ValueError) as error:
            raise FeedError(f"bad markPriceUpdate for {name}: {error}") from None
        ticks.append(IndexPriceTick(symbol=name, price=price, ts=ts, source="binance"))
    return ticks
