"""Cancels, amends, client order ids, filters, halt, liquidations, batches and sequencing."""

from libs import codes
from libs.messages import (
    BatchCompleted,
    EndReason,
    HaltSymbol,
    OrderAmended,
    OrderCancelled,
    OrderRejected,
    OrderType,
    RejectRequest,
    ResumeSymbol,
)
from services.matcher.core import MatchingCore
from tests.unit.matcher.kit import (
    BUY,
    MID,
    SELL,
    SPEC,
    Harness,
    amend,
    cancel,
    cancel_all,
    kinds,
    liquidation,
    mark,
    place,
)


def code(events):
    return [e.code for e in events if type(e) is OrderRejected]


def test_cancel_by_order_id_removes_the_order():
    h = Harness()
    h.send(place(1, 1, BUY, MID, 10))
    [event] = h.send(cancel(1, 1))
    assert type(event) is OrderCancelled and event.reason == EndReason.USER
    assert event.remaining == 10 and h.book() == ([], [])


def test_cancel_by_client_order_id_finds_the_users_order():
    h = Harness()
    h.send(place(1, 1, BUY, MID, 10, client_order_id="mine"))
    [event] = h.send(cancel(None, 1, client_order_id="mine"))
    assert type(event) is OrderCancelled and event.order_id == 1


def test_cancel_of_an_unknown_order_is_rejected_with_2011():
    h = Harness()
    assert code(h.send(cancel(42, 1))) == [codes.UNKNOWN_ORDER]


def test_cancel_of_another_users_order_is_rejected_and_leaves_it():
    h = Harness()
    h.send(place(1, 1, BUY, MID, 10))
    assert code(h.send(cancel(1, 2))) == [codes.UNKNOWN_ORDER]
    assert h.book() == ([(MID, 10)], [])


def test_cancel_all_cancels_every_open_order_and_stop_of_that_user_only():
    h = Harness()
    h.send(place(1, 1, BUY, MID, 10), place(2, 2, BUY, MID, 10), place(3, 1, SELL, MID + 5, 10))
    h.send(place(4, 1, BUY, None, 10, kind=OrderType.STOP_MARKET, stop_price=MID + 100))
    events = h.send(cancel_all(1))
    assert [(e.order_id, e.reason) for e in events] == [
        (1, EndReason.CANCEL_ALL),
        (3, EndReason.CANCEL_ALL),
        (4, EndReason.CANCEL_ALL),
    ]
    assert h.book() == ([(MID, 10)], []) and not h.core.stops


def test_amend_that_shrinks_qty_at_the_same_price_keeps_priority():
    h = Harness()
    h.send(place(1, 1, SELL, MID, 10), place(2, 2, SELL, MID, 10))
    [event] = h.send(amend(1, 1, qty=4))
    assert type(event) is OrderAmended and event.kept_priority
    assert h.fills(h.send(place(3, 3, BUY, MID, 4))) == [(3, 1, MID, 4)]


def test_amend_that_grows_qty_loses_priority():
    h = Harness()
    h.send(place(1, 1, SELL, MID, 10), place(2, 2, SELL, MID, 10))
    [event] = h.send(amend(1, 1, qty=12))
    assert not event.kept_priority
    assert h.fills(h.send(place(3, 3, BUY, MID, 4))) == [(3, 2, MID, 4)]


def test_amend_to_a_crossing_price_trades_like_a_new_order():
    h = Harness()
    h.send(place(1, 1, SELL, MID, 10), place(2, 2, BUY, MID - 5, 10))
    events = h.send(amend(2, 2, price=MID))
    assert kinds(events) == ["OrderAmended", "OrderFilled"]
    assert h.book() == ([], [])


def test_amend_keeps_the_filled_part_and_refuses_qty_at_or_below_it():
    h = Harness()
    h.send(place(1, 1, SELL, MID, 10))
    h.send(place(2, 2, BUY, MID, 4))
    assert code(h.send(amend(1, 1, qty=4))) == [codes.INVALID_PARAM]
    h.send(amend(1, 1, qty=8))
    assert h.book() == ([], [(MID, 4)])


def test_amend_that_changes_nothing_is_rejected():
    h = Harness()
    h.send(place(1, 1, SELL, MID, 10))
    assert code(h.send(amend(1, 1, price=MID, qty=10))) == [codes.NO_NEED_TO_MODIFY]


def test_a_reused_client_order_id_is_rejected_and_never_applied_twice():
    h = Harness()
    h.send(place(1, 1, BUY, MID, 10, client_order_id="x"))
    h.send(cancel(1, 1))
    [event] = h.send(place(2, 1, BUY, MID, 10, client_order_id="x"))
    assert event.code == codes.DUPLICATE_CLIENT_ORDER_ID and "order_id=1" in event.msg
    assert h.book() == ([], [])
    assert kinds(h.send(place(3, 2, BUY, MID, 10, client_order_id="x"))) == ["OrderAccepted"]


