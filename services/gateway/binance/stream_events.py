"""Binance USDⓈ-M stream names and events, built from what the projector publishes.

Pure: stream names in, ``Stream`` out; a projector payload (docs/READ-MODEL.md, "pub/sub")
in, Binance's event dicts out. No Redis, no clock (times are passed in, in ms). The I/O
around them (subscriptions, snapshots, the socket) is ``streams.py``; docs/BINANCE-API.md
("WebSocket streams") lists each event's fields and what is constant here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

from libs import perpetual
from libs.money import format_cash, format_rate
from libs.read_model import keys
from libs.read_model.candles import INTERVALS
from libs.symbols import SymbolSpec
from services.gateway.binance.names import STATUSES, TYPE_NAMES, binance_name

# --- stream names ---------------------------------------------------------------------------

DIFF_DEPTH, PARTIAL_DEPTH, BOOK_TICKER = "depth", "partial", "bookTicker"
AGG_TRADE, TRADE, KLINE = "aggTrade", "trade", "kline"
MARK_PRICE, ALL_MARK_PRICES, ALL_BOOK_TICKERS = "markPrice", "allMarkPrices", "allBookTickers"
USER = "user"

PARTIAL_LEVELS = (5, 10, 20)
SPEEDS = ("", "@100ms", "@250ms", "@500ms")
"""Update speeds Binance offers; accepted, and every stream here pushes each change at once."""

INTERVALS_MS = {**INTERVALS, "3d": 3 * INTERVALS["1d"], "1w": 7 * INTERVALS["1d"]}
"""The read model's candle intervals, and the two longer ones Binance's kline stream has."""
WEEK_OFFSET_MS = 4 * INTERVALS["1d"]
"""Binance's weeks start on Monday 00:00 UTC; 1970-01-01 was a Thursday."""
MONTH = "1M"

_SYMBOL_STREAM = re.compile(
    r"(?P<symbol>[a-z0-9]{1,30})@(?:"
    r"(?P<depth>depth)(?P<levels>5|10|20)?(?P<speed>@100ms|@250ms|@500ms)?"
    r"|(?P<agg>aggTrade)|(?P<trade>trade)|(?P<book>bookTicker)"
    r"|(?P<mark>markPrice)(?:@1s)?"
    r"|kline_(?P<interval>1m|3m|5m|15m|30m|1h|2h|4h|6h|8h|12h|1d|3d|1w|1M))"
)
_ALL_MARKS = re.compile(r"!markPrice@arr(?:@1s)?")


@dataclass(frozen=True, slots=True)
class Stream:
    """A market stream: what it shows (``kind``), of which contracts (exchange names)."""

    name: str
    kind: str
    symbols: tuple[str, ...]
    levels: int = 0
    interval: str = ""

    def channels(self) -> list[str]:
        """The projector's channels this stream is built from."""
        channel = {
            DIFF_DEPTH: keys.depth_channel,
            PARTIAL_DEPTH: keys.depth_channel,
            BOOK_TICKER: keys.depth_channel,
            ALL_BOOK_TICKERS: keys.depth_channel,
            AGG_TRADE: keys.trades_channel,
            TRADE: keys.trades_channel,
            KLINE: keys.trades_channel,
            MARK_PRICE: keys.mark_channel,
            ALL_MARK_PRICES: keys.mark_channel,
        }[self.kind]
        return [channel(symbol) for symbol in self.symbols]

    @property
    def needs_book(self) -> bool:
        return self.kind in (PARTIAL_DEPTH, BOOK_TICKER, ALL_BOOK_TICKERS)


