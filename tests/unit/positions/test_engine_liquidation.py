"""Liquidation: trigger at 100% margin ratio, the order, settlement, insurance, ADL."""

from __future__ import annotations

from libs.messages import (
    AccountRisk,
    AutoDeleveraged,
    CancelAll,
    Deleverage,
    LiquidationOrder,
    LiquidationSettled,
    LiquidationTriggered,
    MarkPriceTick,
    PositionChanged,
    Side,
)
from services.positions.core import liquidation_id
from tests.unit.positions.kit import BTC, SPECS, Feed, lots, messages, ticks, usdt


def leveraged_long(insurance: str | None = "1000") -> Feed:
    """User 1: long 1 BTC @ 50000 on 1000 USDT; shorts: user 2 (rich), user 4 (thin)."""
    feed = Feed()
    if insurance:
        feed.insurance(insurance)
    feed.fill(1, 2, "50000", "0.5")
    feed.fill(1, 4, "50000", "0.5")
    feed.balance(1, "1000")
    feed.balance(2, "100000")
    feed.balance(4, "2000")
    return feed


def test_a_mark_above_the_liquidation_price_liquidates_nobody():
    feed = leveraged_long()
    out = feed.mark("49300", 1)
    assert not messages(out, LiquidationTriggered)


def test_margin_ratio_at_100_percent_triggers_cancel_all_then_the_liquidation_order():
    feed = leveraged_long()
    out = feed.mark("49000", 1)  # equity 1000 - 1000 = 0 < MM 196
    (trigger,) = messages(out, LiquidationTriggered)
    assert (trigger.user_id, trigger.size, trigger.mark_price) == (1, lots("1"), ticks("49000"))
    assert trigger.bankruptcy_price == ticks("49000")  # equity 0: bankrupt at the mark
    commands = [o.message for o in out if o.topic == "orders.commands"]
    assert [type(c) for c in commands] == [CancelAll, MarkPriceTick, LiquidationOrder]
    order = commands[2]
    assert order.order_id == liquidation_id(0, feed.seq["BTC-PERP"], 0)
    assert (order.side, order.qty, order.price) == (Side.SELL, lots("1"), ticks("49000"))
    # the account is not triggered twice while its order is in flight
    assert not messages(feed.mark("48900", 2), LiquidationTriggered)


def test_a_fill_better_than_bankruptcy_goes_to_the_insurance_fund_net_of_the_fee():
    feed = leveraged_long()
    order = messages(feed.mark("49000", 1), LiquidationOrder)[0]
    out = feed.fill(
        3, 1, "49100", "1", taker="sell", liquidation=True, taker_order_id=order.order_id
    )
    (settled,) = messages(out, LiquidationSettled)
    # surplus (49100 - 49000) x 1 = 100, minus the taker fee 24.55
    assert settled.insurance_delta == usdt("100") - usdt("24.55")
    assert "BTC-PERP" not in feed.core.accounts[1].positions


def test_a_fill_at_bankruptcy_leaves_a_deficit_the_fund_covers():
    feed = leveraged_long()
    order = messages(feed.mark("49000", 1), LiquidationOrder)[0]
    out = feed.fill(
        3, 1, "49000", "1", taker="sell", liquidation=True, taker_order_id=order.order_id
    )
    (settled,) = messages(out, LiquidationSettled)
    assert settled.insurance_delta == -usdt("24.5")


def test_the_unfilled_remainder_is_auto_deleveraged_against_the_ranked_shorts():
    feed = leveraged_long()
    order = messages(feed.mark("49000", 1), LiquidationOrder)[0]
    feed.fill(
        3,
        1,
        "49000",
        "0.4",
        taker="sell",
        liquidation=True,
        taker_order_id=order.order_id,
        taker_remaining=lots("0.6"),
    )
    out = feed.expired(order.order_id, 1, lots("0.6"))
    # the book closes the rest: the engine asks it to, and settles when it answers
    (command,) = messages(out, Deleverage)
    assert not messages(out, AutoDeleveraged) and not messages(out, LiquidationSettled)
    assert (command.liquidation_id, command.user_id, command.side) == (order.order_id, 1, Side.SELL)
    assert (command.qty, command.price) == (lots("0.6"), ticks("49000"))
    # user 4 (thin margin: leverage 9.8) ranks before user 2 (0.24), same PnL% (2%)
    assert command.counterparties == (4, 2)
    assert [o.partition for o in out if o.message is command] == [0]  # BTC-PERP's partition
    out = feed.deleveraged(command)
    adl = messages(out, AutoDeleveraged)
    assert [(m.user_id, m.counterparty_user_id, m.qty) for m in adl] == [
        (4, 1, lots("0.5")),
        (1, 4, lots("0.5")),
        (2, 1, lots("0.1")),
        (1, 2, lots("0.1")),
    ]
    assert all(m.price == ticks("49000") for m in adl)
    changed = {m.user_id: m for m in messages(out, PositionChanged)}
    assert changed[4].size == 0 and changed[4].realised_pnl == usdt("500")
    assert feed.core.accounts[2].positions["BTC-PERP"].size == -lots("0.4")
    assert "BTC-PERP" not in feed.core.accounts[1].positions
    (settled,) = messages(out, LiquidationSettled)
    assert settled.insurance_delta == -usdt("9.8")  # the fee of the 0.4 that filled


