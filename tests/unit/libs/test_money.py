from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from libs.money import (
    CASH_SCALE,
    Grid,
    MoneyError,
    format_cash,
    format_units,
    mul_div_ceil,
    mul_div_floor,
    parse_cash,
    parse_units,
)


@pytest.mark.parametrize(
    ("text", "scale", "units"),
    [
        ("0", 2, 0),
        ("1", 2, 100),
        ("1.5", 2, 150),
        ("0.01", 2, 1),
        ("12.340", 2, 1234),
        ("007", 0, 7),
        ("50000.10", 1, 500001),
    ],
)
def test_plain_decimals_become_exact_integers(text, scale, units):
    assert parse_units(text, scale) == units


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("1.234", "more than 2 decimals"),
        ("-1", "negative"),
        ("NaN", "not a plain decimal"),
        ("Infinity", "not a plain decimal"),
        ("1e3", "not a plain decimal"),
        (" 1", "not a plain decimal"),
        ("+1", "not a plain decimal"),
        ("", "not a plain decimal"),
        (".5", "not a plain decimal"),
        ("1.", "not a plain decimal"),
        ("1_000", "not a plain decimal"),
        ("1" * 30, "too large"),
    ],
)
def test_malformed_or_out_of_range_text_is_refused_with_a_reason(text, reason):
    with pytest.raises(MoneyError, match=reason):
        parse_units(text, 2)


def test_non_strings_are_refused_so_floats_never_reach_money():
    with pytest.raises(MoneyError, match="must be a decimal string"):
        parse_units(1.5, 2)  # type: ignore[arg-type]


def test_negative_values_are_accepted_only_when_asked_for():
    assert parse_units("-1.25", 2, signed=True) == -125


def test_formatting_drops_trailing_zeros_but_keeps_requested_decimals():
    assert format_units(150, 2) == "1.5"
    assert format_units(100, 2) == "1"
    assert format_units(-5, 2) == "-0.05"
    assert format_units(1500, 3, min_decimals=3) == "1.500"


def test_a_grid_accepts_multiples_of_its_step_only():
    ticks = Grid("0.5", field="price")
    assert ticks.parse("10.5") == 21
    assert ticks.format(21) == "10.5"
    with pytest.raises(MoneyError, match=r"not a multiple of 0\.5"):
        ticks.parse("10.2")


def test_cash_is_counted_in_hundred_millionths():
    assert parse_cash("1") == 10**CASH_SCALE
    assert format_cash(1) == "0.00000001"


def test_mul_div_rounds_in_the_direction_named():
    assert mul_div_floor(7, 1, 2) == 3
    assert mul_div_ceil(7, 1, 2) == 4
    assert mul_div_floor(-7, 1, 2) == -4
    assert mul_div_ceil(-7, 1, 2) == -3


@given(
    st.integers(min_value=-(10**24) + 1, max_value=10**24 - 1),
    st.integers(min_value=0, max_value=12),
)
def test_format_then_parse_is_the_identity(units, scale):
    assert parse_units(format_units(units, scale), scale, signed=True) == units


@given(st.decimals(min_value=0, max_value=10**12, places=8, allow_nan=False))
def test_parse_agrees_with_decimal_arithmetic(value):
    text = format(value, "f")
    assert parse_units(text, 8) == int(value * 10**8)


@given(
    st.sampled_from(["0.1", "0.01", "0.001", "0.5", "0.25", "1", "5"]),
    st.integers(min_value=1, max_value=10**9),
)
def test_grid_round_trips_every_step_count(step, steps):
    grid = Grid(step, field="price")
    assert grid.parse(grid.format(steps)) == steps


@given(
    st.sampled_from(["0.1", "0.01", "0.5", "0.25"]),
    st.integers(min_value=1, max_value=10**9),
    st.integers(min_value=1, max_value=9),
)
def test_grid_refuses_values_between_steps(step, steps, nudge):
    grid = Grid(step, field="price")
    exact = Decimal(step) * steps
    off = exact + Decimal(step) * nudge / 10
    with pytest.raises(MoneyError):
        grid.parse(format(off, "f"))
