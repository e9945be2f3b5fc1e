"""Names of the read model's Redis keys and pub/sub channels: the one place they are built.

The projector (``services/projector/``) is the read model's one writer, fed by the topics; the
gateway reads. The schema is in docs/READ-MODEL.md. Amounts are integers in exchange units
(ticks, lots, 1e-8 USDT) written as decimal strings; the gateway formats them.

Per user, besides orders and fills:
- ``account:{user}``: the last ``AccountUpdated``'s ``balance``, ``holds``, ``available``,
  ``margin`` and ``upnl``; and the read-your-writes watermarks, each the offset after the last
  record of a ``{topic}:{partition}`` (logical topic name) that the hash covers:
  ``told:`` the book records the wallet told the account about (``AccountUpdated.cause``),
  ``settled:`` the fills whose position event the wallet applied (``AccountUpdated.origin``),
  ``position:`` the fills whose ``PositionChanged`` is in ``positions:{user}``.
- ``leverage:{user}``: symbol -> leverage, for the symbols the user set one on.
- ``positions:{user}``: symbol -> JSON ``{"size", "entry_notional", "fees"}`` of each open
  position (signed lots, cash); the view (PnL, liquidation price, ...) is computed on read from
  these, the balance and the marks (``libs/read_model/positions.py``).
- ``income:{user}``: a sorted set of the user's income rows (Binance's ``GET /fapi/v1/income``),
  each scored by its time (ms) and stored as JSON ``{"symbol", "incomeType", "income", "time",
  "tranId", "tradeId"}`` (cash; ``tradeId`` "" when none): ``REALIZED_PNL`` and ``COMMISSION``
  from each ``PositionChanged`` (its ``realised_pnl``, minus its ``fee``; a zero amount makes
  no row) at the time of the fill's batch, ``FUNDING_FEE`` from ``FundingPaid`` at its funding
  time, ``INSURANCE_CLEAR`` from ``LiquidationSettled`` (minus its ``insurance_delta``: what
  went from the user to the fund, or came back) at the time of the record that ended the
  liquidation. ``tranId`` is a 52-bit hash of the row's identity; the newest ``INCOME_KEPT``.
- ``realised_pnl:{user}``: a sorted set of the realised PnL of each fill that realised some,
  scored by the fill's time (ms, its ``fills:{user}`` ``ts``) and stored as the JSON array
  ``[symbol, trade_id, realised_pnl]`` (cash); the newest ``FILLS_KEPT``, like the fills.
Per symbol: ``mark:{symbol}`` (``mark``, ``index`` in ticks, ``ts`` in ns, ``open_interest``:
the lots of the long positions as of that mark) and ``funding:{symbol}`` (``rate`` of the last
funding, 1e-8; ``next_funding_time`` in ns).

Per symbol, the history the Binance face serves (``libs/read_model/candles.py``):
- ``candles:{symbol}:{interval}`` (``interval``: 1m, 3m, 5m, 15m, 30m, 1h, 2h, 4h, 6h, 8h,
  12h, 1d): a sorted set of the candles built from the symbol's trades, each scored by its
  open time (ms) and stored as the JSON array ``[open_time, open, high, low, close, volume,
  quote_volume, count, taker_buy_volume, taker_buy_quote_volume, first_trade_id,
  last_trade_id]`` (ticks, lots, cash). One member per open time (a flush replaces the member
  of a candle that changed: ``ZREMRANGEBYSCORE`` of its open time, then ``ZADD``); the newest
  ``CANDLES_KEPT``; an interval without trades has no candle. The newest member is the series'
  open candle, which the projector also holds in memory (and restores from here).
- ``funding_rates:{symbol}``: a sorted set of the symbol's fundings (``FundingRateSet``), each
  scored by its funding time (ms) and stored as JSON ``{"funding_time", "rate", "mark"}`` (ns,
  1e-8, ticks; ``mark`` 0 when the event did not tell it); the newest ``FUNDING_RATES_KEPT``.

Trades, fills, candles and income rows take the time of their matcher batch
(``BatchCompleted.ts``, in ms), per symbol never earlier than the symbol's previous trades: a
function of the log, so a rebuild gives the same times. The newest ``trades:{symbol}`` entry's
``ts`` is that clock when the projector restores from Redis. A position event tells no time:
the projector remembers the time of each matcher record that can cause an income row in
``projector:record_times`` (``record_time_field`` -> ms, the newest ``RECORD_TIMES_KEPT``),
and a restart loads it.
"""

from __future__ import annotations

