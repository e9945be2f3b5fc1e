"""The wallet core on worked examples: ledger, holds, pre-trade check, settlement."""

from __future__ import annotations

import msgspec

from libs.messages import (
    AccountUpdated,
    Cause,
    FundingPaid,
    LedgerAccountKind,
    LedgerPosted,
    LeverageSet,
    LiquidationSettled,
    OrderFilled,
    OrderRejected,
    OrderRequestRejected,
    PlaceOrder,
    PositionChanged,
    RejectRequest,
    SetLeverage,
    WithdrawalCompleted,
    account_users,
)
from services.wallet.core import WalletCore
from tests.unit.wallet.kit import (
    BUY,
    LOT,
    PRICE,
    SELL,
    SYMBOL,
    USDT,
    Exchange,
    amend,
    cancel,
    deposit,
    of,
    place,
    withdraw,
)

FEES = LedgerAccountKind.FEES
USER = LedgerAccountKind.USER
CAUSE = Cause("positions.events", 0, 1)


def position(user: int, size: int, entry: int, pnl: int = 0, trade: int = 1) -> PositionChanged:
    return PositionChanged(
        seq=trade,
        cause=CAUSE,
        user_id=user,
        symbol=SYMBOL,
        trade_id=trade,
        size=size,
        entry_notional=entry,
        realised_pnl=pnl,
        fee=0,
    )


def test_a_deposit_moves_cash_from_outside_to_the_user_and_says_so() -> None:
    ex = Exchange()
    out = ex.request(deposit(1, 1000 * USDT))
    [entry] = of(LedgerPosted, out)
    assert sum(leg.amount for leg in entry.legs) == 0
    assert {(leg.kind, leg.owner, leg.amount) for leg in entry.legs} == {
        (LedgerAccountKind.OUTSIDE, 0, -1000 * USDT),
        (USER, 1, 1000 * USDT),
    }
    [update] = of(AccountUpdated, out)
    assert (update.balance, update.holds, update.available) == (1000 * USDT, 0, 1000 * USDT)
    assert update.request_id == "d" + entry.memo.split(" d")[1]


def test_a_limit_order_holds_notional_over_leverage_plus_the_taker_fee() -> None:
    ex = Exchange()
    ex.request(deposit(1, 3000 * USDT))
    out = ex.request(place(1, 1, BUY, PRICE, LOT))
    assert of(PlaceOrder, out)  # forwarded to the matcher
    # 50,000 USDT notional at the default 20x: 2,500 margin + 25 taker fee (0.05%)
    assert ex.wallet.holds.of_user(1) == 2525 * USDT
    assert ex.wallet.available(1) == 475 * USDT


def test_an_order_beyond_available_margin_is_rejected_with_2019() -> None:
    ex = Exchange()
    ex.request(deposit(1, 2524 * USDT))
    out = ex.request(place(1, 1, BUY, PRICE, LOT))
    [rejected] = of(RejectRequest, out)
    assert (rejected.code, rejected.msg, rejected.request_id) == (
        -2019,
        "Margin is insufficient.",
        "p1",
    )
    assert not of(PlaceOrder, out)
    assert ex.wallet.holds.of_user(1) == 0


def test_partial_fills_release_holds_proportionally_and_the_cancel_the_rest() -> None:
    ex = Exchange()
    ex.request(deposit(1, 20_000 * USDT))
    ex.request(deposit(2, 10_000 * USDT))
    ex.request(place(1, 1, BUY, PRICE, 4 * LOT))  # maker: holds 4 x 2525
    ex.request(place(2, 2, SELL, PRICE, LOT))  # taker fills 1 of 4
    assert ex.wallet.holds.of_user(1) == 3 * 2525 * USDT
    assert ex.wallet.holds.of_user(2) == 0
    ex.request(place(3, 2, SELL, PRICE, LOT))
    assert ex.wallet.holds.of_user(1) == 2 * 2525 * USDT
    ex.request(cancel(1, 1))
    assert ex.wallet.holds.of_user(1) == 0
    assert ex.wallet.holds.by_order == {}
    # fees: maker 0.02% = 10 USDT per fill, taker 0.05% = 25 USDT per fill
    assert ex.wallet.balance(1) == 20_000 * USDT - 2 * 10 * USDT
    assert ex.wallet.balance(2) == 10_000 * USDT - 2 * 25 * USDT
    assert ex.wallet.ledger.balance(FEES) == 70 * USDT
    assert ex.wallet.holds.by_user == {}


