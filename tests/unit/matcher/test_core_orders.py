"""Order types, time in force, triggers, STP, reduce-only: one rule per test."""

from libs import codes
from libs.messages import (
    EndReason,
    OrderExpired,
    OrderFilled,
    OrderTriggered,
    OrderType,
    SelfTradePrevention,
    TimeInForce,
    TriggerBy,
)
from tests.unit.matcher.kit import BUY, MID, SELL, Harness, amend, kinds, mark, place


def expired(events):
    return [(e.order_id, e.reason) for e in events if type(e) is OrderExpired]


def test_a_limit_order_that_does_not_cross_rests_on_the_book():
    h = Harness()
    assert kinds(h.send(place(1, 1, BUY, MID, 10))) == ["OrderAccepted"]
    assert h.book() == ([(MID, 10)], [])


def test_fills_happen_at_the_makers_price_in_time_priority():
    h = Harness()
    h.send(place(1, 1, SELL, MID + 2, 10))
    h.send(place(2, 2, SELL, MID + 1, 10))
    h.send(place(3, 3, SELL, MID + 1, 10))
    events = h.send(place(4, 4, BUY, MID + 5, 25))
    assert h.fills(events) == [(4, 2, MID + 1, 10), (4, 3, MID + 1, 10), (4, 1, MID + 2, 5)]
    fill = events[1]
    assert fill.taker_side == BUY and fill.maker_user_id == 2 and fill.taker_remaining == 15
    assert h.book() == ([], [(MID + 2, 5)])


def test_an_order_filled_event_carries_both_sides_and_increasing_trade_ids():
    h = Harness()
    h.send(place(1, 1, SELL, MID, 5), place(2, 2, SELL, MID, 5))
    fills = [e for e in h.send(place(3, 3, BUY, MID, 10)) if type(e) is OrderFilled]
    assert [f.trade_id for f in fills] == [1, 2]
    assert [(f.maker_order_id, f.maker_remaining, f.taker_remaining) for f in fills] == [
        (1, 0, 5),
        (2, 0, 0),
    ]


def test_a_market_order_walks_the_book_and_expires_its_remainder():
    h = Harness()
    h.send(place(1, 1, SELL, MID, 5), place(2, 1, SELL, MID + 10, 5))
    events = h.send(place(3, 2, BUY, None, 15))
    assert h.fills(events) == [(3, 1, MID, 5), (3, 2, MID + 10, 5)]
    assert expired(events) == [(3, EndReason.NO_LIQUIDITY)]
    assert h.book() == ([], [])


def test_a_market_order_stops_at_the_take_bound_around_the_mark_price():
    h = Harness()
    high = MID * 105 // 100  # market_take_bound 5%
    h.send(place(1, 1, SELL, MID, 5), place(2, 1, SELL, high, 5), place(3, 1, SELL, high + 1, 5))
    h.send(mark(MID))  # after the orders: the percent-price band would refuse high + 1
    events = h.send(place(4, 2, BUY, None, 20))
    assert h.fills(events) == [(4, 1, MID, 5), (4, 2, high, 5)]
    assert expired(events) == [(4, EndReason.MARKET_BAND)]
    assert h.book() == ([], [(high + 1, 5)])


def test_ioc_cancels_its_remainder_instead_of_resting():
    h = Harness()
    h.send(place(1, 1, SELL, MID, 5))
    events = h.send(place(2, 2, BUY, MID, 8, tif=TimeInForce.IOC))
    assert h.fills(events) == [(2, 1, MID, 5)]
    assert expired(events) == [(2, EndReason.IOC)]
    assert h.book() == ([], [])


def test_fok_that_cannot_fill_entirely_fills_nothing():
    h = Harness()
    h.send(place(1, 1, SELL, MID, 5), place(2, 1, SELL, MID + 1, 5))
    events = h.send(place(3, 2, BUY, MID + 1, 11, tif=TimeInForce.FOK))
    assert h.fills(events) == [] and expired(events) == [(3, EndReason.FOK)]
    assert h.book() == ([], [(MID, 5), (MID + 1, 5)])


