"""Decimal strings at the edge, integers inside.

Every price, quantity and amount inside the exchange is an ``int`` counted in a
fixed unit: prices in ticks, quantities in lots (both per symbol, see
``libs.symbols``), cash in 1e-8 USDT and rates in 1e-8. This module is the only
place that turns text into those integers and back. It never touches ``float``.
"""

from __future__ import annotations

import re
from decimal import Decimal

CASH_SCALE = 8
"""Cash (USDT) is counted in units of 10**-CASH_SCALE."""
CASH_ONE = 10**CASH_SCALE

RATE_SCALE = 8
"""Rates (fees, funding, maintenance-margin ratios) are counted in 10**-RATE_SCALE."""
RATE_ONE = 10**RATE_SCALE

MAX_DIGITS = 24
"""Longest accepted integer part; anything longer is a typo or an attack."""

_DECIMAL = re.compile(r"(?P<sign>-)?(?P<int>[0-9]+)(?:\.(?P<frac>[0-9]+))?")


class MoneyError(ValueError):
    """A decimal string that cannot become an exact integer amount."""


class TooManyDecimals(MoneyError):
    """A value finer than the unit it must be counted in."""


def parse_units(text: str, scale: int, *, field: str = "value", signed: bool = False) -> int:
    """Return ``text`` as an integer count of 10**-scale, exactly, or raise MoneyError.

    Accepts plain decimal notation only ("12", "0.5", "50000.10"): no exponent,
    no NaN or infinity, no whitespace, no "+" sign, no more decimals than ``scale``
    (trailing zeros beyond it are fine). Negative values only when ``signed``.
    """
    if not isinstance(text, str):
        raise MoneyError(f"{field} must be a decimal string, got {type(text).__name__}")
    match = _DECIMAL.fullmatch(text)
    if match is None:
        raise MoneyError(f"{field} is not a plain decimal number: {text[:40]!r}")
    sign, whole, frac = match["sign"], match["int"], match["frac"] or ""
    if sign and not signed:
        raise MoneyError(f"{field} must not be negative: {text!r}")
    if len(whole.lstrip("0")) > MAX_DIGITS:
        raise MoneyError(f"{field} is too large: {text[:40]!r}")
    significant = frac.rstrip("0")
    if len(significant) > scale:
        raise TooManyDecimals(f"{field} has more than {scale} decimals: {text!r}")
    units = int(whole) * 10**scale + (int(significant.ljust(scale, "0")) if scale else 0)
    return -units if sign else units


def format_units(units: int, scale: int, *, min_decimals: int = 0) -> str:
    """Return ``units`` (a count of 10**-scale) as a decimal string without trailing zeros.

    ``min_decimals`` keeps at least that many decimals ("1.5" -> "1.500" for a lot of 0.001).
    """
    if not isinstance(units, int) or isinstance(units, bool):
        raise TypeError(f"units must be int, got {type(units).__name__}")
    sign = "-" if units < 0 else ""
    whole, frac = divmod(abs(units), 10**scale)
    digits = str(frac).rjust(scale, "0").rstrip("0") if scale else ""
    if len(digits) < min_decimals:
        digits = digits.ljust(min_decimals, "0")
    return f"{sign}{whole}.{digits}" if digits else f"{sign}{whole}"


def decimals_of(step: str) -> int:
    """Return the number of decimals a step such as "0.001" is written with."""
    exponent = Decimal(step).normalize().as_tuple().exponent
    if not isinstance(exponent, int):
        raise MoneyError(f"not a finite step: {step!r}")
    return max(0, -exponent)


class Grid:
    """Integer steps of a fixed decimal size: the ticks of a price, the lots of a quantity."""

    __slots__ = ("decimals", "field", "step", "step_units")

    def __init__(self, step: str, *, field: str) -> None:
        self.step = step
        self.field = field
        self.decimals = decimals_of(step)
        self.step_units = parse_units(step, self.decimals, field=field)
        if self.step_units <= 0:
            raise MoneyError(f"{field} step must be positive: {step!r}")

    def parse(self, text: str) -> int:
        """Return ``text`` as a whole number of steps; reject values off the grid."""
        try:
            units = parse_units(text, self.decimals, field=self.field)
        except TooManyDecimals:
            raise MoneyError(f"{self.field} {text!r} is not a multiple of {self.step}") from None
        steps, rest = divmod(units, self.step_units)
        if rest:
            raise MoneyError(f"{self.field} {text!r} is not a multiple of {self.step}")
        return steps

    def format(self, steps: int) -> str:
        """Return ``steps`` as a decimal string with the step's number of decimals."""
        return format_units(steps * self.step_units, self.decimals, min_decimals=self.decimals)


def parse_cash(text: str, *, field: str = "amount", signed: bool = False) -> int:
    """Return a USDT amount as an integer count of 1e-8 USDT."""
    return parse_units(text, CASH_SCALE, field=field, signed=signed)


def format_cash(units: int) -> str:
    """Return an amount of 1e-8 USDT as a decimal string."""
    return format_units(units, CASH_SCALE)


def parse_rate(text: str, *, field: str = "rate", signed: bool = False) -> int:
    """Return a rate ("0.0005" for 0.05%) as an integer count of 1e-8."""
    return parse_units(text, RATE_SCALE, field=field, signed=signed)


def format_rate(units: int) -> str:
    """Return a rate counted in 1e-8 as a decimal string."""
    return format_units(units, RATE_SCALE)


def mul_div_floor(a: int, b: int, divisor: int) -> int:
    """Return floor(a * b / divisor) exactly."""
    return (a * b) // divisor


def mul_div_ceil(a: int, b: int, divisor: int) -> int:
    """Return ceil(a * b / divisor) exactly."""
    return -((-a * b) // divisor)


# --- bounds ---------------------------------------------------------------------------------
# Every amount on the log is encoded as a signed 64-bit MessagePack integer, and the cores sum
# amounts into balances, holds, notionals and PnL. These bounds keep every such value well
# inside 2**63 (9.2e18 units, 92 billion USDT); docs/WALLET.md ("Bounds") derives them.

INT64_MAX = 2**63 - 1

MAX_TRANSFER = 10**6 * CASH_ONE
"""The largest single deposit or withdrawal: 1 million USDT."""

MAX_BALANCE = 10**7 * CASH_ONE
"""The largest balance a deposit may take a user's account to: 10 million USDT."""

MAX_INSIDE = 10**8 * CASH_ONE
"""The most money the exchange may hold (deposits - withdrawals, the OUTSIDE account's
balance negated): 100 million USDT. At the maximum leverage of 125, a position of all of it
has a notional of 1.25e18 units, a seventh of the 64-bit range."""

MAX_NOTIONAL = 10**10 * CASH_ONE
"""The largest notional (price x quantity) of one order, and so of one fill: 10 billion
USDT. With a symbol's ``max_qty`` it sets the symbol's highest accepted price."""

LEDGER_LIMIT = 2**62
"""No ledger account may pass +-LEDGER_LIMIT (4.6e18 units): the sum or difference of any
two balances still fits 64 bits. Reaching it means a bound above failed; the ledger refuses
the entry rather than write a number no consumer could read."""