def test_each_fill_posts_one_fee_entry_per_side() -> None:
    ex = Exchange()
    ex.request(deposit(1, 10_000 * USDT))
    ex.request(deposit(2, 10_000 * USDT))
    ex.request(place(1, 1, BUY, PRICE, LOT))
    out = ex.request(place(2, 2, SELL, PRICE, LOT))
    assert len(of(OrderFilled, out)) == 1
    fees = [e for e in of(LedgerPosted, out) if "fee" in e.memo]
    assert [(e.legs[0].owner, e.legs[1].amount) for e in fees] == [(2, 25 * USDT), (1, 10 * USDT)]


def test_a_market_order_without_any_reference_price_is_rejected_clearly() -> None:
    ex = Exchange()
    ex.request(deposit(1, 10_000 * USDT))
    [rejected] = of(RejectRequest, ex.request(place(1, 1, BUY, None, LOT)))
    assert rejected.code == -2010 and "No mark or last price" in rejected.msg


def test_a_market_order_is_margined_at_the_edge_of_the_band_around_mark() -> None:
    ex = Exchange()
    ex.request(deposit(1, 10_000 * USDT))
    ex.mark(PRICE)
    ex.request(place(1, 1, BUY, PRICE + 1000, LOT))  # a resting sell for it to take? no: rests
    ex.request(cancel(1, 1))
    ex.request(deposit(2, 10_000 * USDT))
    ex.request(place(2, 2, SELL, PRICE, LOT // 2))
    ex.request(place(3, 1, BUY, None, LOT))  # half fills, the rest expires at the band
    assert ex.wallet.holds.of_user(1) == 0
    # with no book at all: the hold is computed at mark x 1.05 = 52,500
    ex2 = Exchange()
    ex2.request(deposit(1, 10_000 * USDT))
    ex2.mark(PRICE)
    ex2.wallet.apply(Cause("orders.requests", 0, 99), place(9, 1, BUY, None, LOT))
    assert ex2.wallet.holds.of_user(1) == 2625 * USDT + 26_25000000


def test_reduce_only_orders_need_no_hold() -> None:
    ex = Exchange()
    out = ex.request(place(1, 1, SELL, PRICE, LOT, reduce_only=True))
    assert of(PlaceOrder, out) and ex.wallet.holds.of_user(1) == 0


def test_withdrawals_leave_what_positions_and_orders_need() -> None:
    ex = Exchange()
    ex.request(deposit(1, 5000 * USDT))
    ex.request(place(1, 1, BUY, PRICE, LOT))  # holds 2525
    [rejected] = of(OrderRequestRejected, ex.request(withdraw(1, 2476 * USDT)))
    assert rejected.code == -4050
    out = ex.request(withdraw(1, 2475 * USDT))
    assert of(WithdrawalCompleted, out)
    assert ex.wallet.balance(1) == 2525 * USDT
    assert ex.wallet.ledger.total_inside() == 2525 * USDT


def test_unrealised_profit_counts_for_orders_but_not_for_withdrawals() -> None:
    ex = Exchange()
    ex.request(deposit(1, 3000 * USDT))
    ex.event(position(1, LOT, 50_000 * USDT))  # long 1 BTC at 50,000: IM 2,500 at 20x
    ex.mark(PRICE + 10_000)  # mark 51,000: uPnL +1,000, IM 2,550
    assert ex.wallet.unrealised_pnl(1) == 1000 * USDT
    assert ex.wallet.available(1) == (3000 + 1000 - 2550) * USDT
    assert ex.wallet.withdrawable(1) == (3000 - 2550) * USDT
    ex.mark(PRICE - 10_000)  # mark 49,000: uPnL -1,000, IM 2,450
    assert ex.wallet.withdrawable(1) == (3000 - 1000 - 2450) * USDT == ex.wallet.available(1)


def test_leverage_is_bounded_and_may_not_overload_the_position() -> None:
    ex = Exchange()
    assert ex.wallet.leverage_of(1, SYMBOL) == 20
    [bad] = of(
        OrderRequestRejected,
        ex.request(SetLeverage(request_id="l1", user_id=1, symbol=SYMBOL, leverage=126)),
    )
    assert bad.code == -4028
    ex.request(deposit(1, 3000 * USDT))
    ex.event(position(1, LOT, 50_000 * USDT))  # IM 2,500 at 20x
    [bad] = of(
        OrderRequestRejected,
        ex.request(SetLeverage(request_id="l2", user_id=1, symbol=SYMBOL, leverage=10)),
    )
    assert bad.code == -2019  # IM would be 5,000 > 3,000
    assert of(
        LeverageSet, ex.request(SetLeverage(request_id="l3", user_id=1, symbol=SYMBOL, leverage=50))
    )
    assert ex.wallet.position_margin(1) == 1000 * USDT
    # 50,000 notional sits in the first bracket (max 125x); a 100x setting is fine
    assert of(
        LeverageSet,
        ex.request(SetLeverage(request_id="l4", user_id=1, symbol=SYMBOL, leverage=100)),
    )


def test_realised_pnl_funding_and_liquidation_move_through_their_accounts() -> None:
    ex = Exchange()
    ex.request(deposit(1, 1000 * USDT))
    ex.event(position(1, 0, 0, pnl=300 * USDT))
    ex.event(
        FundingPaid(
            seq=2, cause=CAUSE, user_id=1, symbol=SYMBOL, amount=-7 * USDT, rate=1, funding_time=5
        )
    )
    ex.event(
        LiquidationSettled(seq=3, cause=CAUSE, user_id=1, symbol=SYMBOL, insurance_delta=40 * USDT)
    )
    w = ex.wallet
    assert w.balance(1) == (1000 + 300 - 7 - 40) * USDT
    assert w.ledger.balance(LedgerAccountKind.PNL) == -300 * USDT
    assert w.ledger.balance(LedgerAccountKind.FUNDING) == 7 * USDT
    assert w.ledger.balance(LedgerAccountKind.INSURANCE) == 40 * USDT
    assert w.ledger.total_inside() == 1000 * USDT


def test_matcher_events_seen_twice_are_applied_once() -> None:
    ex = Exchange()
    ex.request(deposit(1, 10_000 * USDT))
    ex.request(deposit(2, 10_000 * USDT))
    ex.request(place(1, 1, BUY, PRICE, 2 * LOT))
    ex.request(place(2, 2, SELL, PRICE, LOT))
    ex.mark(PRICE)
    before = ex.wallet.digest()
    for event in list(ex.matcher_events):
        assert ex.event(event, "matcher.events") == []
    assert ex.wallet.digest() == before


def test_an_amend_that_raises_the_notional_is_checked_and_rehold() -> None:
    ex = Exchange()
    ex.request(deposit(1, 6000 * USDT))
    ex.request(place(1, 1, BUY, PRICE, LOT))
    [bad] = of(RejectRequest, ex.request(amend(1, 1, qty=3 * LOT)))
    assert bad.code == -2019 and ex.wallet.holds.of_user(1) == 2525 * USDT
    ex.request(amend(1, 1, qty=2 * LOT))
    assert ex.wallet.holds.of_user(1) == 2 * 2525 * USDT
    ex.request(amend(1, 1, qty=LOT // 2))
    assert ex.wallet.holds.of_user(1) == 2525 * USDT // 2
    ex.request(cancel(1, 1))
    assert ex.wallet.holds.of_user(1) == 0 and ex.wallet.holds.by_user == {}


def test_a_matcher_rejection_releases_the_whole_hold() -> None:
    ex = Exchange()
    ex.request(deposit(1, 10_000 * USDT))
    ex.mark(PRICE)
    out = ex.request(place(1, 1, BUY, PRICE + PRICE // 10, LOT))  # outside the 5% band
    assert of(OrderRejected, out)[0].code == -4131
    assert ex.wallet.holds.of_user(1) == 0 and ex.wallet.holds.by_order == {}
    assert ex.wallet.holds.by_user == {}


def test_snapshot_restores_an_equal_state() -> None:
    ex = Exchange()
    ex.request(deposit(1, 10_000 * USDT))
    ex.request(deposit(2, 10_000 * USDT))
    ex.request(place(1, 1, BUY, PRICE, 3 * LOT))
    ex.request(place(2, 2, SELL, PRICE, LOT))
    ex.event(position(1, LOT, 50_000 * USDT))
    ex.mark(PRICE)
    restored = WalletCore.restore(ex.wallet.snapshot())
    assert restored.digest() == ex.wallet.digest()
    assert restored.available(1) == ex.wallet.available(1)


def test_a_retry_of_a_known_client_order_id_answers_the_original_whatever_the_balance() -> None:
    ex = Exchange()
    ex.request(deposit(1, 3000 * USDT))
    assert of(PlaceOrder, ex.request(place(1, 1, BUY, PRICE, LOT, client_order_id="x")))
    ex.request(withdraw(1, ex.wallet.withdrawable(1)))  # nothing left for a second order
    held = ex.wallet.holds.of_user(1)
    out = ex.request(place(2, 1, BUY, PRICE, LOT, client_order_id="x"))
    # no margin check, no hold, no account update: the refusal goes to the book, which
    # answers it (and the wallet, reading that answer, changes nothing)
    answer, answered, _ = out
    assert isinstance(answer, RejectRequest)
    assert (answer.code, answer.original_order_id, answer.order_id) == (-4015, 1, 2)
    assert answer.msg == "Duplicate client order id; original order_id=1"
    assert isinstance(answered, OrderRejected) and answered.pre_trade
    assert (answered.code, answered.original_order_id, answered.msg) == (-4015, 1, answer.msg)
    assert ex.wallet.holds.of_user(1) == held and 2 not in ex.wallet.holds.by_order


def test_the_first_order_with_a_client_id_keeps_it_even_when_it_was_refused() -> None:
    ex = Exchange()
    [refused] = of(RejectRequest, ex.request(place(1, 1, BUY, PRICE, client_order_id="y")))
    assert refused.code == -2019
    ex.request(deposit(1, 10_000 * USDT))
    [retry] = of(RejectRequest, ex.request(place(2, 1, BUY, PRICE, client_order_id="y")))
    assert (retry.code, retry.original_order_id) == (-4015, 1)
    # another user's "y", and this user's other ids, are theirs
    ex.request(deposit(2, 10_000 * USDT))
    assert of(PlaceOrder, ex.request(place(3, 2, BUY, PRICE, client_order_id="y")))
    assert of(PlaceOrder, ex.request(place(4, 1, BUY, PRICE, client_order_id="z")))
    assert ex.wallet.client_ids == {(1, "y"): 1, (2, "y"): 3, (1, "z"): 4}


def test_the_snapshot_keeps_the_client_ids_and_reads_a_version_1_snapshot() -> None:
    ex = Exchange()
    ex.request(deposit(1, 10_000 * USDT))
    ex.request(place(1, 1, BUY, PRICE, LOT, client_order_id="x"))
    restored = WalletCore.restore(ex.wallet.snapshot())
    assert restored.client_ids == {(1, "x"): 1} and restored.digest() == ex.wallet.digest()
    [retry] = restored.apply(CAUSE, place(2, 1, BUY, PRICE, LOT, client_order_id="x"))
    assert retry.original_order_id == 1
    state = ex.wallet.to_state()
    fields = msgspec.structs.astuple(state)
    # version 1: lifetime totals after entry_id and after holds, no client ids
    old = msgspec.msgpack.encode([1, fields[1], 0, 0, *fields[2:4], 0, 0, *fields[4:-1]])
    assert WalletCore.restore(old).client_ids == {}


def test_every_answer_of_the_book_tells_the_account_of_each_user_it_names() -> None:
    """The read side's read-your-writes waits for an ``AccountUpdated`` caused by each book
    record ``account_users`` names, so one goes out even when nothing moved (docs/READ-MODEL.md)."""
    ex = Exchange()
    ex.request(deposit(1, 10_000 * USDT))
    out = ex.request(place(1, 1, SELL, PRICE, LOT, reduce_only=True))  # no hold, yet told
    [told] = of(AccountUpdated, out)
    assert (told.user_id, told.holds, told.cause.topic) == (1, 0, "matcher.events")
    out = ex.request(cancel(99, 1))  # the book knows no such order: still an answer to tell
    [refused] = of(OrderRejected, out)
    assert not refused.pre_trade and [u.user_id for u in of(AccountUpdated, out)] == [1]
    out = ex.request(place(2, 1, BUY, PRICE, 1000 * LOT))  # the wallet refuses it: nothing moved
    [refused] = of(OrderRejected, out)
    assert refused.pre_trade and account_users(refused) == () and not of(AccountUpdated, out)


def test_an_account_update_tells_margin_upnl_and_the_fill_behind_a_position_event() -> None:
    ex = Exchange()
    ex.request(deposit(1, 3000 * USDT))
    ex.mark(PRICE + 1000)  # 50,100: a long of 1 BTC from 50,000 gains 100
    fill = Cause("matcher.events", 0, 41)
    changed = msgspec.structs.replace(position(1, LOT, 50_000 * USDT), cause=fill)
    [update] = of(AccountUpdated, ex.event(changed))
    assert update.origin == fill
    assert update.upnl == 100 * USDT
    assert update.margin == 2505 * USDT  # 50,100 at 20x
    assert update.available == update.balance + update.upnl - update.margin - update.holds
    [deposited] = of(AccountUpdated, ex.request(deposit(1, 1 * USDT)))
    assert deposited.origin is None