def test_fok_that_can_fill_entirely_fills_at_once():
    h = Harness()
    h.send(place(1, 1, SELL, MID, 5), place(2, 1, SELL, MID + 1, 5))
    events = h.send(place(3, 2, BUY, MID + 1, 10, tif=TimeInForce.FOK))
    assert h.fills(events) == [(3, 1, MID, 5), (3, 2, MID + 1, 5)]


def test_post_only_that_would_take_is_expired_whole():
    h = Harness()
    h.send(place(1, 1, SELL, MID, 5))
    events = h.send(place(2, 2, BUY, MID, 5, tif=TimeInForce.GTX))
    assert kinds(events) == ["OrderAccepted", "OrderExpired"]
    assert expired(events) == [(2, EndReason.POST_ONLY)]
    assert h.book() == ([], [(MID, 5)])


def test_post_only_that_does_not_cross_rests():
    h = Harness()
    h.send(place(1, 1, SELL, MID, 5))
    h.send(place(2, 2, BUY, MID - 1, 5, tif=TimeInForce.GTX))
    assert h.book() == ([(MID - 1, 5)], [(MID, 5)])


def test_a_post_only_market_order_is_rejected():
    h = Harness()
    [event] = h.send(place(1, 1, BUY, None, 5, tif=TimeInForce.GTX))
    assert event.code == codes.INVALID_ORDER_TYPE


def stop(oid, user, side, stop_price, kind=OrderType.STOP_MARKET, price=None, **fields):
    return place(oid, user, side, price, 5, kind=kind, stop_price=stop_price, **fields)


def trade_at(h, price, oid_base):
    h.send(place(oid_base, 90, SELL, price, 5), place(oid_base + 1, 91, BUY, price, 5))


def test_a_stop_market_buy_triggers_when_the_last_price_reaches_its_stop():
    h = Harness()
    trade_at(h, MID, 100)
    h.send(stop(1, 1, BUY, MID + 10))
    h.send(place(2, 2, SELL, MID + 20, 5))
    assert not any(type(e) is OrderTriggered for e in h.events)
    events = h.send(place(3, 3, SELL, MID + 10, 5), place(4, 4, BUY, MID + 10, 5))
    assert kinds(events)[-2:] == ["OrderTriggered", "OrderFilled"]
    assert h.fills(events)[-1] == (1, 2, MID + 20, 5)


def test_a_stop_limit_triggered_by_mark_price_rests_at_its_limit():
    h = Harness()
    h.send(mark(MID))
    h.send(stop(1, 1, SELL, MID - 10, OrderType.STOP_LIMIT, MID - 20, trigger_by=TriggerBy.MARK))
    assert kinds(h.send(mark(MID - 9))) == ["MarkPriceSet"]
    events = h.send(mark(MID - 10))
    assert kinds(events) == ["MarkPriceSet", "OrderTriggered"]
    assert h.book() == ([], [(MID - 20, 5)])


def test_a_take_profit_sell_triggers_when_the_price_rises_to_it():
    h = Harness()
    h.send(mark(MID))
    h.send(stop(1, 1, SELL, MID + 50, OrderType.TAKE_PROFIT_MARKET, trigger_by=TriggerBy.MARK))
    h.send(place(2, 2, BUY, MID, 5))
    events = h.send(mark(MID + 50))
    assert kinds(events) == ["MarkPriceSet", "OrderTriggered", "OrderFilled"]


def test_a_stop_that_would_immediately_trigger_is_rejected():
    h = Harness()
    h.send(mark(MID))
    [event] = h.send(stop(1, 1, BUY, MID - 1, trigger_by=TriggerBy.MARK))
    assert event.code == codes.WOULD_IMMEDIATELY_TRIGGER


