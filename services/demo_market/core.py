"""The demo market's decisions, pure: quote ladders, taker orders, position limits, re-quoting,
the request budget and what to do with an answer. No I/O and no clock: prices are integer ticks,
quantities integer lots, times are given.

A bot's position on a symbol stays within its limit (lots) whatever fills: the maker rests on a
side no more than the room that side leaves (``side_budgets``), also while it replaces its
quotes level by level (``replacement``, ``Room``), and a taker never sends more than that room
(``taker_order``). Past half the limit the takers only reduce, toward flat; the maker skews its
prices against its position but keeps both sides (each taker's limit is a share of the
maker's, ``taker_limit``, so the takers alone cannot push it past half of it: its book stays
two-sided).
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal
from enum import Enum

BUY, SELL = "BUY", "SELL"
BPS = 10_000
NOTIONAL_HEADROOM = Decimal("1.05")
"""Sizes clear the minimum notional by 5%: a market order's notional is judged at the mark."""


# --- markets ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Market:
    """A contract's grid and bounds, as ``exchangeInfo`` states them."""

    symbol: str  # the Binance name the signed endpoints take: BTCUSDT
    name: str  # the exchange's own name: BTC-PERP
    tick: Decimal
    lot: Decimal
    min_lots: int
    max_lots: int
    min_notional: Decimal

    def ticks(self, price: Decimal) -> int:
        """Return ``price`` on the tick grid (half-even), at least one tick."""
        return max(1, int((price / self.tick).to_integral_value(rounding=ROUND_HALF_EVEN)))

    def lots(self, quantity: Decimal) -> int:
        """Return a signed quantity in lots (toward zero: a position is on the grid anyway)."""
        return int(quantity / self.lot)

    def price_text(self, ticks: int) -> str:
        return str((self.tick * ticks).quantize(self.tick))

    def qty_text(self, lots: int) -> str:
        return str((self.lot * lots).quantize(self.lot))

    def notional(self, ticks: int, lots: int) -> Decimal:
        return self.tick * ticks * self.lot * lots

    def min_lots_at(self, ticks: int) -> int:
        """The fewest lots an order at ``ticks`` may have (lot and notional minimums)."""
        need = self.min_notional * NOTIONAL_HEADROOM / (self.tick * ticks * self.lot)
        return max(self.min_lots, int(need.to_integral_value(rounding=ROUND_CEILING)))

    def lots_for(self, notional: Decimal, ticks: int) -> int:
        """The lots of an order worth about ``notional`` at ``ticks``, within the bounds."""
        want = notional / (self.tick * ticks * self.lot)
        lots = int(want.to_integral_value(rounding=ROUND_CEILING))
        return min(self.max_lots, max(lots, self.min_lots_at(ticks)))


def market_of(entry: dict) -> Market:
    """Return the ``Market`` of one ``exchangeInfo`` symbol entry."""
    filters = {f["filterType"]: f for f in entry["filters"]}
    lots = filters["LOT_SIZE"]
    lot = Decimal(lots["stepSize"])
    return Market(
        symbol=entry["symbol"],
        name=f"{entry['baseAsset']}-PERP",
        tick=Decimal(filters["PRICE_FILTER"]["tickSize"]),
        lot=lot,
        min_lots=max(1, int(Decimal(lots["minQty"]) / lot)),
        max_lots=int(Decimal(lots["maxQty"]) / lot),
        min_notional=Decimal(filters.get("MIN_NOTIONAL", {}).get("notional", "0")),
    )


def select_markets(markets: Iterable[Market], wanted: str) -> list[Market]:
    """The markets named in ``wanted`` (``BTC-PERP,ETHUSDT``; empty: all), in its order."""
    listed = list(markets)
    names = [w.strip() for w in wanted.split(",") if w.strip()]
    if not names:
        return listed
    by_name = {m.name.upper(): m for m in listed} | {m.symbol.upper(): m for m in listed}
    unknown = [n for n in names if n.upper() not in by_name]
    if unknown:
        raise ValueError(f"unknown symbols {unknown}; listed: {[m.name for m in listed]}")
    chosen: list[Market] = []
    for n in names:
        if by_name[n.upper()] not in chosen:
            chosen.append(by_name[n.upper()])
    return chosen


def parse_reference_prices(text: str) -> dict[str, Decimal]:
    """``BTC-PERP=60000,ETH-PERP=3000`` -> {name: price} (names as given, upper case)."""
    prices: dict[str, Decimal] = {}
    for pair in filter(None, (p.strip() for p in text.split(","))):
        name, sep, price = pair.partition("=")
        if not sep or Decimal(price) <= 0:
            raise ValueError(f"not SYMBOL=price: {pair!r}")
        prices[name.strip().upper()] = Decimal(price)
    return prices