def test_an_order_below_min_qty_is_rejected_with_1013():
    assert code(Harness().send(place(1, 1, BUY, MID, SPEC.min_qty - 1 or 0))) in (
        [codes.FILTER_LOT_SIZE],
    )


def test_an_order_above_max_qty_is_rejected():
    assert code(Harness().send(place(1, 1, BUY, 1, SPEC.max_qty + 1))) == [codes.QTY_ABOVE_MAX]


def test_an_order_below_min_notional_is_rejected_with_4164():
    assert code(Harness().send(place(1, 1, BUY, MID, 1))) == [codes.MIN_NOTIONAL]


def test_a_limit_price_outside_the_band_around_mark_is_rejected_with_4131():
    h = Harness()
    h.send(mark(MID))
    [rejected] = h.send(place(1, 1, BUY, MID * 95 // 100 - 1, 10))
    assert code([rejected]) == [codes.PERCENT_PRICE]
    # the band in prices, as the client writes them, not in ticks
    assert rejected.msg == "Limit price outside [47500.0, 52500.0] (PERCENT_PRICE)"
    assert kinds(h.send(place(2, 1, BUY, MID * 95 // 100, 10))) == ["OrderAccepted"]


def test_a_user_at_the_max_open_orders_is_rejected():
    h = Harness()
    h.send(*[place(i, 1, BUY, MID - i, 10) for i in range(1, SPEC.max_open_orders + 1)])
    assert code(h.send(place(10_000, 1, BUY, MID, 10))) == [codes.MAX_OPEN_ORDERS]


def test_a_halted_symbol_rejects_orders_but_accepts_cancels_until_resumed():
    h = Harness()
    h.send(place(1, 1, BUY, MID, 10))
    assert kinds(h.send(HaltSymbol(symbol="BTC-PERP", reason="ops"))) == ["SymbolHalted"]
    assert code(h.send(place(2, 2, SELL, MID, 10))) == [codes.NEW_ORDER_REJECTED]
    assert kinds(h.send(cancel(1, 1))) == ["OrderCancelled"]
    assert kinds(h.send(ResumeSymbol(symbol="BTC-PERP"))) == ["SymbolResumed"]
    assert kinds(h.send(place(3, 2, SELL, MID, 10))) == ["OrderAccepted"]


def test_a_liquidation_fills_no_worse_than_its_price_and_is_flagged():
    h = Harness()
    h.send(place(10, 3, SELL, MID, 10), place(11, 2, BUY, MID, 10))  # user 2 long 10
    h.send(place(1, 1, BUY, MID, 5), place(2, 1, BUY, MID - 10, 5))
    events = h.send(liquidation(3, 2, SELL, MID - 5, 8))
    assert h.fills(events) == [(3, 1, MID, 5)]
    assert all(e.liquidation for e in events if type(e).__name__ == "OrderFilled")
    assert [e.reason for e in events if type(e).__name__ == "OrderExpired"] == [EndReason.IOC]
    assert h.core.positions[2] == 5


def test_a_liquidation_closes_at_most_the_position_the_book_holds_never_opens_one():
    h = Harness()
    h.send(place(10, 3, SELL, MID, 3), place(11, 2, BUY, MID, 3))  # user 2 long 3
    h.send(place(1, 1, BUY, MID, 10))
    events = h.send(liquidation(3, 2, SELL, MID - 5, 8))  # the engine thought 8
    assert h.fills(events) == [(3, 1, MID, 3)]
    (expired,) = [e for e in events if type(e).__name__ == "OrderExpired"]
    assert (expired.reason, expired.remaining) == (EndReason.REDUCE_ONLY, 5)
    assert h.core.positions[2] == 0
    events = h.send(liquidation(4, 2, SELL, MID - 5, 8))  # flat: nothing to close
    assert h.fills(events) == [] and h.core.positions[2] == 0


def test_a_batch_runs_liquidations_then_cancels_then_markets_then_limits():
    h = Harness()
    h.send(place(8, 4, SELL, MID + 50, 5), place(9, 5, BUY, MID + 50, 5))  # user 4 short 5
    h.send(place(1, 1, SELL, MID, 5))
    events = h.send(
        place(2, 2, BUY, MID, 5),  # limit: last
        place(3, 3, BUY, None, 5),  # market: third
        cancel(1, 1),  # cancel: second
        liquidation(4, 4, BUY, MID, 5),  # liquidation: first, takes order 1
    )
    offsets = list(dict.fromkeys(e.cmd_offset for e in events))
    assert offsets == [6, 5, 4, 3]  # liquidation, cancel, market, limit
    assert h.fills(events) == [(4, 1, MID, 5)]


def test_mark_ticks_and_halts_fence_a_batch():
    h = Harness()
    events = h.send(place(1, 1, BUY, MID, 10), HaltSymbol(symbol="BTC-PERP"), cancel(1, 1))
    assert kinds(events) == ["OrderAccepted", "SymbolHalted", "OrderCancelled"]


def test_every_event_has_the_next_seq_and_a_batch_ends_with_batch_completed():
    h = Harness()
    h.send(place(1, 1, SELL, MID, 5))
    h.send(place(2, 2, BUY, MID, 3), place(3, 2, BUY, MID, 3), place(4, 9, BUY, MID, 1))
    assert [e.seq for e in h.events] == list(range(1, len(h.events) + 1))
    last = h.events[-1]
    assert type(last) is BatchCompleted and (last.first_offset, last.cmd_offset) == (1, 3)
    assert last.size == 3 and h.core.seq == last.seq and h.core.last_offset == 3


def test_a_replayed_batch_is_ignored():
    core = MatchingCore(SPEC)
    batch = [(0, place(1, 1, SELL, MID, 5)), (1, place(2, 2, BUY, MID, 5))]
    assert core.process_batch(batch)
    assert core.process_batch(batch) == []
    assert core.trade_id == 1


def test_the_same_command_log_gives_the_same_events_and_digest():
    def run():
        h = Harness()
        h.send(place(1, 1, SELL, MID, 5), place(2, 2, SELL, MID + 1, 5))
        h.send(place(3, 3, BUY, None, 7), mark(MID), amend(2, 2, qty=9))
        return h.events, h.core.digest()

    assert run() == run()


def test_depth_aggregates_levels_best_first_with_the_seq():
    h = Harness()
    h.send(place(1, 1, BUY, MID, 5), place(2, 2, BUY, MID, 3), place(3, 1, BUY, MID - 2, 4))
    h.send(place(4, 1, SELL, MID + 3, 4), place(5, 1, SELL, MID + 1, 4))
    seq, bids, asks = h.core.depth(1)
    assert (seq, bids, asks) == (h.core.seq, [(MID, 8)], [(MID + 1, 4)])
    assert h.core.depth(5)[1] == [(MID, 8), (MID - 2, 4)]


def test_plain_strings_for_enum_fields_mean_the_same_as_enum_members():
    h = Harness()
    h.send(place(1, 1, "sell", MID, 5, stp="EXPIRE_MAKER"))
    events = h.send(place(2, 2, "buy", MID, 5, tif="IOC", stp="EXPIRE_TAKER"))
    assert h.fills(events) == [(2, 1, MID, 5)]


def test_an_unknown_enum_value_is_rejected_not_crashed_on():
    [event] = Harness().send(place(1, 1, "up", MID, 5))
    assert event.code == codes.INVALID_PARAM


def test_a_request_the_wallet_refused_is_answered_in_its_place_and_changes_nothing():
    h = Harness()
    h.send(place(1, 1, BUY, MID, 10))
    refusal = RejectRequest(
        request_id="a2",
        user_id=1,
        symbol=SPEC.name,
        order_id=1,
        code=codes.MARGIN_INSUFFICIENT,
        msg="Margin is insufficient.",
    )
    # in one batch with a later cancel of the same user's: the refusal is answered first
    answered = h.send(refusal, cancel(1, 1))
    assert kinds(answered) == ["OrderRejected", "OrderCancelled"]
    rejected = answered[0]
    assert (rejected.request_id, rejected.order_id, rejected.code, rejected.pre_trade) == (
        "a2",
        1,
        codes.MARGIN_INSUFFICIENT,
        True,
    )
    assert (rejected.msg, rejected.original_order_id) == ("Margin is insufficient.", None)
    h2 = Harness()
    h2.send(place(1, 1, BUY, MID, 10))
    before = (h2.book(), dict(h2.core.user_orders), h2.core.trade_id)
    h2.send(refusal)
    assert (h2.book(), dict(h2.core.user_orders), h2.core.trade_id) == before
    duplicate = RejectRequest(
        request_id="p3",
        user_id=1,
        symbol=SPEC.name,
        order_id=3,
        code=codes.DUPLICATE_CLIENT_ORDER_ID,
        msg="Duplicate client order id; original order_id=1",
        original_order_id=1,
    )
    [answer] = h2.send(duplicate)
    assert (answer.order_id, answer.original_order_id) == (3, 1)
