"""Auto-deleveraging in the book's positions: what reduce-only and close-position decide on."""

from __future__ import annotations

from libs import codes
from libs.messages import (
    Deleveraged,
    DeleverageMatch,
    EndReason,
    HaltSymbol,
    OrderExpired,
    OrderRejected,
)
from tests.unit.matcher.kit import (
    BUY,
    MID,
    SELL,
    Harness,
    cancel,
    deleverage,
    kinds,
    place,
)

BUST = 1


def short_bust_against_longs() -> Harness:
    """User 1 short 10; users 2 (4) and 3 (6) long; user 5 short nothing (flat)."""
    h = Harness()
    h.send(place(1, BUST, SELL, MID, 10))
    h.send(place(2, 2, BUY, MID, 4), place(3, 3, BUY, MID, 6))
    assert h.core.positions == {BUST: -10, 2: 4, 3: 6}
    return h


def test_a_deleverage_closes_the_bust_position_against_the_ranked_counterparties_in_order():
    h = short_bust_against_longs()
    trades, last = h.core.trade_id, h.core.last_price
    (event,) = h.send(deleverage(BUST, BUY, MID + 30, 8, [3, 2]))
    assert type(event) is Deleveraged
    assert (event.user_id, event.side, event.price, event.qty) == (BUST, BUY, MID + 30, 8)
    assert event.matches == (
        DeleverageMatch(trades + 1, 3, 6),  # the first ranked gives all it has
        DeleverageMatch(trades + 2, 2, 2),  # the next the rest
    )
    assert event.liquidation_id == 99
    assert h.core.positions == {BUST: -2, 2: 2, 3: 0}
    assert h.core.trade_id == trades + 2
    assert h.core.last_price == last  # not a trade on the book: stops keep their reference


def test_a_deleverage_never_closes_more_than_the_bust_position_holds_now():
    h = short_bust_against_longs()
    (event,) = h.send(deleverage(BUST, BUY, MID, 25, [2, 3]))  # the engine thought 25
    assert event.qty == 10
    assert h.core.positions == {BUST: 0, 2: 0, 3: 0}


def test_flat_same_side_and_bust_counterparties_are_skipped():
    h = short_bust_against_longs()
    h.send(place(4, 5, SELL, MID - 1, 5), place(5, 6, BUY, MID - 1, 5))  # 5 short, 6 long
    (event,) = h.send(deleverage(BUST, BUY, MID, 7, [9, 5, BUST, 6, 3]))
    assert [(m.user_id, m.qty) for m in event.matches] == [(6, 5), (3, 2)]
    assert h.core.positions[5] == -5 and h.core.positions[BUST] == -3


def test_a_deleverage_with_nothing_to_close_answers_with_an_empty_deleveraged():
    h = short_bust_against_longs()
    trades = h.core.trade_id
    for command in (
        deleverage(BUST, SELL, MID, 5, [2, 3]),  # the bust is short: a sell closes nothing
        deleverage(7, BUY, MID, 5, [2, 3]),  # flat
        deleverage(BUST, BUY, MID, 5, [BUST]),  # nobody opposite
        deleverage(BUST, BUY, 0, 5, [2, 3]),  # not well-formed
    ):
        (event,) = h.send(command)
        assert (type(event), event.qty, event.matches) == (Deleveraged, 0, ())
    assert h.core.trade_id == trades


def test_a_close_position_order_after_the_deleverage_cannot_open_a_position():
    h = short_bust_against_longs()
    h.send(place(6, 9, SELL, MID + 5, 20))  # liquidity a close-position buy would take
    h.send(deleverage(BUST, BUY, MID, 10, [3, 2]))
    assert h.core.positions[BUST] == 0
    (event,) = h.send(place(7, BUST, BUY, None, 4, close_position=True))
    assert type(event) is OrderRejected and event.code == codes.REDUCE_ONLY_REJECTED
    assert h.core.positions[BUST] == 0


def test_resting_reduce_only_orders_the_deleverage_made_useless_expire():
    h = short_bust_against_longs()
    h.send(place(6, 3, SELL, MID + 50, 6, reduce_only=True))  # user 3 would close its long
    h.send(place(7, BUST, BUY, MID - 50, 10, reduce_only=True))
    events = h.send(deleverage(BUST, BUY, MID, 10, [3, 2]))
    assert kinds(events) == ["Deleveraged", "OrderExpired", "OrderExpired"]
    expired = [(e.order_id, e.reason) for e in events if type(e) is OrderExpired]
    assert expired == [(6, EndReason.REDUCE_ONLY), (7, EndReason.REDUCE_ONLY)]
    assert not h.core.reduce_only


def test_a_deleverage_applies_while_halted():
    h = short_bust_against_longs()
    h.send(HaltSymbol(symbol="BTC-PERP"))
    (event,) = h.send(deleverage(BUST, BUY, MID, 10, [3, 2]))
    assert event.qty == 10


def test_a_deleverage_goes_first_in_a_batch_with_the_liquidations():
    h = short_bust_against_longs()
    h.send(place(6, 2, SELL, MID + 50, 4, reduce_only=True))
    events = h.send(cancel(6, 2), deleverage(BUST, BUY, MID, 10, [2, 3]))
    # applied first: user 2's long is closed, so its reduce-only sell expires before the
    # cancel that came earlier in the log runs (and is refused: the order is gone)
    assert kinds(events) == ["Deleveraged", "OrderExpired", "OrderRejected"]
