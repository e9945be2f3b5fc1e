"""Each symbol's candles of every interval, built from its trades one matcher batch at a time.

Every trade of a batch takes the batch's time (``time``), so a batch's trades fall in one
candle of each interval: they are first summed into one candle of the batch (``trade``), which
``settle`` then adds to the open candle of each interval (or opens the next one with). Memory
holds the open (newest) candle of each series and each symbol's clock; a flush writes every
candle that changed (``libs/read_model/keys.py``).
"""

from __future__ import annotations

from libs.read_model import keys
from libs.read_model.candles import INTERVALS, Candle, open_time
from libs.redis_batch import Command


class Candles:
    """The open candle of each symbol's series, and what the next flush writes of them."""

    def __init__(
        self,
        latest: dict[str, dict[str, Candle]] | None = None,
        clock: dict[str, int] | None = None,
    ) -> None:
        self.latest: dict[str, dict[str, Candle]] = latest or {}
        """Symbol -> interval -> its newest candle (the one trades go to or close)."""
        self.clock: dict[str, int] = clock or {}
        """Symbol -> the time (ms) of its last trades: no later trade is stamped earlier."""
        self._batch: dict[str, Candle] = {}  # symbol -> the current batch's trades
        self._written: dict[tuple[str, str], dict[int, Candle]] = {}
        self._opened: set[tuple[str, str]] = set()

    def time(self, symbol: str, ts_ns: int) -> int:
        """Return the time (ms) of a batch's trades of ``symbol``: the batch's ``ts``, never
        before the symbol's last trades (the last ones' time when ``ts`` is 0)."""
        return max(ts_ns // 1_000_000, self.clock.get(symbol, 0))

    def trade(
        self, symbol: str, at_ms: int, trade_id: int, price: int, qty: int, quote: int, buy: bool
    ) -> None:
        """Count one trade (``buy``: its taker bought) at ``at_ms``, its batch's time."""
        batch = self._batch.get(symbol)
        if batch is not None and batch.open_time != at_ms:
            self.settle()
            batch = None
        bought, bought_quote = (qty, quote) if buy else (0, 0)
        if batch is None:
            self._batch[symbol] = Candle(
                at_ms,
                price,
                price,
                price,
                price,
                qty,
                quote,
                1,
                bought,
                bought_quote,
                trade_id,
                trade_id,
            )
            self.clock[symbol] = at_ms
            return
        batch.high = max(batch.high, price)
        batch.low = min(batch.low, price)
        batch.close = price
        batch.volume += qty
        batch.quote_volume += quote
        batch.count += 1
        batch.taker_buy_volume += bought
        batch.taker_buy_quote_volume += bought_quote
        batch.last_trade_id = trade_id

    def settle(self) -> None:
        """Add the counted trades to every interval's candle (at the end of each batch)."""
        for symbol, batch in self._batch.items():
            series = self.latest.setdefault(symbol, {})
            for interval, length in INTERVALS.items():
                start = open_time(batch.open_time, length)
                candle = series.get(interval)
                key = (symbol, interval)
                if candle is None or candle.open_time < start:
                    candle = series[interval] = batch.copy(start)
                    self._opened.add(key)
                else:
                    candle.merge(batch)
                self._written.setdefault(key, {})[candle.open_time] = candle
        self._batch.clear()

    def commands(self) -> list[Command]:
        """Return the writes of every candle that changed since the last call, each series
        trimmed to its newest ``CANDLES_KEPT`` when a candle opened in it."""
        self.settle()
        out: list[Command] = []
        for (symbol, interval), candles in self._written.items():
            key = keys.candles_key(symbol, interval)
            for start in sorted(candles):
                out.append(("ZREMRANGEBYSCORE", key, start, start))
                out.append(("ZADD", key, start, candles[start].member()))
            if (symbol, interval) in self._opened:
                out.append(("ZREMRANGEBYRANK", key, 0, -(keys.CANDLES_KEPT + 1)))
        self._written = {}
        self._opened = set()
        return out

    def state(self) -> dict:
        """Return what memory holds, for the projection's digest."""
        return {
            symbol: [
                self.clock.get(symbol, 0),
                {interval: candle.fields() for interval, candle in sorted(series.items())},
            ]
            for symbol, series in sorted(self.latest.items())
        }
