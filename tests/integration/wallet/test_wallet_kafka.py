"""The wallet process on a real broker, with the real matcher service and with the in-test
matcher pump (a MatchingCore, one command per batch) in its place."""

from __future__ import annotations

from libs.messages import (
    AccountUpdated,
    Cause,
    Deposit,
    FundingPaid,
    LedgerPosted,
    OrderRequestRejected,
    PlaceOrder,
    RejectRequest,
    Withdraw,
    encode,
)
from tests.integration.wallet.conftest import Stack
from tests.unit.wallet.kit import BUY, LOT, PRICE, SELL, SYMBOL, USDT, cancel, place


def test_deposit_place_partial_fills_cancel_leaves_right_balances_and_no_holds(
    stack: Stack,
) -> None:
    stack.wallet.start()
    stack.send(Deposit(request_id="d1", user_id=1, amount=20_000 * USDT))
    stack.send(Deposit(request_id="d2", user_id=2, amount=20_000 * USDT))
    stack.flush()
    stack.quiet()
    stack.send(place(1, 1, BUY, PRICE, 4 * LOT))
    stack.flush()
    stack.quiet()
    stack.send(place(2, 2, SELL, PRICE, LOT))
    stack.send(place(3, 2, SELL, PRICE, LOT))
    stack.flush()
    stack.quiet()
    stack.send(cancel(1, 1))
    stack.flush()
    state = stack.quiet()
    told = {e.user_id: e for e in stack.wallet_events() if isinstance(e, AccountUpdated)}
    one, two = told[1], told[2]  # what the projector shows of each account
    assert one.balance == (20_000 - 20) * USDT  # two maker fees of 10
    assert two.balance == (20_000 - 50) * USDT  # two taker fees of 25
    assert one.holds == two.holds == 0
    assert state["open_holds"] == 0
    entries = [e for e in stack.wallet_events() if isinstance(e, LedgerPosted)]
    assert sorted(e.entry_id for e in entries) == list(range(1, 7))
    assert stack.wallet.rebuild()["digest"] == state["digest"]


def test_an_order_beyond_available_margin_is_rejected_with_its_reason(stack: Stack) -> None:
    stack.wallet.start()
    stack.send(Deposit(request_id="d1", user_id=5, amount=1000 * USDT))
    stack.send(place(1, 5, BUY, PRICE, LOT))
    stack.flush()
    stack.quiet()
    # the book answers it, on matcher.events: the wallet sends it there refused
    [rejected] = [m for _, m in stack.records(stack.topics.commands)]
    assert isinstance(rejected, RejectRequest)
    assert (rejected.request_id, rejected.code, rejected.msg) == (
        "p1",
        -2019,
        "Margin is insufficient.",
    )
    assert not [e for e in stack.wallet_events() if isinstance(e, OrderRequestRejected)]


def test_a_retried_client_order_id_is_answered_with_the_original_also_after_a_restart(
    stack: Stack,
) -> None:
    stack.wallet.start()
    stack.send(Deposit(request_id="d1", user_id=3, amount=3000 * USDT))
    stack.send(place(1, 3, BUY, PRICE, LOT, client_order_id="x"))  # holds 2,525
    stack.send(Withdraw(request_id="w1", user_id=3, amount=475 * USDT))  # nothing left free
    stack.flush()
    stack.quiet()
    stack.wallet.kill()
    stack.wallet.start()  # the client id map comes back with the rest of the state
    stack.send(place(2, 3, BUY, PRICE, LOT, client_order_id="x"))
    stack.flush()
    stack.quiet()
    [answer] = [m for _, m in stack.records(stack.topics.commands) if isinstance(m, RejectRequest)]
    assert (answer.request_id, answer.code, answer.order_id, answer.original_order_id) == (
        "p2",
        -4015,
        2,
        1,
    )
    commands = [m for _, m in stack.records(stack.topics.commands) if isinstance(m, PlaceOrder)]
    assert [m.order_id for m in commands] == [1]  # the retry never reached the matcher


def test_malformed_input_on_each_topic_is_skipped_and_counted(stack: Stack) -> None:
    stack.wallet.start()
    wrong = encode(Deposit(request_id="x", user_id=1, amount=1))  # a request on an event topic
    funding = encode(
        FundingPaid(
            seq=1,
            cause=Cause("t", 0, 0),
            user_id=1,
            symbol=SYMBOL,
            amount=1,
            rate=1,
            funding_time=1,
        )
    )
    for topic, kind in (
        (stack.topics.requests, funding),
        (stack.topics.matcher_events, wrong),
        (stack.topics.positions_events, wrong),
    ):
        for value in (b"\xc1garbage", None, kind):
            stack.send_raw(topic, value)
    stack.send(Deposit(request_id="ok", user_id=1, amount=7 * USDT))
    stack.flush()
    stack.quiet()
    for name in ("orders.requests", "matcher.events", "positions.events"):
        assert stack.wallet.metric("wallet_malformed_total", f'{{topic="{name}"}}') == 3
    events = stack.wallet_events()
    assert [e.legs[1].amount for e in events if isinstance(e, LedgerPosted)] == [7 * USDT]