def test_an_empty_insurance_fund_bounds_the_order_so_its_fills_pay_their_own_fee():
    feed = leveraged_long(insurance=None)
    out = feed.mark("49000", 1)
    (trigger,) = messages(out, LiquidationTriggered)
    (order,) = messages(out, LiquidationOrder)
    assert trigger.bankruptcy_price == ticks("49000")
    assert order.price == ticks("49024.6")  # 49000 / (1 - 0.05%) = 49024.51.. rounded up
    out = feed.fill(
        3, 1, "49024.6", "1", taker="sell", liquidation=True, taker_order_id=order.order_id
    )
    (settled,) = messages(out, LiquidationSettled)
    # surplus 24.6 over bankruptcy, minus the fee 24.5123 (rounded up to 1e-8)
    assert settled.insurance_delta == usdt("24.6") - usdt("24.5123")
    assert settled.insurance_delta >= 0


def test_with_an_empty_fund_what_the_book_cannot_absorb_is_deleveraged_at_bankruptcy():
    feed = leveraged_long(insurance=None)
    (order,) = messages(feed.mark("49000", 1), LiquidationOrder)
    (command,) = messages(feed.expired(order.order_id, 1, lots("1")), Deleverage)
    out = feed.deleveraged(command)
    adl = messages(out, AutoDeleveraged)
    assert [(m.user_id, m.qty, m.price) for m in adl if m.counterparty_user_id == 1] == [
        (4, lots("0.5"), ticks("49000")),
        (2, lots("0.5"), ticks("49000")),
    ]
    (settled,) = messages(out, LiquidationSettled)
    assert settled.insurance_delta == 0
    assert feed.core.accounts[1].balance == 0  # closed at bankruptcy: nothing left, nothing owed


def test_the_fund_backs_one_liquidation_at_a_time_with_what_it_has_spare():
    feed = leveraged_long(insurance="30")  # covers one 24.5 fee, not two
    feed.fill(7, 8, "50000", "1")
    feed.balance(7, "1000")
    orders = messages(feed.mark("49000", 1), LiquidationOrder)
    assert sorted(o.price for o in orders) == [ticks("49000"), ticks("49024.6")]
    assert feed.core.insurance_reserved == usdt("24.5")


def test_a_rejected_liquidation_order_deleverages_everything():
    from libs.messages import OrderRejected

    feed = leveraged_long()
    order = messages(feed.mark("49000", 1), LiquidationOrder)[0]
    feed.seq["BTC-PERP"] += 1
    out = feed.matcher(
        OrderRejected(
            symbol="BTC-PERP",
            seq=feed.seq["BTC-PERP"],
            cmd_offset=0,
            request_id="x",
            user_id=1,
            order_id=order.order_id,
            code=-2010,
            msg="halted",
        )
    )
    (command,) = messages(out, Deleverage)
    assert command.qty == lots("1")
    out = feed.deleveraged(command)
    assert sum(m.qty for m in messages(out, AutoDeleveraged) if m.user_id == 1) == lots("1")


def test_a_mark_tick_checks_only_the_accounts_whose_liquidation_price_it_crossed():
    feed = Feed()
    for user in range(10, 1010):
        feed.balance(user, "200")
        feed.fill(user, 1, "50000", "0.01")  # 1000 longs at 2.5x: liquidation price ~30100
    feed.balance(5, "6")
    feed.fill(5, 1, "50000", "0.01")  # one at ~85x: liquidation price ~49620
    risk = feed.core.markets["BTC-PERP"].risk
    assert len(risk) >= 1001
    assert risk.at_risk(ticks("49400")) == [5]
    assert risk.at_risk(ticks("49900")) == []


def test_the_liquidation_fence_repeats_the_last_tick_sent_so_the_mark_never_steps_back():
    feed = leveraged_long()
    feed.index("49000", 1)
    feed.index("49500", 2)  # sent to the matcher, not echoed yet
    out = feed.mark("49000", 1)
    (fence,) = messages(out, MarkPriceTick)
    assert (fence.mark_price, fence.ts) == (ticks("49500"), 2)
    feed.mark("49500", 2)  # the tick, then its repetition (the fence), then a stale one
    feed.mark("49500", 2)
    feed.mark("49000", 1)
    market = feed.core.markets["BTC-PERP"]
    assert (market.mark, market.mark_ts) == (ticks("49500"), 2)