ORDER_HISTORY = 1000
"""Orders kept per user in ``orders:all:{user}`` (open and pending ones are never dropped)."""
TRADES_KEPT = 500
"""Trades kept per symbol in ``trades:{symbol}``."""
FILLS_KEPT = 500
"""Fills kept per user in ``fills:{user}``."""
CANDLES_KEPT = 1500
"""Candles kept per symbol and interval in ``candles:{symbol}:{interval}`` (Binance's page)."""
FUNDING_RATES_KEPT = 1000
"""Fundings kept per symbol in ``funding_rates:{symbol}``."""
INCOME_KEPT = 1000
"""Income rows kept per user in ``income:{user}`` (Binance's largest page)."""
RECORD_TIMES_KEPT = 100_000
"""Matcher record times kept in ``projector:record_times``: how far (in fills and liquidation
ends) a position event may lag its cause and still take its batch's time."""

ORDER_KEY_PREFIX = "order:"

READY_KEY = "projector:ready"
"""Set once the projector owns the read model; missing means rebuild it from offset 0."""
OFFSETS_KEY = "projector:offsets"
"""Hash ``topic:partition`` -> next offset to read: what the rest of the read model covers."""
HELD_KEY = "projector:held"
"""Hash order id -> ``1`` / ``0`` (request seen or not) of the orders the projector holds in
memory: open, pending, or closed but still waiting for their ``PlaceOrder``."""
RECORD_TIMES_KEY = "projector:record_times"
"""Hash ``record_time_field`` -> ms: the times of the matcher records income rows may need."""

OWNED_PATTERNS = (
    "account:*",
    "leverage:*",
    "positions:*",
    "mark:*",
    "funding:*",
    "funding_rates:*",
    "candles:*",
    "order:*",
    "orders:*",
    "coid:*",
    "book:*",
    "trades:*",
    "fills:*",
    "income:*",
    "realised_pnl:*",
    "projector:*",
)
"""Every key the projector writes: what a rebuild from offset 0 deletes first."""


def order_key(order_id: int) -> str:
    return f"{ORDER_KEY_PREFIX}{order_id}"


def open_orders_key(user_id: int) -> str:
    return f"orders:open:{user_id}"


def all_orders_key(user_id: int) -> str:
    return f"orders:all:{user_id}"


def client_order_prefix(user_id: int) -> str:
    return f"coid:{user_id}:"


def client_order_key(user_id: int, client_order_id: str) -> str:
    return f"{client_order_prefix(user_id)}{client_order_id}"


def book_key(symbol: str) -> str:
    return f"book:{symbol}"


def trades_key(symbol: str) -> str:
    return f"trades:{symbol}"


def fills_key(user_id: int) -> str:
    return f"fills:{user_id}"


def income_key(user_id: int) -> str:
    return f"income:{user_id}"


def realised_pnl_key(user_id: int) -> str:
    return f"realised_pnl:{user_id}"


def record_time_field(partition: int, offset: int) -> str:
    """The ``projector:record_times`` field of a ``matcher.events`` record."""
    return f"{partition}:{offset}"


def parse_record_time_field(field: str) -> tuple[int, int]:
    partition, _, offset = field.partition(":")
    return int(partition), int(offset)


def account_key(user_id: int) -> str:
    return f"account:{user_id}"


def leverage_key(user_id: int) -> str:
    return f"leverage:{user_id}"


def positions_key(user_id: int) -> str:
    return f"positions:{user_id}"


def mark_key(symbol: str) -> str:
    return f"mark:{symbol}"


def funding_key(symbol: str) -> str:
    return f"funding:{symbol}"


def candles_key(symbol: str, interval: str) -> str:
    return f"candles:{symbol}:{interval}"


def funding_rates_key(symbol: str) -> str:
    return f"funding_rates:{symbol}"


def told_field(topic: str, partition: int) -> str:
    """The account's watermark of the book records the wallet told it about."""
    return f"told:{topic}:{partition}"


def settled_field(topic: str, partition: int) -> str:
    """The account's watermark of the fills whose position event the wallet applied."""
    return f"settled:{topic}:{partition}"


def position_field(topic: str, partition: int) -> str:
    """The account's watermark of the fills whose position change ``positions:{user}`` shows."""
    return f"position:{topic}:{partition}"


def offsets_field(topic: str, partition: int) -> str:
    return f"{topic}:{partition}"


def parse_offsets_field(field: str) -> tuple[str, int]:
    """Return (topic, partition) of an ``offsets_field`` (topic names never hold a colon)."""
    topic, _, partition = field.rpartition(":")
    return topic, int(partition)


def depth_channel(symbol: str) -> str:
    return f"ws:depth:{symbol}"


def trades_channel(symbol: str) -> str:
    return f"ws:trades:{symbol}"


def mark_channel(symbol: str) -> str:
    return f"ws:mark:{symbol}"


def user_channel(user_id: int) -> str:
    return f"ws:user:{user_id}"
