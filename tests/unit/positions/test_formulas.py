"""Every formula on a worked example.

The formulas are Binance's: liquidation price, "How to Calculate Liquidation Price of USDⓈ-M
Futures Contracts" (LIQUIDATION_FAQ below); funding, "Introduction to Binance Futures Funding
Rates"; mark, "What Are Mark Price and Price Index in USDⓈ-Margined Futures"
(https://www.binance.com/en/support/faq/
what-are-mark-price-and-price-index-in-usd%E2%93%A2-margined-futures-360033525071). The only
numbers those pages publish, as far as we could find, are the liquidation page's maintenance
bracket examples, reproduced exactly below; we found no worked liquidation price, funding rate
or mark price with Binance's numbers, so those examples are hand-computed (each shows its
arithmetic).
"""

from __future__ import annotations

from libs import perpetual as f
from libs.money import RATE_ONE
from tests.unit.positions.kit import BTC, lots, ticks, usdt

PCT = RATE_ONE // 100  # 1% in rate units
LIQUIDATION_FAQ = (
    "https://www.binance.com/en/support/faq/"
    "how-to-calculate-liquidation-price-of-usd%E2%93%A2-m-futures-contracts-"
    "b3c689c1f50a44cabb3a84e663b81d93"
)


def test_unrealised_pnl_is_side_times_mark_value_minus_entry():
    entry = BTC.notional(ticks("50000"), lots("1"))
    assert f.unrealised_pnl(BTC, lots("1"), entry, ticks("51000")) == usdt("1000")
    assert f.unrealised_pnl(BTC, -lots("1"), entry, ticks("51000")) == usdt("-1000")
    assert f.unrealised_pnl(BTC, 0, 0, ticks("51000")) == 0


def test_maintenance_margin_uses_the_bracket_with_its_cumulative_amount():
    # 60,000 USDT is in the 50k-250k bracket: 0.5% - cum (50,000 * (0.5% - 0.4%) = 50)
    assert BTC.maintenance_margin(usdt("60000")) == usdt("250")
    assert BTC.maintenance_margin(usdt("40000")) == usdt("160")