def reference_price(*candidates: Decimal | None) -> Decimal | None:
    """The first positive price of ``candidates`` (index, mark, last trade, configured):
    the exchange reads an unknown price as zero."""
    return next((p for p in candidates if p is not None and p > 0), None)


def position_limit(market: Market, max_notional: Decimal, ticks: int) -> int:
    """The lots a position may reach: ``max_notional`` at ``ticks``, rounded down."""
    lots = max_notional / (market.tick * ticks * market.lot)
    return int(lots.to_integral_value(rounding=ROUND_FLOOR))


# --- the maker ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Quote:
    side: str
    ticks: int
    lots: int


@dataclass(frozen=True, slots=True)
class LadderShape:
    levels: int
    spread_bps: int  # the first level's distance from the price
    step_bps: int  # between levels
    level_notional: Decimal


def past_half(position: int, limit: int) -> tuple[bool, bool]:
    """Which sides (buy, sell) would grow a position already past half its limit (the
    maker re-quotes when this changes)."""
    return 2 * position >= limit, -2 * position >= limit


def side_budgets(position: int, limit: int) -> tuple[int, int]:
    """The lots the maker may rest on each side (buy, sell) so that, whatever fills, the
    position stays within ``limit``: the room to the limit."""
    return max(0, limit - position), max(0, limit + position)


def taker_limit(maker_limit: int, takers: int) -> int:
    """A taker's limit: its share of half the maker's, so that the takers together, trading
    only with the maker, never take it past half of its own."""
    return maker_limit // (2 * max(1, takers))


