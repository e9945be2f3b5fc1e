"""Candles (klines) as the read model keeps them: the intervals, and one candle's fields.

The projector builds them from trades (``services/projector/candles.py``) and the gateway
reads them (``services/gateway/binance/candles.py``); the key layout is in
``libs/read_model/keys.py``. A candle is stored as a JSON array of integers (exchange units),
written by ``Candle.member`` and read by ``Candle.from_member``: exact at any size (JSON
numbers are exact in Python), and its open time comes first, so no two candles of a series
are one member.
"""

from __future__ import annotations

from dataclasses import dataclass

MINUTE_MS = 60_000

INTERVALS: dict[str, int] = {
    "1m": MINUTE_MS,
    "3m": 3 * MINUTE_MS,
    "5m": 5 * MINUTE_MS,
    "15m": 15 * MINUTE_MS,
    "30m": 30 * MINUTE_MS,
    "1h": 60 * MINUTE_MS,
    "2h": 120 * MINUTE_MS,
    "4h": 240 * MINUTE_MS,
    "6h": 360 * MINUTE_MS,
    "8h": 480 * MINUTE_MS,
    "12h": 720 * MINUTE_MS,
    "1d": 1440 * MINUTE_MS,
}
"""Binance's interval names -> their length in ms. Candles open at multiples of the length
since the epoch (UTC), as Binance's do for these intervals."""


@dataclass(slots=True)
class Candle:
    """One interval's trades: prices in ticks, volumes in lots, quote volumes in cash."""

    open_time: int  # ms
    open: int
    high: int
    low: int
    close: int
    volume: int
    quote_volume: int
    count: int
    taker_buy_volume: int
    taker_buy_quote_volume: int
    first_trade_id: int
    last_trade_id: int

    def fields(self) -> tuple[int, ...]:
        """Return the fields in order (astuple, without its deep copy)."""
        return (
            self.open_time,
            self.open,
            self.high,
            self.low,
            self.close,
            self.volume,
            self.quote_volume,
            self.count,
            self.taker_buy_volume,
            self.taker_buy_quote_volume,
            self.first_trade_id,
            self.last_trade_id,
        )

    def member(self) -> str:
        """Return the candle as its sorted-set member: a JSON array of its fields in order."""
        return "[" + ",".join(map(str, self.fields())) + "]"

    @classmethod
    def from_member(cls, member: str | bytes) -> Candle:
        text = member.decode() if isinstance(member, bytes) else member
        return cls(*map(int, text.strip("[]").split(",")))

    def merge(self, later: Candle) -> None:
        """Add the trades of ``later`` (of the same interval, after these) to this candle."""
        self.high = max(self.high, later.high)
        self.low = min(self.low, later.low)
        self.close = later.close
        self.volume += later.volume
        self.quote_volume += later.quote_volume
        self.count += later.count
        self.taker_buy_volume += later.taker_buy_volume
        self.taker_buy_quote_volume += later.taker_buy_quote_volume
        self.last_trade_id = later.last_trade_id

    def copy(self, open_time: int) -> Candle:
        """Return a copy opening at ``open_time``."""
        return Candle(open_time, *self.fields()[1:])


def open_time(at_ms: int, interval_ms: int) -> int:
    """Return the open time of the candle of ``interval_ms`` holding the time ``at_ms``."""
    return at_ms - at_ms % interval_ms
