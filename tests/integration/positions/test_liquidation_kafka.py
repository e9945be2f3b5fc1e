"""Liquidation end to end on Kafka with the wallet and position engine processes and a matcher
(the in-test pump, and the real matcher service): a mark move drives a 20x long to liquidation
(orders cancelled, position closed through the book and by ADL, insurance accounting right,
nobody's balance negative); the short the ADL closed is flat in the book too, so its
close-position and reduce-only buys are refused and never open a long."""

from __future__ import annotations

import time

import pytest

from libs.messages import (
    AutoDeleveraged,
    Deleveraged,
    LedgerAccountKind,
    LedgerPosted,
    LiquidationSettled,
    LiquidationTriggered,
    OrderCancelled,
    OrderFilled,
    OrderRejected,
    OrderType,
    PlaceOrder,
    PositionChanged,
    Side,
)
from libs.money import parse_cash
from tests.integration.positions.conftest import NS, SPEC, Stack
from tests.integration.positions.exchange import Exchange

MAKER, LONG, SHORT, TAKER = 100, 1, 2, 3


@pytest.mark.parametrize("matcher", ["pump", "service"])
def test_a_mark_drop_liquidates_a_20x_long_end_to_end(make_stack, kafka_bootstrap, matcher):
    stack = make_stack(matcher, basis_window=1)
    x = Exchange(stack, kafka_bootstrap)
    x.wallet.start()
    stack.engine.start()
    try:
        run(stack, x)
        close_after_adl(stack, x)
    finally:
        x.wallet.stop()


def run(stack: Stack, x: Exchange) -> None:
    for user, amount in ((MAKER, "1000000"), (LONG, "2900"), (SHORT, "5000"), (TAKER, "100000")):
        x.deposit(user, amount)
    stack.wait_for(lambda: len(x.balances()) == 4, what="the deposits")
    maker_ask = x.place(MAKER, "sell", "50000", "1")
    x.place(LONG, "buy", "50000", "1")  # 20x long 1 BTC
    x.place(MAKER, "buy", "50000", "0.5")
    x.place(SHORT, "sell", "50000", "0.5")  # user 2 short 0.5
    resting = x.place(LONG, "buy", "45000", "0.05")  # the liquidation cancels it
    del maker_ask
    stack.wait_for(lambda: len(stack.events(PositionChanged)) == 4, what="the positions")
    stack.index("50000", 1 * NS)
    stack.flush()
    # the maker moves its quotes down: the mid the mark follows
    bid = x.place(MAKER, "buy", "47600", "0.4")
    ask = x.place(MAKER, "sell", "47700", "0.4")
    stack.index("47650", 2 * NS)  # mark 47650: equity 2875 - 2350 = 525 > MM 190.6
    stack.flush()
    time.sleep(2)
    assert not stack.events(LiquidationTriggered)
    x.cancel(MAKER, bid)
    x.cancel(MAKER, ask)
    x.place(MAKER, "buy", "47150", "0.4")
    x.place(MAKER, "sell", "47250", "0.4")
    stack.wait_for(lambda: x.balances().get(LONG) == parse_cash("2875"), what="the balance")
    stack.index("47200", 3 * NS)  # mark 47200: equity 75 < MM 188.8
    stack.flush()
    stack.wait_for(lambda: stack.events(LiquidationSettled), what="the liquidation to settle")
    stack.quiet()
    stack.wait_for(
        lambda: any(
            type(e) is LedgerPosted and e.memo.startswith("liquidation") for e in x.wallet_events()
        ),
        what="the wallet to book the settlement",
    )

    (trigger,) = stack.events(LiquidationTriggered)
    assert (trigger.user_id, trigger.bankruptcy_price) == (LONG, SPEC.price_to_ticks("47125"))
    events = stack.matcher_events()
    assert [
        (e.order_id, e.reason) for e in events if type(e) is OrderCancelled and e.user_id == LONG
    ] == [(resting, "cancel_all")]
    fills = [(e.price, e.qty) for e in events if type(e) is OrderFilled and e.liquidation]
    assert fills == [(SPEC.price_to_ticks("47150"), SPEC.qty_to_lots("0.4"))]
    adl = [e for e in stack.events(AutoDeleveraged) if e.counterparty_user_id == LONG]
    assert sum(e.qty for e in adl) == SPEC.qty_to_lots("0.6")
    (settled,) = stack.events(LiquidationSettled)
    fee = SPEC.fee(
        SPEC.notional(SPEC.price_to_ticks("47150"), SPEC.qty_to_lots("0.4")), maker=False
    )
    assert (
        settled.insurance_delta
        == SPEC.notional(SPEC.price_to_ticks("25"), SPEC.qty_to_lots("0.4")) - fee
    )
    last = [e for e in stack.events(PositionChanged) if e.user_id == LONG][-1]
    assert last.size == 0
    insurance = sum(
        leg.amount
        for e in x.wallet_events()
        if type(e) is LedgerPosted
        for leg in e.legs
        if leg.kind == LedgerAccountKind.INSURANCE
    )
    assert insurance == settled.insurance_delta
    balances = x.balances()
    assert all(balance >= 0 for balance in balances.values()), balances
    assert balances[LONG] >= 0


def close_after_adl(stack: Stack, x: Exchange) -> None:
    """The short the ADL closed sends a close-position buy and a reduce-only buy: the book
    knows it is flat, so both are refused (-2022) and nothing fills."""
    short = [e for e in stack.events(PositionChanged) if e.user_id == SHORT]
    assert short[-1].size == 0
    before = len(stack.matcher_events())
    x.next_id += 1
    close = x.next_id
    x.request(
        PlaceOrder(
            request_id=f"p{close}",
            order_id=close,
            user_id=SHORT,
            symbol=SPEC.name,
            side=Side.BUY,
            order_type=OrderType.MARKET,
            qty=0,
            close_position=True,
        )
    )
    stack.wait_for(lambda: x.seen(close), what="the close-position order at the matcher")
    x.next_id += 1
    reduce = x.next_id
    x.request(
        PlaceOrder(
            request_id=f"p{reduce}",
            order_id=reduce,
            user_id=SHORT,
            symbol=SPEC.name,
            side=Side.BUY,
            order_type=OrderType.LIMIT,
            qty=SPEC.qty_to_lots("0.4"),
            price=SPEC.price_to_ticks("47250"),
            reduce_only=True,
        )
    )
    stack.wait_for(lambda: x.seen(reduce), what="the reduce-only order at the matcher")
    after = stack.matcher_events()[before:]
    refused = [(e.order_id, e.code) for e in after if type(e) is OrderRejected]
    assert refused == [(close, -2022), (reduce, -2022)]
    assert not [
        e for e in after if type(e) is OrderFilled and SHORT in (e.taker_user_id, e.maker_user_id)
    ]
    stack.quiet()
    assert [e for e in stack.events(PositionChanged) if e.user_id == SHORT][-1].size == 0
    # the book did the deleveraging, and said so once
    (adl,) = [e for e in stack.matcher_events() if type(e) is Deleveraged]
    assert adl.user_id == LONG and adl.qty == SPEC.qty_to_lots("0.6")
    assert (SHORT, SPEC.qty_to_lots("0.5")) in [(m.user_id, m.qty) for m in adl.matches]
