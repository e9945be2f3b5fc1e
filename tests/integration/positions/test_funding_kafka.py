"""Funding over a few short intervals, end to end on Kafka with the wallet process: deposits
and orders through ``orders.requests``, exact amounts netting to zero, each balance moved by
exactly its payment through the wallet's FUNDING account."""

from __future__ import annotations

import pytest

from libs.messages import (
    AccountUpdated,
    FundingPaid,
    FundingRateSet,
    LedgerAccountKind,
    LedgerPosted,
    MarkPriceUpdated,
    PositionChanged,
)
from libs.money import parse_cash
from tests.integration.positions.conftest import NS, SPEC
from tests.integration.positions.exchange import Exchange

USDT = parse_cash("1")


@pytest.mark.parametrize("matcher", ["pump", "service"])
def test_funding_is_paid_every_interval_with_the_exact_amounts(
    make_stack, kafka_bootstrap, matcher
):
    stack = make_stack(matcher, funding_interval_seconds=2, basis_window=1, snapshot_every=5)
    x = Exchange(stack, kafka_bootstrap)
    x.wallet.start()
    stack.engine.start()
    try:
        run(stack, x)
    finally:
        x.wallet.stop()


def run(stack, x: Exchange) -> None:
    for user in (1, 2, 3, 4):
        x.deposit(user, "100000")
    stack.wait_for(lambda: len(x.balances()) == 4, what="the deposits")
    # user 1 long 1 BTC against shorts 2 (0.6) and 3 (0.4); user 4 quotes 49990 / 50010
    x.place(2, "sell", "50000", "0.6")
    x.place(3, "sell", "50000", "0.4")
    x.place(1, "buy", "50000", "1")
    x.place(4, "buy", "49990", "1")
    x.place(4, "sell", "50010", "1")
    stack.wait_for(lambda: len(stack.events(PositionChanged)) == 4, what="the fills")
    # index 50000 = mid: premium 0 (rate = the 0.01% interest); then an interval at 49900
    # (mid 100 above: premium 0.2004% -> rate 0.1504%); then 50000 again. The mark stays
    # 50000 throughout (median of index*(1+drift) <= 50000, index + basis = mid, last trade).
    prices = ["50000"] * 3 + ["49900"] * 4 + ["50000"] * 6
    for i, price in enumerate(prices):
        stack.index(price, (i + 1) * NS // 2)  # every half second, from 0.5 s to 6.5 s
    stack.flush()
    stack.wait_for(lambda: len(stack.events(FundingRateSet)) == 3, what="three funding times")
    state = stack.quiet()
    stack.wait_for(
        lambda: len(funding_entries(x.wallet_events())) == len(stack.events(FundingPaid)),
        what="the wallet to book every payment",
    )

    rates = [(e.funding_time // NS, e.rate) for e in stack.events(FundingRateSet)]
    assert rates == [(2, 10_000), (4, 150_400), (6, 10_000)]
    marks = {e.mark_price for e in stack.events(MarkPriceUpdated)}
    assert marks == {SPEC.price_to_ticks("50000")}
    paid: dict[tuple[int, int], int] = {}
    for e in stack.events(FundingPaid):
        paid[(e.funding_time // NS, e.user_id)] = e.amount
    cents = USDT // 100
    assert paid == {
        (2, 1): -500 * cents,
        (2, 2): 300 * cents,
        (2, 3): 200 * cents,
        (4, 1): -7520 * cents,
        (4, 2): 4512 * cents,
        (4, 3): 3008 * cents,
        (6, 1): -500 * cents,
        (6, 2): 300 * cents,
        (6, 3): 200 * cents,
    }

    # the wallet: the FUNDING account nets to zero at every funding time, and each payment
    # moves its user's balance by exactly its amount (the AccountUpdated right after it)
    wallet = x.wallet_events()
    entries = funding_entries(wallet)
    for time_ in (2, 4, 6):
        legs = [leg for t, e in entries if t == time_ for leg in e.legs]
        assert sum(leg.amount for leg in legs if leg.kind == LedgerAccountKind.FUNDING) == 0
    booked = {
        (t, leg.owner): leg.amount
        for t, e in entries
        for leg in e.legs
        if leg.kind == LedgerAccountKind.USER
    }
    assert booked == paid
    assert balance_moves(wallet) == paid

    # the rebuilt state is the live state; the events tell the read model what it shows
    assert stack.engine.rebuild()["digest"] == state["digest"]
    position = [e for e in stack.events(PositionChanged) if e.user_id == 1][-1]
    assert position.size == SPEC.qty_to_lots("1")
    assert stack.events(FundingRateSet)[-1].rate == 10_000
    last_mark = stack.events(MarkPriceUpdated)[-1]
    assert last_mark.mark_price == SPEC.price_to_ticks("50000")
    assert last_mark.next_funding_time > last_mark.ts


def funding_entries(wallet: list) -> list[tuple[int, LedgerPosted]]:
    """Return the wallet's funding journal entries with their funding time (seconds)."""
    return [
        (int(e.memo.rsplit("@", 1)[1]) // NS, e)
        for e in wallet
        if type(e) is LedgerPosted and e.memo.startswith("funding ")
    ]


def balance_moves(wallet: list) -> dict[tuple[int, int], int]:
    """Return, per (funding time, user), the balance change of the update after its entry."""
    last: dict[int, int] = {}
    pending: dict[int, int] = {}  # user -> funding time of an entry not yet followed by its update
    moves = {}
    for e in wallet:  # partition by partition, in order: a user's events keep their order
        if type(e) is LedgerPosted and e.memo.startswith("funding "):
            (user,) = {leg.owner for leg in e.legs if leg.kind == LedgerAccountKind.USER}
            pending[user] = int(e.memo.rsplit("@", 1)[1]) // NS
        elif type(e) is AccountUpdated:
            if e.user_id in pending:
                moves[(pending.pop(e.user_id), e.user_id)] = e.balance - last[e.user_id]
            last[e.user_id] = e.balance
    return moves