def parse_stream(name: str, specs: dict[str, SymbolSpec]) -> Stream | None:
    """Return the market stream ``name`` names, None when it names none of ``specs`` (the
    contracts by Binance name, upper case). The symbol may be in any case; the rest is
    Binance's spelling."""
    if _ALL_MARKS.fullmatch(name):
        return Stream(name, ALL_MARK_PRICES, tuple(s.name for s in specs.values()))
    if name == "!bookTicker":
        return Stream(name, ALL_BOOK_TICKERS, tuple(s.name for s in specs.values()))
    found = _SYMBOL_STREAM.fullmatch(name.partition("@")[0].lower() + "@" + name.partition("@")[2])
    if found is None:
        return None
    spec = specs.get(found["symbol"].upper())
    if spec is None:
        return None
    symbols = (spec.name,)
    if found["depth"]:
        if found["levels"]:
            return Stream(name, PARTIAL_DEPTH, symbols, levels=int(found["levels"]))
        return Stream(name, DIFF_DEPTH, symbols)
    if found["interval"]:
        return Stream(name, KLINE, symbols, interval=found["interval"])
    kind = AGG_TRADE if found["agg"] else TRADE if found["trade"] else None
    kind = kind or (BOOK_TICKER if found["book"] else MARK_PRICE)
    return Stream(name, kind, symbols)


# --- the book -------------------------------------------------------------------------------


def _levels(spec: SymbolSpec, rows: list[list[int]] | list[tuple[int, int]]) -> list[list[str]]:
    return [[spec.ticks_to_price(p), spec.lots_to_qty(q)] for p, q in rows]


def depth_update(spec: SymbolSpec, raw: dict, now_ms: int) -> dict:
    """A ``ws:depth`` message as Binance's diff depth event. The projector's update ids have
    no gaps (each message's first id is the previous one's last + 1), so ``pu``, the previous
    event's ``u``, is ``U - 1`` whichever message a client saw before; ``u`` is the id that
    ``book:{symbol}`` (and so ``GET /fapi/v1/depth``'s ``lastUpdateId``) holds after it."""
    first = int(raw["first_update_id"])
    return {
        "e": "depthUpdate",
        "E": now_ms,
        "T": now_ms,
        "s": binance_name(spec),
        "U": first,
        "u": int(raw["update_id"]),
        "pu": first - 1,
        "b": _levels(spec, raw["bids"]),
        "a": _levels(spec, raw["asks"]),
    }


