"""The bounds in libs.money hold together: what docs/WALLET.md ("Bounds") derives from them."""

from __future__ import annotations

from libs.money import (
    INT64_MAX,
    LEDGER_LIMIT,
    MAX_BALANCE,
    MAX_INSIDE,
    MAX_NOTIONAL,
    MAX_TRANSFER,
    format_cash,
)
from libs.symbols import default_symbols


def test_the_bounds_nest_and_leave_room_in_64_bits() -> None:
    assert 0 < MAX_TRANSFER <= MAX_BALANCE <= MAX_INSIDE < MAX_NOTIONAL < LEDGER_LIMIT < INT64_MAX
    assert MAX_BALANCE == 10 * MAX_TRANSFER  # the eleventh maximal deposit is the refused one
    assert 2 * LEDGER_LIMIT <= INT64_MAX + 1  # two balances added still fit
    leverage = max(spec.max_leverage for spec in default_symbols().values())
    assert leverage <= 125
    # a user holding three times all the money inside, at the highest leverage, still fits
    assert 2 * (leverage * 3 * MAX_INSIDE) < INT64_MAX


def test_every_symbols_highest_price_keeps_its_largest_order_within_the_notional_bound() -> None:
    prices = {}
    for spec in default_symbols().values():
        assert spec.notional(spec.max_price, spec.max_qty) <= MAX_NOTIONAL
        assert spec.notional(spec.max_price + 1, spec.max_qty) > MAX_NOTIONAL
        prices[spec.name] = spec.ticks_to_price(spec.max_price)
    assert prices == {
        "BTC-PERP": "10000000.0",
        "ETH-PERP": "1000000.00",
        "SOL-PERP": "100000.00",
    }  # as docs/API.md lists them
    assert format_cash(MAX_NOTIONAL) == "10000000000"