def test_a_bust_cross_account_liquidates_every_position_with_its_share_of_the_equity():
    feed = Feed()
    feed.insurance("1000")
    feed.fill(1, 2, "50000", "1")  # user 1 long 1 BTC (MM ~ 0.4%)
    feed.fill(1, 2, "2000", "10", symbol="ETH-PERP")  # and long 10 ETH (MM 0.5%)
    feed.balance(1, "1500")
    feed.balance(2, "1000000")
    feed.mark("2000", 1, symbol="ETH-PERP")
    out = feed.mark("48700", 1)  # equity 1500 - 1300 = 200 < MM 194.8 + 100
    triggers = {t.symbol: t for t in messages(out, LiquidationTriggered)}
    assert set(triggers) == {"BTC-PERP", "ETH-PERP"}
    # the 200 of equity is shared pro rata of MM: BTC 194.8 / 294.8, ETH the rest
    btc_share = usdt("200") * usdt("194.8") // usdt("294.8")
    eth_share = usdt("200") - btc_share
    btc_unit = 1000 * BTC.cash_per_tick_lot  # cash per tick of 1 BTC
    assert triggers["BTC-PERP"].bankruptcy_price == ticks("48700") - btc_share // btc_unit
    eth = SPECS["ETH-PERP"]
    eth_unit = 10_000 * eth.cash_per_tick_lot  # of 10 ETH
    eth_value = eth.notional(eth.price_to_ticks("2000"), 10_000)
    assert triggers["ETH-PERP"].bankruptcy_price == -(-(eth_value - eth_share) // eth_unit)
    orders = {o.message.symbol: o for o in out if type(o.message) is LiquidationOrder}
    assert (orders["BTC-PERP"].partition, orders["ETH-PERP"].partition) == (0, 1)
    assert len({o.message.order_id for o in orders.values()}) == 2


def test_a_bust_short_is_bought_back_and_deleveraged_against_the_most_profitable_long():
    feed = Feed()
    feed.insurance("1000")
    feed.fill(5, 1, "50000", "0.5")  # user 1 short 1 BTC against longs 5 and 6
    feed.fill(6, 1, "50000", "0.5")
    feed.balance(1, "1000")
    feed.balance(5, "3000")
    feed.balance(6, "50000")
    (order,) = messages(feed.mark("50800", 1), LiquidationOrder)  # equity 200 < MM 203.2
    assert (order.side, order.price) == (Side.BUY, ticks("51000"))  # BP = 50800 + 200
    (command,) = messages(feed.expired(order.order_id, 1, lots("1")), Deleverage)
    assert (command.side, command.counterparties) == (Side.BUY, (5, 6))
    out = feed.deleveraged(command)
    adl = [
        (m.user_id, m.qty) for m in messages(out, AutoDeleveraged) if m.counterparty_user_id == 1
    ]
    assert adl == [(5, lots("0.5")), (6, lots("0.5"))]  # 5 is more leveraged
    assert "BTC-PERP" not in feed.core.accounts[1].positions


def test_a_two_symbol_account_is_liquidated_when_the_other_symbols_mark_moves():
    feed = Feed()
    feed.insurance("1000")
    feed.fill(1, 2, "50000", "1")  # user 1 long 1 BTC and 10 ETH on 3000 USDT
    feed.fill(1, 2, "3000", "10", symbol="ETH-PERP")
    feed.balance(1, "3000")
    feed.balance(2, "1000000")
    feed.mark("50000", 1)
    feed.mark("3000", 1, symbol="ETH-PERP")
    # ETH falls to 2740: equity 3000 - 2600 = 400 > MM 200 + 137, short of ETH's liquidation
    # price (2733.7 with BTC at 50000); BTC's indexed one (47339.4) assumed ETH at 3000
    assert not messages(feed.mark("2740", 2, symbol="ETH-PERP"), LiquidationTriggered)
    btc_indexed = feed.core.accounts[1].positions["BTC-PERP"].liq
    assert btc_indexed == ticks("47339.4")
    # BTC moves 200 down, far above that stale price: equity 200 < MM 199.2 + 137
    out = feed.mark("49800", 2)
    assert ticks("49800") > btc_indexed
    triggers = {t.symbol: t.size for t in messages(out, LiquidationTriggered)}
    assert triggers == {"BTC-PERP": lots("1"), "ETH-PERP": lots("10", SPECS["ETH-PERP"])}
    assert {o.symbol for o in messages(out, LiquidationOrder)} == {"BTC-PERP", "ETH-PERP"}


def test_a_safe_two_symbol_account_is_checked_on_each_tick_without_a_word():
    feed = Feed()
    feed.fill(1, 2, "50000", "1")
    feed.fill(1, 2, "3000", "10", symbol="ETH-PERP")
    feed.balance(1, "30000")
    assert feed.core.markets["BTC-PERP"].multi == {1, 2}
    assert feed.core.markets["SOL-PERP"].multi == set()
    assert messages(feed.mark("49000", 1), AccountRisk) == []
    feed.fill(2, 1, "3000", "10", symbol="ETH-PERP")  # both close ETH: one symbol again
    assert feed.core.markets["BTC-PERP"].multi == set()


# --- deleveraging goes through the book -----------------------------------------------------


def deleveraging() -> tuple[Feed, Deleverage]:
    """User 1's liquidation order expired unfilled: the engine asked the book to deleverage."""
    feed = leveraged_long()
    (order,) = messages(feed.mark("49000", 1), LiquidationOrder)
    (command,) = messages(feed.expired(order.order_id, 1, lots("1")), Deleverage)
    return feed, command


def test_the_engine_changes_no_position_until_the_book_deleverages():
    feed, command = deleveraging()
    assert feed.core.accounts[1].positions["BTC-PERP"].size == lots("1")  # the book decides
    assert feed.core.accounts[1].liquidating == 1
    # a tick meanwhile does not liquidate the account again
    out = feed.mark("48500", 2)
    assert not messages(out, LiquidationTriggered) and not messages(out, LiquidationOrder)
    out = feed.deleveraged(command)
    assert len(messages(out, LiquidationSettled)) == 1
    assert "BTC-PERP" not in feed.core.accounts[1].positions
    assert feed.core.accounts[1].liquidating == 0
    assert not feed.core.markets["BTC-PERP"].liquidations


def test_what_the_book_could_not_deleverage_stays_and_the_next_tick_liquidates_it():
    feed, command = deleveraging()
    out = feed.deleveraged(command, [(4, lots("0.5"))])  # user 2 closed its short meanwhile
    assert len(messages(out, LiquidationSettled)) == 1
    assert feed.core.accounts[1].positions["BTC-PERP"].size == lots("0.5")
    (trigger,) = messages(feed.mark("48990", 2), LiquidationTriggered)
    assert (trigger.user_id, trigger.size) == (1, lots("0.5"))


def test_a_deleveraged_the_engine_did_not_ask_for_still_moves_the_positions():
    feed = Feed()
    feed.fill(1, 2, "50000", "1")
    command = Deleverage(
        liquidation_id=12345,
        user_id=1,
        symbol="BTC-PERP",
        side=Side.SELL,
        qty=lots("0.5"),
        price=ticks("49000"),
        counterparties=(2,),
    )
    out = feed.deleveraged(command)
    assert feed.core.accounts[1].positions["BTC-PERP"].size == lots("0.5")
    assert feed.core.accounts[2].positions["BTC-PERP"].size == -lots("0.5")
    assert len(messages(out, AutoDeleveraged)) == 2 and not messages(out, LiquidationSettled)


def test_a_snapshot_while_deleveraging_continues_like_an_uninterrupted_run():
    from services.positions.core import PositionsCore

    feed, command = deleveraging()
    restored = PositionsCore.restore(SPECS, feed.core.snapshot())
    assert restored.digest() == feed.core.digest()
    assert restored.markets["BTC-PERP"].liquidations[command.liquidation_id].adl == lots("1")
    twin = Feed(restored)
    twin.seq, twin.trade, twin.offset = dict(feed.seq), feed.trade, feed.offset
    assert [o.message for o in twin.deleveraged(command)] == [
        o.message for o in feed.deleveraged(command)
    ]
    assert twin.core.digest() == feed.core.digest()


def test_the_counterparties_cover_the_quantity_twice_over_and_stay_few():
    feed = Feed()
    feed.insurance("1000")
    for user in range(10, 20):
        feed.fill(1, user, "50000", "0.1")  # user 1 long 1 BTC against ten 0.1 shorts
        feed.balance(user, "1000")
    feed.balance(1, "1000")
    order = messages(feed.mark("49000", 1), LiquidationOrder)[0]
    feed.fill(
        3,
        1,
        "49000",
        "0.8",
        taker="sell",
        liquidation=True,
        taker_order_id=order.order_id,
        taker_remaining=lots("0.2"),
    )
    (command,) = messages(feed.expired(order.order_id, 1, lots("0.2")), Deleverage)
    assert command.counterparties == (10, 11, 12, 13)  # 0.4 = twice 0.2; ties: smaller id

    many = Feed()
    for user in range(10, 310):
        many.fill(1, user, "50000", "0.01")  # 300 shorts of 0.01
    many.balance(1, "150")
    order = messages(many.mark("49000", 1), LiquidationOrder)[0]
    (command,) = messages(many.expired(order.order_id, 1, lots("3")), Deleverage)
    assert len(command.counterparties) == 256