def ladder(market: Market, mid: int, position: int, limit: int, shape: LadderShape) -> list[Quote]:
    """The maker's quotes around ``mid`` (ticks), inner levels first, bid and ask in turn.

    Prices are skewed against the position (a long quotes lower, to sell sooner); each side's
    sizes add up to at most its budget, and a level too small for the minimums ends the side.
    """
    half = max(1, mid * shape.spread_bps // BPS)
    step = max(1, mid * shape.step_bps // BPS)
    skew = 0
    if limit > 0:
        skew = min(half, abs(position) * half // limit) * (1 if position > 0 else -1)
    center = mid - skew
    budgets = dict(zip((BUY, SELL), side_budgets(position, limit), strict=True))
    sides: dict[str, list[Quote]] = {BUY: [], SELL: []}
    for side, sign in ((BUY, -1), (SELL, 1)):
        left = budgets[side]
        for level in range(shape.levels):
            ticks = center + sign * (half + level * step)
            if ticks < 1:
                break
            lots = min(market.lots_for(shape.level_notional, ticks), left)
            if lots <= 0 or lots < market.min_lots_at(ticks):
                break
            sides[side].append(Quote(side, ticks, lots))
            left -= lots
    merged: list[Quote] = []
    for level in range(shape.levels):
        merged += [q[level] for q in (sides[BUY], sides[SELL]) if level < len(q)]
    return merged


@dataclass(frozen=True, slots=True)
class Resting:
    """One of the maker's quotes on the book, as ``openOrders`` tells it."""

    order_id: int
    side: str
    ticks: int
    lots: int  # not filled yet


@dataclass(frozen=True, slots=True)
class Step:
    """One step of a replacement: cancel ``cancel``, then place ``place`` (either may be None)."""

    cancel: Resting | None
    place: Quote | None


def replacement(resting: list[Resting], quotes: list[Quote], first: str) -> list[Step]:
    """The steps that turn the resting quotes into ``quotes`` one level at a time: side by
    side (``first`` first; the maker moves the side the price moves toward first, so a new
    post-only quote does not meet an old one of the other side), the i-th nearest resting
    order is cancelled and the i-th new quote placed in its stead. Every other level stays on
    the book meanwhile, so the book is two-sided throughout a re-quote."""
    steps: list[Step] = []
    for side in (first, SELL if first == BUY else BUY):
        # nearest first: the highest bid, the lowest ask (``ladder`` lists inner levels first)
        old = sorted((r for r in resting if r.side == side), key=lambda r: r.ticks)
        if side == BUY:
            old.reverse()
        new = [q for q in quotes if q.side == side]
        for level in range(max(len(old), len(new))):
            steps.append(
                Step(
                    old[level] if level < len(old) else None,
                    new[level] if level < len(new) else None,
                )
            )
    return steps


class Room:
    """The lots the maker may still rest on each side while it replaces its quotes, so that
    whatever fills meanwhile its position stays within the limit: the side's budget
    (``side_budgets``) less what rests there already. A fill moves lots from the book to the
    position, changing neither sum; a cancel gives back what it took off the book. Read the
    resting orders before the position: a fill between the two reads is then counted twice
    (safe), never missed."""

    def __init__(self, position: int, limit: int, resting: list[Resting]) -> None:
        buy, sell = side_budgets(position, limit)
        self.left = {
            BUY: buy - sum(r.lots for r in resting if r.side == BUY),
            SELL: sell - sum(r.lots for r in resting if r.side == SELL),
        }

    def cancelled(self, side: str, lots: int) -> None:
        """A cancel took ``lots`` off the book on ``side`` (none if the order had filled)."""
        self.left[side] += lots

    def take(self, quote: Quote, min_lots: int) -> int:
        """The lots to place of ``quote`` (0: none fit, or fewer than ``min_lots``)."""
        lots = min(quote.lots, self.left[quote.side])
        if lots < max(1, min_lots):
            return 0
        self.left[quote.side] -= lots
        return lots


@dataclass(frozen=True, slots=True)
class Quoted:
    """What the maker last quoted on a symbol."""

    mid: int
    position: int
    at: float
    past_half: tuple[bool, bool]
    refill: int  # lots of fills after which the book is worth filling up again


def quoted(quotes: list[Quote], mid: int, position: int, limit: int, at: float) -> Quoted:
    """Record a ladder just placed: the refill mark is half of its larger side."""
    sizes = [sum(q.lots for q in quotes if q.side == s) for s in (BUY, SELL)]
    return Quoted(mid, position, at, past_half(position, limit), max(1, max(sizes) // 2))


def requote_reason(
    last: Quoted | None,
    mid: int,
    position: int,
    limit: int,
    now: float,
    requote_bps: int,
    refresh_seconds: float,
) -> str | None:
    """Why the maker should replace its quotes on a symbol now, or None."""
    if last is None:
        return "start"
    if abs(mid - last.mid) * BPS > requote_bps * last.mid:
        return "price"
    if past_half(position, limit) != last.past_half:
        return "limit"
    if abs(position - last.position) >= last.refill:
        return "fills"
    if now - last.at >= refresh_seconds:
        return "refresh"
    return None


# --- the takers ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TakerOrder:
    side: str
    lots: int
    reduce_only: bool
    ticks: int | None  # an IOC limit's price; None: a market order


def taker_order(
    rng: random.Random,
    position: int,
    limit: int,
    size: int,
    min_lots: int,
    mid: int,
    ioc_bps: int,
    market_orders: bool = True,
) -> TakerOrder | None:
    """A taker's next order: a random side within the room to the limit, or past half the
    limit a reduce-only one toward flat; a market order or an IOC limit ``ioc_bps`` through
    ``mid``, at random (only IOC without ``market_orders``: the exchange margins a market
    order at the mark or the last trade, and refuses it while there is neither). None when
    there is no room for the smallest order."""
    if limit <= 0:
        return None
    if 2 * abs(position) >= limit:
        if position == 0:
            return None
        side, lots, reduce_only = (SELL if position > 0 else BUY), min(size, abs(position)), True
    else:
        side = rng.choice((BUY, SELL))
        room = limit - position if side == BUY else limit + position
        lots, reduce_only = min(size, room), False
        if lots < min_lots:
            return None
    ticks = None
    if rng.random() < 0.5 or not market_orders:
        reach = max(1, mid * ioc_bps // BPS)
        ticks = mid + reach if side == BUY else max(1, mid - reach)
    return TakerOrder(side, lots, reduce_only, ticks)


def signed_fill(side: str, lots: int) -> int:
    """The change a fill of ``lots`` on ``side`` makes to a position."""
    return lots if side == BUY else -lots


# --- requests -----------------------------------------------------------------------------


class TokenBucket:
    """A request budget: ``rate`` a second on average, ``burst`` at once.

    ``reserve(now)`` books the next request and returns how long to wait before sending it,
    so callers that reserve together are spread out, never more than ``burst + rate * T`` in
    any span of ``T`` seconds."""

    def __init__(self, rate: float, burst: int, now: float) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self.rate, self.burst = rate, burst
        self.tokens = float(burst)
        self.last = now

    def reserve(self, now: float) -> float:
        if now > self.last:
            self.tokens = min(float(self.burst), self.tokens + (now - self.last) * self.rate)
            self.last = now
        self.tokens -= 1
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate


def backoff(attempt: int, base: float = 0.25, cap: float = 5.0) -> float:
    """Seconds before retry number ``attempt`` (0 first): doubling, capped."""
    return min(cap, base * 2 ** min(attempt, 30))


class Verdict(Enum):
    OK = "ok"
    RETRY = "retry"  # nothing known happened, or not yet: ask again
    AUTH = "auth"  # the credentials are gone (a wiped database): enrol again
    REFUSED = "refused"  # the request was answered with a no


def verdict(status: int | None) -> Verdict:
    """What to do with an answer's HTTP status (None: no answer: connection, timeout)."""
    if status is None or status == 202 or status in (408, 425, 429) or status >= 500:
        return Verdict.RETRY
    if status < 300:
        return Verdict.OK
    if status == 401:
        return Verdict.AUTH
    return Verdict.REFUSED