def test_a_trailing_stop_sells_when_price_falls_back_by_the_callback_rate_from_its_high():
    h = Harness()
    h.send(mark(MID))
    h.send(place(2, 2, BUY, MID - 1000, 5))
    h.send(
        place(
            1,
            1,
            SELL,
            None,
            5,
            kind=OrderType.TRAILING_STOP,
            callback_rate=1_000_000,
            trigger_by=TriggerBy.MARK,
        )
    )  # 1%
    h.send(mark(MID + 1000))  # new high 501,000: fires at or below 495,990
    assert kinds(h.send(mark(495_991))) == ["MarkPriceSet"]
    events = h.send(mark(495_990))
    assert kinds(events) == ["MarkPriceSet", "OrderTriggered", "OrderFilled"]


def test_a_trailing_stop_with_an_activation_price_waits_for_it():
    h = Harness()
    h.send(mark(MID))
    h.send(place(2, 2, SELL, MID + 5000, 5))
    h.send(
        place(
            1,
            1,
            BUY,
            None,
            5,
            kind=OrderType.TRAILING_STOP,
            callback_rate=1_000_000,
            activation_price=MID - 1000,
            trigger_by=TriggerBy.MARK,
        )
    )
    # not active yet: no trigger on the rise
    assert kinds(h.send(mark(MID + 6000))) == ["MarkPriceSet"]
    h.send(mark(MID - 1000))  # activates, low = 499,000
    assert kinds(h.send(mark(503_989))) == ["MarkPriceSet"]
    assert kinds(h.send(mark(503_990))) == ["MarkPriceSet", "OrderTriggered", "OrderFilled"]


def give_position(h, user, side, qty, oid):
    other = SELL if side is BUY else BUY
    h.send(place(oid, 99, other, MID, qty), place(oid + 1, user, side, MID, qty))


def test_a_reduce_only_order_without_a_position_is_rejected():
    h = Harness()
    [event] = h.send(place(1, 1, SELL, MID, 5, reduce_only=True))
    assert event.code == codes.REDUCE_ONLY_REJECTED


def test_a_reduce_only_order_that_would_increase_the_position_is_rejected():
    h = Harness()
    give_position(h, 1, BUY, 5, 100)
    [event] = h.send(place(1, 1, BUY, MID, 5, reduce_only=True))
    assert event.code == codes.REDUCE_ONLY_REJECTED


def test_a_reduce_only_taker_fills_no_more_than_the_position():
    h = Harness()
    give_position(h, 1, BUY, 5, 100)
    h.send(place(2, 2, BUY, MID, 20))
    events = h.send(place(3, 1, SELL, MID, 8, reduce_only=True))
    assert h.fills(events) == [(3, 2, MID, 5)]
    assert expired(events) == [(3, EndReason.REDUCE_ONLY)]
    assert h.core.positions[1] == 0


def test_a_resting_reduce_only_order_expires_when_the_position_is_gone():
    h = Harness()
    give_position(h, 1, BUY, 5, 100)
    h.send(place(1, 1, SELL, MID + 100, 5, reduce_only=True))
    h.send(place(2, 3, BUY, MID, 5))
    events = h.send(place(3, 1, SELL, MID, 5))  # closes the position another way
    assert expired(events) == [(1, EndReason.REDUCE_ONLY)]
    assert h.book() == ([], [])


def test_a_close_position_market_order_closes_the_whole_position():
    h = Harness()
    give_position(h, 1, SELL, 7, 100)
    h.send(place(2, 2, SELL, MID + 1, 50))
    events = h.send(place(3, 1, BUY, None, 1, close_position=True))
    assert h.fills(events) == [(3, 2, MID + 1, 7)]
    assert h.core.positions[1] == 0


def test_a_close_position_stop_closes_what_the_position_is_when_it_triggers():
    h = Harness()
    h.send(mark(MID))
    give_position(h, 1, BUY, 6, 100)
    h.send(place(2, 2, BUY, MID - 500, 50))
    h.send(stop(1, 1, SELL, MID - 100, trigger_by=TriggerBy.MARK, close_position=True))
    events = h.send(mark(MID - 100))
    assert h.fills(events) == [(1, 2, MID - 500, 6)]


def stp_setup(mode):
    h = Harness()
    h.send(place(1, 1, SELL, MID, 5), place(2, 2, SELL, MID, 5))
    return h, h.send(place(3, 1, BUY, MID, 10, stp=mode))