@dataclass(slots=True)
class LocalBook:
    """A contract's book as of ``update_id``: a snapshot, then the updates after it."""

    update_id: int
    bids: dict[int, int] = field(default_factory=dict)
    asks: dict[int, int] = field(default_factory=dict)

    @classmethod
    def from_snapshot(cls, update_id: int, bids: list, asks: list) -> LocalBook:
        return cls(update_id, {int(p): int(q) for p, q in bids}, {int(p): int(q) for p, q in asks})

    def apply(self, raw: dict) -> bool:
        """Apply a ``ws:depth`` message; False when the snapshot already holds it."""
        if int(raw["update_id"]) <= self.update_id:
            return False
        for side, rows in ((self.bids, raw["bids"]), (self.asks, raw["asks"])):
            for price, qty in rows:
                if int(qty):
                    side[int(price)] = int(qty)
                else:
                    side.pop(int(price), None)
        self.update_id = int(raw["update_id"])
        return True

    def top(self, levels: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        bids = sorted(self.bids.items(), reverse=True)[:levels]
        asks = sorted(self.asks.items())[:levels]
        return bids, asks

    def best(self) -> tuple[tuple[int, int], tuple[int, int]]:
        bids, asks = self.top(1)
        return (bids[0] if bids else (0, 0)), (asks[0] if asks else (0, 0))


def partial_depth(spec: SymbolSpec, book: LocalBook, levels: int, now_ms: int) -> dict:
    """Binance's partial book depth event: the best ``levels`` of each side."""
    bids, asks = book.top(levels)
    return {
        "e": "depthUpdate",
        "E": now_ms,
        "T": now_ms,
        "s": binance_name(spec),
        "U": book.update_id,
        "u": book.update_id,
        "pu": book.update_id - 1,
        "b": _levels(spec, bids),
        "a": _levels(spec, asks),
    }


def book_ticker(spec: SymbolSpec, book: LocalBook, now_ms: int) -> dict:
    (bid, bid_qty), (ask, ask_qty) = book.best()
    return {
        "e": "bookTicker",
        "u": book.update_id,
        "E": now_ms,
        "T": now_ms,
        "s": binance_name(spec),
        "b": spec.ticks_to_price(bid),
        "B": spec.lots_to_qty(bid_qty),
        "a": spec.ticks_to_price(ask),
        "A": spec.lots_to_qty(ask_qty),
    }


# --- trades and candles ---------------------------------------------------------------------


def agg_trade(spec: SymbolSpec, raw: dict) -> dict:
    """A trade as Binance's aggregate trade: one taker's fill at one price is one trade here,
    so ``f`` = ``l`` = ``a``."""
    trade_id, qty = int(raw["trade_id"]), spec.lots_to_qty(int(raw["qty"]))
    return {
        "e": "aggTrade",
        "E": int(raw["ts"]),
        "a": trade_id,
        "s": binance_name(spec),
        "p": spec.ticks_to_price(int(raw["price"])),
        "q": qty,
        "nq": qty,
        "f": trade_id,
        "l": trade_id,
        "T": int(raw["ts"]),
        "m": raw["taker_side"] == "sell",
    }


def trade(spec: SymbolSpec, raw: dict) -> dict:
    return {
        "e": "trade",
        "E": int(raw["ts"]),
        "T": int(raw["ts"]),
        "s": binance_name(spec),
        "t": int(raw["trade_id"]),
        "p": spec.ticks_to_price(int(raw["price"])),
        "q": spec.lots_to_qty(int(raw["qty"])),
        "X": "MARKET",
        "m": raw["taker_side"] == "sell",
    }


def interval_bounds(interval: str, ts_ms: int) -> tuple[int, int]:
    """The candle of ``interval`` that holds ``ts_ms``: its open time and its close time (the
    last ms in it), UTC, as Binance aligns them."""
    if interval == MONTH:
        moment = datetime.fromtimestamp(ts_ms // 1000, UTC)
        year, month = divmod(moment.month, 12)
        first = datetime(moment.year, moment.month, 1, tzinfo=UTC)
        after = datetime(moment.year + year, month + 1, 1, tzinfo=UTC)
        return int(first.timestamp()) * 1000, int(after.timestamp()) * 1000 - 1
    width = INTERVALS_MS[interval]
    offset = WEEK_OFFSET_MS if interval == "1w" else 0
    start = (ts_ms - offset) // width * width + offset
    return start, start + width - 1


@dataclass(slots=True)
class Candle:
    """One interval's trades, summed."""

    start: int
    end: int
    open: int
    high: int
    low: int
    close: int
    first_id: int
    last_id: int
    volume: int = 0  # lots
    quote: int = 0  # cash
    taker_buy_volume: int = 0
    taker_buy_quote: int = 0
    count: int = 0


@dataclass(slots=True)
class CandleBuilder:
    """The current candle of one contract and interval, from its trades in order."""

    spec: SymbolSpec
    interval: str
    candle: Candle | None = None
    last_trade_id: int = 0

    def add(self, raw: dict) -> list[tuple[Candle, bool]]:
        """Add a trade; return the candles to show, each with whether it is closed: the
        previous one (closed) when the trade opens a new interval, then the current one.
        A trade at or before ``last_trade_id`` (already counted) shows nothing."""
        trade_id, ts = int(raw["trade_id"]), int(raw["ts"])
        if trade_id <= self.last_trade_id:
            return []
        self.last_trade_id = trade_id
        shown: list[tuple[Candle, bool]] = []
        price, qty = int(raw["price"]), int(raw["qty"])
        candle = self.candle
        if candle is not None and ts < candle.start:
            return []  # a late trade of an interval already shown closed
        if candle is None or ts > candle.end:
            if candle is not None:
                shown.append((candle, True))
            start, end = interval_bounds(self.interval, ts)
            candle = self.candle = Candle(start, end, price, price, price, price, trade_id, 0)
        notional = self.spec.notional(price, qty)
        candle.high, candle.low = max(candle.high, price), min(candle.low, price)
        candle.close, candle.last_id = price, trade_id
        candle.volume += qty
        candle.quote += notional
        candle.count += 1
        if raw["taker_side"] == "buy":
            candle.taker_buy_volume += qty
            candle.taker_buy_quote += notional
        shown.append((candle, False))
        return shown


def kline(spec: SymbolSpec, interval: str, candle: Candle, closed: bool, now_ms: int) -> dict:
    name = binance_name(spec)
    return {
        "e": "kline",
        "E": now_ms,
        "s": name,
        "k": {
            "t": candle.start,
            "T": candle.end,
            "s": name,
            "i": interval,
            "f": candle.first_id,
            "L": candle.last_id,
            "o": spec.ticks_to_price(candle.open),
            "c": spec.ticks_to_price(candle.close),
            "h": spec.ticks_to_price(candle.high),
            "l": spec.ticks_to_price(candle.low),
            "v": spec.lots_to_qty(candle.volume),
            "n": candle.count,
            "x": closed,
            "q": format_cash(candle.quote),
            "V": spec.lots_to_qty(candle.taker_buy_volume),
            "Q": format_cash(candle.taker_buy_quote),
            "B": "0",
        },
    }


# --- the mark -------------------------------------------------------------------------------


def mark_price(spec: SymbolSpec, raw: dict, rate: int, next_funding_ms: int) -> dict:
    """A ``ws:mark`` mark message as Binance's ``markPriceUpdate``; ``rate`` (1e-8) and
    ``next_funding_ms`` are what ``funding:{symbol}`` holds. A perpetual never settles: ``P``,
    the estimated settle price, is the index."""
    index = spec.ticks_to_price(int(raw["index"]))
    return {
        "e": "markPriceUpdate",
        "E": int(raw["ts"]) // 1_000_000,
        "s": binance_name(spec),
        "p": spec.ticks_to_price(int(raw["mark"])),
        "ap": spec.ticks_to_price(int(raw["mark"])),
        "i": index,
        "P": index,
        "r": format_rate(rate),
        "T": next_funding_ms,
    }


# --- the user data stream -------------------------------------------------------------------

FINAL = frozenset(("FILLED", "CANCELED", "EXPIRED", "REJECTED"))
ASSET = "USDT"


@dataclass(slots=True)
class Tracked:
    """What the stream knows of one of the user's orders that is not final."""

    price: str
    qty: int
    filled: int = 0  # lots whose fills this stream saw (or read)
    notional: int = 0  # their cash value


def _qty(spec: SymbolSpec, lots: int) -> str:
    return ("-" if lots < 0 else "") + spec.lots_to_qty(abs(lots))


def execution_type(status: str, fill: dict | None, tracked: Tracked | None, fields: dict) -> str:
    """Binance's ``x``: what happened to the order in this event."""
    if fill is not None:
        return "TRADE"
    if status in ("CANCELED", "EXPIRED", "REJECTED"):
        return status
    if tracked is not None and (tracked.price, tracked.qty) != (
        fields.get("price", ""),
        int(fields.get("qty") or 0),
    ):
        return "AMENDMENT"
    return "NEW"


def average_price(spec: SymbolSpec, tracked: Tracked | None) -> str:
    if tracked is None or not tracked.filled:
        return "0"
    return spec.ticks_to_price(tracked.notional // (tracked.filled * spec.cash_per_tick_lot))


def order_update(
    spec: SymbolSpec,
    fields: dict,
    execution: str,
    fill: dict | None,
    average: str,
    now_ms: int,
) -> dict:
    """A ``ws:user`` order message (``fields``: the order hash), with the fill that caused it
    when there is one, as Binance's ``ORDER_TRADE_UPDATE``."""
    order_id = int(fields["order_id"])
    kind = str(fields.get("order_type", ""))
    binance_type = TYPE_NAMES.get(kind, kind.upper())
    client_id = str(fields.get("client_order_id") or "")
    if not client_id and kind == "liquidation":
        client_id = f"autoclose-{order_id}"
    price, stop = fields.get("price") or "", fields.get("stop_price") or ""
    at = int(fill["ts"]) if fill is not None else now_ms
    return {
        "e": "ORDER_TRADE_UPDATE",
        "E": now_ms,
        "T": at,
        "o": {
            "s": binance_name(spec),
            "c": client_id,
            "S": str(fields.get("side", "")).upper(),
            "o": binance_type,
            "f": fields.get("tif") or "GTC",
            "q": spec.lots_to_qty(int(fields.get("qty") or 0)),
            "p": spec.ticks_to_price(int(price)) if price else "0",
            "ap": average,
            "sp": spec.ticks_to_price(int(stop)) if stop else "0",
            "x": execution,
            "X": STATUSES.get(str(fields.get("status")), str(fields.get("status"))),
            "i": order_id,
            "l": spec.lots_to_qty(int(fill["qty"])) if fill is not None else "0",
            "z": spec.lots_to_qty(int(fields.get("filled") or 0)),
            "L": spec.ticks_to_price(int(fill["price"])) if fill is not None else "0",
            "N": ASSET,
            "n": format_cash(int(fill["fee"])) if fill is not None else "0",
            "T": at,
            "t": int(fill["trade_id"]) if fill is not None else 0,
            "b": "0",
            "a": "0",
            "m": bool(fill["maker"]) if fill is not None else False,
            "R": fields.get("reduce_only") in ("1", 1, True),
            "wt": "CONTRACT_PRICE",
            "ot": binance_type,
            "ps": "BOTH",
            "cp": False,
            "rp": "0",
            "pP": False,
            "si": 0,
            "ss": 0,
            "V": "NONE",
            "pm": "NONE",
            "gtd": 0,
        },
    }


def balance_update(raw: dict, now_ms: int) -> dict:
    """A ``ws:user`` account message as Binance's ``ACCOUNT_UPDATE`` (balances only). Margin
    is cross: the cross wallet balance is the wallet balance."""
    balance = format_cash(int(raw["balance"]))
    return _account_update(now_ms, [{"a": ASSET, "wb": balance, "cw": balance, "bc": "0"}], [])


def position_update(spec: SymbolSpec, raw: dict, mark: int | None, now_ms: int) -> dict:
    """A ``ws:user`` position message as Binance's ``ACCOUNT_UPDATE`` (one position); the
    unrealised PnL is at ``mark`` (the entry price while the contract has no mark)."""
    size, entry = int(raw["size"]), int(raw["entry_notional"])
    lots = abs(size)
    if lots:
        entry_price = spec.ticks_to_price(entry // (lots * spec.cash_per_tick_lot))
        at = perpetual.mark_or_entry(spec, size, entry, mark)
        upnl = perpetual.unrealised_pnl(spec, size, entry, at)
        break_even = perpetual.break_even_price(spec, size, entry, int(raw.get("fee") or 0))
        break_even_price = spec.ticks_to_price(break_even)
    else:
        entry_price, upnl, break_even_price = "0", 0, "0"
    row = {
        "s": binance_name(spec),
        "pa": _qty(spec, size),
        "ep": entry_price,
        "bep": break_even_price,
        "cr": format_cash(int(raw.get("realised_pnl") or 0)),
        "up": format_cash(upnl),
        "mt": "cross",
        "iw": "0",
        "ps": "BOTH",
    }
    return _account_update(now_ms, [], [row])


def _account_update(now_ms: int, balances: list[dict], positions: list[dict]) -> dict:
    return {
        "e": "ACCOUNT_UPDATE",
        "E": now_ms,
        "T": now_ms,
        "a": {"m": "ORDER", "B": balances, "P": positions},
    }


def listen_key_expired(listen_key: str, now_ms: int) -> dict:
    return {"e": "listenKeyExpired", "E": now_ms, "listenKey": listen_key}
