"""The perpetual contract's formulas (PnL, margin, liquidation, funding, mark), as pure integer
functions: the position engine's rules and the read side's position view use the same ones.

Units: prices in ticks, sizes in signed lots (> 0 long), cash in 1e-8 USDT, rates in 1e-8
(``RATE_ONE`` = 100%). Every division names its rounding; docs/POSITIONS.md gives the sources.
"""

from __future__ import annotations

from collections.abc import Mapping

from libs.money import RATE_ONE
from libs.symbols import SymbolSpec


def sign(size: int) -> int:
    return (size > 0) - (size < 0)


def ceil_div(a: int, b: int) -> int:
    """Return ceil(a / b) for any signs (b != 0)."""
    return -((-a) // b)


def unrealised_pnl(spec: SymbolSpec, size: int, entry_notional: int, mark: int) -> int:
    """Return side * (|size| at mark - entry notional), exact."""
    if not size:
        return 0
    return sign(size) * (spec.notional(mark, abs(size)) - entry_notional)


def mark_or_entry(spec: SymbolSpec, size: int, entry_notional: int, mark: int | None) -> int:
    """Return the symbol's mark, or the position's average entry price while none is known."""
    if mark:
        return mark
    lots = abs(size)
    return entry_notional // (lots * spec.cash_per_tick_lot) if lots else 0


def close_entry(entry_notional: int, size: int, qty: int) -> int:
    """Return the part of ``entry_notional`` that closing ``qty`` of ``size`` takes away.

    Rounded down; the remainder stays with the position, so closed + kept == entry exactly and
    realised + unrealised PnL stays a closed sum whatever the rounding.
    """
    return entry_notional * qty // abs(size)


def margin_ratio(maintenance: int, equity: int) -> int:
    """Return MM / equity in rate units (RATE_ONE = 100%), rounded up; huge when equity <= 0."""
    if equity <= 0:
        return 1 << 62 if maintenance > 0 or equity < 0 else 0
    return ceil_div(maintenance * RATE_ONE, equity)


def liquidation_price(
    spec: SymbolSpec,
    size: int,
    entry_notional: int,
    wallet_balance: int,
    other_maintenance: int = 0,
    other_upnl: int = 0,
) -> int:
    """Return Binance's one-way cross-margin liquidation price in ticks (0: none).

    LP = (WB - TMM1 + UPNL1 + cum_B - side * |size| * EP) / (|size| * MMR_B - side * |size|)

    where TMM1 / UPNL1 are the maintenance margin and uPnL of the account's other positions and
    B is the bracket the position's notional *at LP* falls in (``spec.bracket_for``, the rule
    the maintenance margin itself uses): starting from the entry's bracket, the formula is
    solved and re-solved in the bracket of its own answer until they agree. Rounded towards the
    mark (long up, short down) so the at-risk index never misses an account; the exact check
    decides.
    """
    if not size:
        return 0
    side = sign(size)
    lots = abs(size)
    unit = lots * spec.cash_per_tick_lot  # cash of one tick over the whole position
    base = wallet_balance - other_maintenance + other_upnl - side * entry_notional
    bracket = spec.bracket_for(entry_notional)
    tried: dict[int, int] = {}  # bracket floor -> its answer
    while bracket.floor not in tried:
        numerator = (base + bracket.cum) * RATE_ONE
        denominator = unit * (bracket.mmr - side * RATE_ONE)
        price = ceil_div(numerator, denominator) if side > 0 else numerator // denominator
        if price <= 0:
            price = 0 if side > 0 else 1  # a long never, a short at any price
        tried[bracket.floor] = price
        bracket = spec.bracket_for(spec.notional(price, lots))
        if tried.get(bracket.floor) == price:
            return price
    # rounding at a bracket edge sends the answer back and forth: take the cautious one
    return max(tried.values()) if side > 0 else min(tried.values())


def bankruptcy_price(spec: SymbolSpec, size: int, mark: int, equity_share: int) -> int:
    """Return the price at which closing the position leaves ``equity_share`` (cash) at zero.

    uPnL(BP) = uPnL(mark) - share  =>  BP = mark - side * share / (|size| * cash_per_tick_lot).
    For a lone position share = WB + uPnL, which gives Binance's (side*EP*q - WB) / (side*q).
    Rounded against the liquidated side (long up, short down) and never below one tick, so a
    close at BP never leaves a negative balance behind.
    """
    side = sign(size)
    unit = abs(size) * spec.cash_per_tick_lot
    numerator = spec.notional(mark, abs(size)) - side * equity_share
    price = ceil_div(numerator, unit) if side > 0 else numerator // unit
    return max(price, 1)


def fee_covering_bound(spec: SymbolSpec, side: int, bankruptcy: int) -> int:
    """Return the worst price at which closing a ``side`` position pays its own taker fee.

    long (sells):  p * (1 - taker) >= BP  =>  p = ceil(BP / (1 - taker));
    short (buys):  p * (1 + taker) <= BP  =>  p = floor(BP / (1 + taker)).
    A fill there leaves the closed position's equity share >= its fee (rounded up).
    """
    if side > 0:
        return ceil_div(bankruptcy * RATE_ONE, RATE_ONE - spec.taker_fee)
    return max(1, bankruptcy * RATE_ONE // (RATE_ONE + spec.taker_fee))


def break_even_price(spec: SymbolSpec, size: int, entry_notional: int, fees: int) -> int:
    """Return the price at which closing with a taker order recovers the fees paid.

    long:  BE * q * (1 - taker) = entry + fees;  short: BE * q * (1 + taker) = entry - fees.
    Rounded against the holder (long up, short down). 0 when flat.
    """
    if not size:
        return 0
    unit = abs(size) * spec.cash_per_tick_lot
    if size > 0:
        return ceil_div((entry_notional + fees) * RATE_ONE, unit * (RATE_ONE - spec.taker_fee))
    return (entry_notional - fees) * RATE_ONE // (unit * (RATE_ONE + spec.taker_fee))


# --- funding ---------------------------------------------------------------------------------


def premium_index(reference: int, index: int) -> int:
    """Return (reference - index) / index in rate units, truncated toward zero."""
    diff = (reference - index) * RATE_ONE
    return diff // index if diff >= 0 else -((-diff) // index)


def average_premium(weighted_sum: int, samples: int) -> int:
    """Return Binance's time-weighted premium: sum(k * P_k) / sum(k), k = 1..n, toward zero."""
    if samples <= 0:
        return 0
    weights = samples * (samples + 1) // 2
    return weighted_sum // weights if weighted_sum >= 0 else -((-weighted_sum) // weights)


def funding_rate(spec: SymbolSpec, premium: int) -> int:
    """Return F = P + clamp(I - P, -c, +c), capped at +-funding_rate_cap (rate units)."""
    clamp = spec.funding_premium_clamp
    rate = premium + min(max(spec.funding_interest_rate - premium, -clamp), clamp)
    cap = spec.funding_rate_cap
    return min(max(rate, -cap), cap)


def funding_payments(
    spec: SymbolSpec, rate: int, mark: int, sizes: Mapping[int, int]
) -> dict[int, int]:
    """Return each user's funding (> 0 received, < 0 paid): |size| * mark * |rate|, paid by the
    side the rate names (long pays short when it is positive) rounded up, received rounded
    down.

    Each payment depends on its own position alone, so the position engine's user shards,
    each paying its own holders, pay what one engine of every user would (ADR 0004). Longs and
    shorts hold the same lots, so what is received is what is paid less the rounding, at most
    one unit per position, which stays in the wallet's FUNDING clearing account.
    """
    if not rate:
        return {}
    payer_side = 1 if rate > 0 else -1  # long pays short when the rate is positive
    magnitude = abs(rate)
    out: dict[int, int] = {}
    for user, size in sizes.items():
        if not size:
            continue
        owed = spec.notional(mark, abs(size)) * magnitude
        if sign(size) == payer_side:
            out[user] = -ceil_div(owed, RATE_ONE)
        else:
            out[user] = owed // RATE_ONE
    return out


# --- mark price ------------------------------------------------------------------------------


def mark_price(
    index: int,
    last_rate: int,
    time_to_funding: int,
    interval: int,
    basis_average: int | None,
    last_trade: int | None,
) -> int:
    """Return median(index * (1 + rate * ttf / interval), index + MA(mid - index), last).

    A missing input (no basis samples yet, no trade yet) is replaced by the index itself.
    ``time_to_funding`` and ``interval`` in the same unit; price1 truncated toward the index.
    """
    scaled = index * last_rate * time_to_funding
    denominator = RATE_ONE * interval
    drift = scaled // denominator if scaled >= 0 else -((-scaled) // denominator)
    price1 = index + drift
    price2 = index + basis_average if basis_average is not None else index
    price3 = last_trade if last_trade is not None else index
    return sorted((price1, price2, price3))[1]
