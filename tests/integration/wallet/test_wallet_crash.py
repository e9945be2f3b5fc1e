"""kill -9 the wallet at random points of a long flow: nothing lost, nothing applied twice.

Runs with the in-test matcher pump and with the real matcher service. Margins are ample and
every hold is a whole multiple of its per-lot amount, so the outcome does not depend on how the
three input topics interleave. The uninterrupted run is therefore the pure core fed, in one pass,
the logs the flow actually produced (the real matcher's batches are only known afterwards):
the position events, then each request followed by the matcher events its forwarded command
caused (their ``cmd_offset``).
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter

import pytest

from libs.messages import (
    AccountUpdated,
    AmendOrder,
    CancelOrder,
    Cause,
    Deposit,
    FundingPaid,
    LedgerPosted,
    LiquidationSettled,
    Message,
    PlaceOrder,
    PositionChanged,
    Withdraw,
)
from services.wallet.core import WalletCore
from tests.integration.wallet.conftest import Stack
from tests.unit.wallet.kit import BUY, LOT, PRICE, SELL, SYMBOL, USDT

USERS = [8, 16, 24, 32, 40, 48]  # all in orders.requests partition 0


def flow(rng: random.Random, size: int) -> list:
    requests: list = []
    owners: dict[int, int] = {}
    for i in range(size):
        user = rng.choice(USERS)
        roll = rng.random()
        if roll < 0.55 or not owners:
            oid = i + 1
            owners[oid] = user
            side = rng.choice((BUY, SELL))
            requests.append(
                PlaceOrder(
                    request_id=f"p{oid}",
                    order_id=oid,
                    user_id=user,
                    symbol=SYMBOL,
                    side=side,
                    order_type="limit",
                    qty=rng.randint(1, 3) * LOT,
                    price=PRICE + rng.randint(-10, 10) * 10,
                )
            )
        elif roll < 0.75:
            oid = rng.choice(list(owners))
            requests.append(
                CancelOrder(request_id=f"c{i}", user_id=owners[oid], symbol=SYMBOL, order_id=oid)
            )
        elif roll < 0.85:
            oid = rng.choice(list(owners))
            requests.append(
                AmendOrder(
                    request_id=f"a{i}",
                    user_id=owners[oid],
                    symbol=SYMBOL,
                    order_id=oid,
                    qty=rng.randint(1, 4) * LOT,
                )
            )
        elif roll < 0.90:
            requests.append(Deposit(request_id=f"d{i}", user_id=user, amount=100 * USDT))
        elif roll < 0.94:
            requests.append(Withdraw(request_id=f"w{i}", user_id=user, amount=10 * USDT))
        else:  # settlements from the position engine, on its own topic
            cause = Cause("positions", 0, i)
            other = rng.choice([u for u in USERS if u != user])
            amount = rng.randint(1, 500) * USDT
            requests.append(
                rng.choice(
                    (
                        [
                            FundingPaid(
                                seq=i,
                                cause=cause,
                                user_id=user,
                                symbol=SYMBOL,
                                amount=-amount,
                                rate=1,
                                funding_time=i,
                            ),
                            FundingPaid(
                                seq=i,
                                cause=cause,
                                user_id=other,
                                symbol=SYMBOL,
                                amount=amount,
                                rate=1,
                                funding_time=i,
                            ),
                        ],
                        [
                            PositionChanged(
                                seq=i,
                                cause=cause,
                                user_id=user,
                                symbol=SYMBOL,
                                trade_id=i,
                                size=0,
                                entry_notional=0,
                                realised_pnl=amount,
                                fee=0,
                            ),
                            PositionChanged(
                                seq=i,
                                cause=cause,
                                user_id=other,
                                symbol=SYMBOL,
                                trade_id=i,
                                size=0,
                                entry_notional=0,
                                realised_pnl=-amount,
                                fee=0,
                            ),
                        ],
                        [
                            LiquidationSettled(
                                seq=i,
                                cause=cause,
                                user_id=user,
                                symbol=SYMBOL,
                                insurance_delta=amount,
                            )
                        ],
                    )
                )
            )
    return requests


def reference(stack: Stack) -> tuple[WalletCore, list[Message]]:
    """Return an uninterrupted wallet fed the logs the flow produced, and all it output."""
    core = WalletCore()
    out: list[Message] = []
    for cause, event in stack.records(stack.topics.positions_events):
        out += core.apply(cause, event)
    requests = iter(stack.records(stack.topics.requests))
    # the matcher names a command by its offset; the wallet forwarded it for one request
    source = {c.offset: m.request_id for c, m in stack.records(stack.topics.commands)}
    applied: set[str] = set()
    for cause, event in stack.records(stack.topics.matcher_events):
        while source[event.cmd_offset] not in applied:
            request_cause, request = next(requests)
            out += core.apply(request_cause, request)
            applied.add(request.request_id)
        out += core.apply(cause, event)
    for cause, request in requests:
        out += core.apply(cause, request)
    return core, out


@pytest.mark.parametrize("matcher", ["pump", "service"])
def test_kill_9_at_random_points_changes_no_balance_hold_or_entry(
    kafka_bootstrap: str, redis_url: str, matcher: str
) -> None:
    rng = random.Random(20261125)
    stack = Stack(kafka_bootstrap, redis_url, snapshot_every=40, matcher=matcher)
    stack.pump.start()
    try:
        stack.wallet.start()
        for user in USERS:
            deposit = Deposit(request_id=f"seed{user}", user_id=user, amount=1_000_000 * USDT)
            stack.send(deposit, partition=0)
        stack.flush()
        stack.quiet()

        requests = flow(rng, 600)
        kills = 0
        done = threading.Event()

        def killer() -> None:
            nonlocal kills
            while not done.is_set():
                time.sleep(rng.uniform(0.5, 2.0))
                stack.wallet.kill()
                kills += 1
                stack.wallet.start()

        thread = threading.Thread(target=killer, daemon=True)
        thread.start()
        try:
            for start in range(0, len(requests), 10):
                for request in requests[start : start + 10]:
                    if isinstance(request, list):  # position events
                        for event in request:
                            stack.send(event, stack.topics.positions_events)  # its user's partition
                        continue
                    stack.send(request, partition=0)
                stack.flush()
                time.sleep(0.2)
            mid_flow = kills
            time.sleep(3)
        finally:  # stop the killer first: it would start a wallet after close()
            done.set()
            thread.join(60)
        state = stack.quiet(timeout=180)
    finally:
        stack.close()

    assert mid_flow >= 1 and kills >= 5
    assert any(isinstance(r, list) for r in requests)
    core, expected = reference(stack)
    # balances and holds, as the wallet last told them (what the projector shows)
    told = {e.user_id: e for e in stack.wallet_events() if isinstance(e, AccountUpdated)}
    for user in USERS:
        assert told[user].balance == core.balance(user), user
        assert told[user].holds == core.holds.of_user(user), user
    assert state["open_holds"] == len(core.holds.by_order)
    # the ledger: every entry exactly once, and the same entries as the uninterrupted run
    entries = [e for e in stack.wallet_events() if isinstance(e, LedgerPosted)]
    assert sorted(e.entry_id for e in entries) == list(range(1, core.ledger.entry_id + 1))
    assert Counter((e.memo, e.legs) for e in entries) == Counter(
        (e.memo, e.legs) for e in expected if isinstance(e, LedgerPosted)
    )
    # every accepted command forwarded once
    assert [m for _, m in stack.records(stack.topics.commands)] == [
        m for m in expected if isinstance(m, (PlaceOrder, CancelOrder, AmendOrder))
    ]
    assert stack.wallet.rebuild()["digest"] == state["digest"]
