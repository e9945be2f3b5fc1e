import pytest

from libs.money import CASH_ONE, MoneyError
from libs.symbols import SymbolError, default_symbols, get_symbol, load_symbols


def test_btc_perp_has_the_contract_terms_of_the_spec():
    btc = get_symbol("BTC-PERP")
    assert btc.ticks_to_price(1) == "0.1"
    assert btc.lots_to_qty(1) == "0.001"
    assert btc.lots_to_qty(btc.min_qty) == "0.001"
    assert btc.lots_to_qty(btc.max_qty) == "1000.000"
    assert btc.min_notional == 100 * CASH_ONE
    assert btc.max_leverage == 125
    assert btc.maker_fee == 20_000 and btc.taker_fee == 50_000  # 0.02% / 0.05% in 1e-8
    assert btc.funding_interval_seconds == 8 * 3600


def test_every_listed_symbol_has_its_own_partition_in_file_order():
    assert [s.index for s in default_symbols().values()] == list(range(len(default_symbols())))
    assert list(default_symbols())[:3] == ["BTC-PERP", "ETH-PERP", "SOL-PERP"]


def test_notional_is_price_times_quantity_in_cash_units():
    btc = get_symbol("BTC-PERP")
    ticks, lots = btc.price_to_ticks("50000.1"), btc.qty_to_lots("1.5")
    assert btc.notional(ticks, lots) == 75000_15 * CASH_ONE // 100


def test_maintenance_margin_cum_amounts_match_binance_btcusdt_table():
    btc = get_symbol("BTC-PERP")
    cums = [b.cum // CASH_ONE for b in btc.brackets]
    assert cums == [0, 50, 1300, 46300, 421300, 1921300, 3921300, 6421300, 26421300, 101421300]


@pytest.mark.parametrize(
    ("notional", "expected"),
    [
        ("10000", "40"),  # 10,000 * 0.4% - 0
        ("100000", "450"),  # 100,000 * 0.5% - 50
        ("1000000", "8700"),  # 1,000,000 * 1% - 1,300
    ],
)
def test_maintenance_margin_uses_the_bracket_of_the_notional(notional, expected):
    btc = get_symbol("BTC-PERP")
    assert btc.maintenance_margin(int(notional) * CASH_ONE) == int(expected) * CASH_ONE


def test_maintenance_margin_is_continuous_at_every_bracket_floor():
    for spec in default_symbols().values():
        for below, above in zip(spec.brackets, spec.brackets[1:], strict=False):
            edge = above.floor
            assert edge * below.mmr // 10**8 - below.cum == edge * above.mmr // 10**8 - above.cum


def test_prices_off_the_tick_and_non_positive_quantities_are_refused():
    btc = get_symbol("BTC-PERP")
    with pytest.raises(MoneyError, match=r"multiple of 0\.1"):
        btc.price_to_ticks("50000.15")
    with pytest.raises(MoneyError, match="positive"):
        btc.qty_to_lots("0")


def test_unknown_symbols_are_named_with_the_listed_ones():
    with pytest.raises(SymbolError, match="listed: BTC-PERP"):
        get_symbol("DOGE-PERP")


def test_a_symbol_file_with_gaps_in_its_brackets_is_refused(tmp_path):
    path = tmp_path / "symbols.toml"
    path.write_text(
        """
[[symbol]]
name = "X-PERP"
base = "X"
quote = "USDT"
tick_size = "0.1"
lot_size = "0.001"
min_qty = "0.001"
max_qty = "10"
min_notional = "5"
max_open_orders = 10
maker_fee = "0.0002"
taker_fee = "0.0005"
price_band = "0.05"
market_take_bound = "0.05"
funding_interval_seconds = 28800
funding_interest_rate = "0.0001"
funding_premium_clamp = "0.0005"
funding_rate_cap = "0.003"
brackets = [["0", "100", 20, "0.01"], ["200", "300", 10, "0.02"]]
"""
    )
    with pytest.raises(SymbolError, match="contiguous"):
        load_symbols(path)


def test_fees_are_the_maker_and_taker_rates_of_the_notional_rounded_up():
    btc = get_symbol("BTC-PERP")
    notional = 50_000 * CASH_ONE
    assert btc.fee(notional, maker=True) == 10 * CASH_ONE  # 0.02%
    assert btc.fee(notional, maker=False) == 25 * CASH_ONE  # 0.05%
    assert btc.fee(1, maker=False) == 1  # a fraction of a unit is still charged