def test_the_btc_brackets_reproduce_binances_published_maintenance_examples():
    """LIQUIDATION_FAQ: a BTCUSDT position of 264,000 USDT has a maintenance margin rate of 1%;
    one of 500,000 USDT a maintenance amount of 1,300 USDT, which is
    250,000 * (1% - 0.5%) + 50 (the level below's amount)."""
    assert BTC.bracket_for(usdt("264000")).mmr == 1 * PCT
    assert BTC.bracket_for(usdt("500000")).cum == usdt("1300")
    below = BTC.bracket_for(usdt("250000"))
    assert (below.mmr, below.cum) == (PCT // 2, usdt("50"))
    assert usdt("250000") * (1 * PCT - below.mmr) // RATE_ONE + below.cum == usdt("1300")
    # the page's MM = notional * MMR - maintenance amount: 500,000 * 1% - 1,300
    assert BTC.maintenance_margin(usdt("500000")) == usdt("3700")


def test_margin_ratio_is_maintenance_over_equity():
    assert f.margin_ratio(usdt("250"), usdt("1000")) == 25 * PCT
    assert f.margin_ratio(usdt("250"), usdt("250")) == 100 * PCT
    assert f.margin_ratio(usdt("250"), 0) > 100 * PCT


def test_liquidation_price_of_a_lone_long():
    # (10000 - 50000) / (1 * 0.4% - 1) = 40160.6425.. -> rounded up to the tick: 40160.7
    entry = BTC.notional(ticks("50000"), lots("1"))
    price = f.liquidation_price(BTC, lots("1"), entry, usdt("10000"))
    assert price == ticks("40160.7")
    # one tick below it the account is bust, at it not yet
    for mark, bust in ((price, False), (price - 1, True)):
        notional = BTC.notional(mark, lots("1"))
        equity = usdt("10000") + notional - entry
        assert (BTC.maintenance_margin(notional) >= equity) is bust


def test_liquidation_price_switches_to_the_bracket_of_the_notional_at_that_price():
    # 1.2 BTC at 50000 is 60k (bracket 2), but at the answer it is 45k: bracket 1 applies.
    # bracket 1: (15000 - 60000) / (1.2 * (0.004 - 1)) = 37650.602 -> 37650.7
    entry = BTC.notional(ticks("50000"), lots("1.2"))
    assert f.liquidation_price(BTC, lots("1.2"), entry, usdt("15000")) == ticks("37650.7")


def test_liquidation_price_of_a_short_moves_up_a_bracket():
    # bracket 1 gives 54780.8 (notional 54.8k: not bracket 1); bracket 2:
    # (5000 + 50 + 50000) / (1 * (0.005 + 1)) = 54776.119 -> rounded down: 54776.1
    entry = BTC.notional(ticks("50000"), lots("1"))
    assert f.liquidation_price(BTC, -lots("1"), entry, usdt("5000")) == ticks("54776.1")


def test_liquidation_price_counts_the_other_positions_of_a_cross_account():
    # (10000 - TMM1 100 + UPNL1 -500 - 50000) / (0.004 - 1) = 40763.052 -> 40763.1
    entry = BTC.notional(ticks("50000"), lots("1"))
    price = f.liquidation_price(
        BTC,
        lots("1"),
        entry,
        usdt("10000"),
        other_maintenance=usdt("100"),
        other_upnl=usdt("-500"),
    )
    assert price == ticks("40763.1")


def test_a_fully_funded_long_has_no_liquidation_price():
    entry = BTC.notional(ticks("50000"), lots("1"))
    assert f.liquidation_price(BTC, lots("1"), entry, usdt("60000")) == 0


def test_bankruptcy_price_leaves_zero_equity():
    # long 1 @ 50000, WB 10000, mark 45000: equity 5000 -> BP = 45000 - 5000 = 40000
    assert f.bankruptcy_price(BTC, lots("1"), ticks("45000"), usdt("5000")) == ticks("40000")
    # short 1 @ 50000, WB 5000, mark 52000: equity 3000 -> BP = 55000
    assert f.bankruptcy_price(BTC, -lots("1"), ticks("52000"), usdt("3000")) == ticks("55000")
    # rounding goes against the liquidated side
    assert f.bankruptcy_price(BTC, lots("3"), ticks("45000"), usdt("1")) == ticks("44999.7")
    assert f.bankruptcy_price(BTC, -lots("3"), ticks("45000"), usdt("1")) == ticks("45000.3")


def test_the_fee_covering_bound_pays_the_taker_fee_out_of_the_price():
    # long: 49000 / (1 - 0.05%) = 49024.512.. -> up; short: 51000 / (1 + 0.05%) = 50974.51 -> down
    assert f.fee_covering_bound(BTC, 1, ticks("49000")) == ticks("49024.6")
    assert f.fee_covering_bound(BTC, -1, ticks("51000")) == ticks("50974.5")
    for side, bp in ((1, ticks("49000")), (-1, ticks("51000"))):
        bound = f.fee_covering_bound(BTC, side, bp)
        notional = BTC.notional(bound, lots("1"))
        surplus = side * (notional - BTC.notional(bp, lots("1")))
        assert surplus >= BTC.fee(notional, maker=False)


def test_break_even_price_recovers_fees_with_a_taker_close():
    entry = BTC.notional(ticks("50000"), lots("1"))
    fees = usdt("25")
    # (50000 + 25) / (1 - 0.05%) = 50050.025 -> up; (50000 - 25) / (1 + 0.05%) = 49950.02 -> down
    assert f.break_even_price(BTC, lots("1"), entry, fees) == ticks("50050.1")
    assert f.break_even_price(BTC, -lots("1"), entry, fees) == ticks("49950")


def test_close_entry_rounds_down_and_keeps_the_rest():
    assert f.close_entry(100, 3, 1) == 33
    assert f.close_entry(100, -3, 2) == 66


def test_premium_index_and_its_time_weighted_average():
    assert f.premium_index(ticks("50020"), ticks("50000")) == 40_000  # 0.04%
    assert f.premium_index(ticks("49980"), ticks("50000")) == -40_000
    # (1 * 0.01% + 2 * 0.02% + 3 * 0.03%) / 6 = 0.023333%
    weighted = 1 * 10_000 + 2 * 20_000 + 3 * 30_000
    assert f.average_premium(weighted, 3) == 23_333
    assert f.average_premium(0, 0) == 0


def test_funding_rate_is_premium_plus_clamped_interest_then_capped():
    bp = RATE_ONE // 10_000  # one basis point
    assert f.funding_rate(BTC, 4 * bp) == 1 * bp  # 0.04% + clamp(-0.03%) = 0.01%
    assert f.funding_rate(BTC, 10 * bp) == 5 * bp  # 0.10% + clamp(-0.09%) -> -0.05%
    assert f.funding_rate(BTC, -2 * bp) == 1 * bp  # -0.02% + 0.03% = 0.01%
    assert f.funding_rate(BTC, 0) == 1 * bp  # no premium: the interest rate
    assert f.funding_rate(BTC, -20 * bp) == -15 * bp  # -0.20% + 0.05%
    assert f.funding_rate(BTC, 50 * bp) == 30 * bp  # 0.45%, capped at 0.3%


def test_funding_payment_is_notional_at_mark_times_rate_long_pays_short():
    # 1 BTC long at mark 50000, rate 0.01%: pays 5 USDT; shorts 0.6 / 0.4 receive 3 / 2
    sizes = {1: lots("1"), 2: -lots("0.6"), 3: -lots("0.4")}
    paid = f.funding_payments(BTC, 10_000, ticks("50000"), sizes)
    assert paid == {1: usdt("-5"), 2: usdt("3"), 3: usdt("2")}
    # a negative rate: shorts pay longs
    paid = f.funding_payments(BTC, -10_000, ticks("50000"), sizes)
    assert paid == {1: usdt("5"), 2: usdt("-3"), 3: usdt("-2")}


def test_funding_rounds_toward_the_exchange_and_each_payment_is_its_own_positions():
    # 0.001 BTC at 33333.3 x 0.012345%: 0.0041149958.. USDT: a payer pays it rounded up
    # (411500 units), a receiver gets it rounded down (411499); the residue stays in FUNDING
    sizes = {9: lots("0.003"), 1: -lots("0.001"), 2: -lots("0.001"), 3: -lots("0.001")}
    paid = f.funding_payments(BTC, 12_345, ticks("33333.3"), sizes)
    assert paid[9] == -f.ceil_div(BTC.notional(ticks("33333.3"), lots("0.003")) * 12_345, RATE_ONE)
    assert [paid[u] for u in (1, 2, 3)] == [411_499] * 3
    assert 0 <= -sum(paid.values()) <= len(sizes)  # the exchange keeps under a unit a position
    # a user's payment does not depend on who else holds (user shards pay theirs alone)
    for user in sizes:
        assert f.funding_payments(BTC, 12_345, ticks("33333.3"), {user: sizes[user]}) == {
            user: paid[user]
        }


def test_mark_price_is_the_median_of_the_three_prices():
    # index 50000, last rate 0.01%, half an interval to go: price1 = 50002.5;
    # price2 = 50000 + 3; price3 = last trade 49990 -> median 50002.5
    mark = f.mark_price(ticks("50000"), 10_000, 4, 8, ticks("3") - 0, ticks("49990"))
    assert mark == ticks("50002.5")
    # nothing but the index known: the index
    assert f.mark_price(ticks("50000"), 0, 1, 8, None, None) == ticks("50000")
    # a trade far above with a basis that agrees wins the median
    assert f.mark_price(ticks("50000"), 0, 1, 8, ticks("100"), ticks("50100")) == ticks("50100")