def test_self_trade_is_allowed_when_stp_is_none():
    h, events = stp_setup(SelfTradePrevention.NONE)
    assert h.fills(events) == [(3, 1, MID, 5), (3, 2, MID, 5)]


def test_expire_taker_stops_the_taker_at_its_own_order():
    h, events = stp_setup(SelfTradePrevention.EXPIRE_TAKER)
    assert h.fills(events) == [] and expired(events) == [(3, EndReason.STP)]
    assert h.book() == ([], [(MID, 10)])


def test_expire_maker_removes_the_own_order_and_keeps_matching():
    h, events = stp_setup(SelfTradePrevention.EXPIRE_MAKER)
    assert expired(events) == [(1, EndReason.STP)]
    assert h.fills(events) == [(3, 2, MID, 5)]
    assert h.book() == ([(MID, 5)], [])


def test_expire_both_ends_the_taker_and_the_maker():
    h, events = stp_setup(SelfTradePrevention.EXPIRE_BOTH)
    assert expired(events) == [(1, EndReason.STP), (3, EndReason.STP)]
    assert h.book() == ([], [(MID, 5)])


def test_the_takers_stp_mode_decides():
    h = Harness()
    h.send(place(1, 1, SELL, MID, 5, stp=SelfTradePrevention.EXPIRE_BOTH))
    events = h.send(place(2, 1, BUY, MID, 5))
    assert h.fills(events) == [(2, 1, MID, 5)]


def test_stops_do_not_fire_while_halted_and_fire_on_resume():
    from libs.messages import HaltSymbol, ResumeSymbol

    h = Harness()
    h.send(mark(MID))
    h.send(place(2, 2, BUY, MID - 500, 5))
    h.send(stop(1, 1, SELL, MID - 100, trigger_by=TriggerBy.MARK))
    h.send(HaltSymbol(symbol="BTC-PERP"))
    assert kinds(h.send(mark(MID - 100))) == ["MarkPriceSet"]
    assert kinds(h.send(ResumeSymbol(symbol="BTC-PERP"))) == [
        "SymbolResumed",
        "OrderTriggered",
        "OrderFilled",
    ]


def test_a_triggered_orders_events_carry_the_offset_of_the_command_that_fired_it():
    h = Harness()
    h.send(mark(MID))
    h.send(place(2, 2, BUY, MID - 500, 5))
    h.send(stop(1, 1, SELL, MID - 100, trigger_by=TriggerBy.MARK))
    events = h.send(mark(MID - 100))
    assert {e.cmd_offset for e in events} == {h.offset - 1}


def test_an_amend_that_would_take_a_post_only_order_expires_it():
    h = Harness()
    h.send(place(1, 1, SELL, MID, 5), place(2, 2, BUY, MID - 5, 5, tif=TimeInForce.GTX))
    events = h.send(amend(2, 2, MID))
    assert kinds(events) == ["OrderAmended", "OrderExpired"]
    assert expired(events) == [(2, EndReason.POST_ONLY)]
    assert h.book() == ([], [(MID, 5)])


def test_a_stop_limit_triggered_by_a_trade_uses_its_own_time_in_force():
    h = Harness()
    trade_at(h, MID, 100)
    h.send(stop(1, 1, BUY, MID + 10, OrderType.STOP_LIMIT, MID + 10, tif=TimeInForce.IOC))
    events = h.send(place(3, 3, SELL, MID + 10, 5), place(4, 4, BUY, MID + 10, 5))
    assert expired(events) == [(1, EndReason.IOC)]


def test_a_mark_price_tick_is_echoed_where_it_stands_among_the_events():
    h = Harness()
    h.send(place(1, 1, SELL, MID, 5))
    events = h.send(place(2, 2, BUY, MID, 5), mark(MID + 7))
    assert kinds(events) == ["OrderAccepted", "OrderFilled", "MarkPriceSet"]
    assert events[-1].mark_price == MID + 7
    assert [e.seq for e in events] == sorted(e.seq for e in events)
