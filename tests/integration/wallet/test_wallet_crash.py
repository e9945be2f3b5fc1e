"""kill -9 the wallet at random points of a long flow: nothing lost, nothing applied twice.

All users share one ``orders.requests`` partition and the pump runs one command per batch, so
the uninterrupted outcome does not depend on how the topics interleave: the reference is the
same requests through the pure cores in process (``tests/unit/wallet/kit.Exchange``).
"""

from __future__ import annotations

import random
import threading
import time

import redis

from libs.messages import (
    ANY,
    AmendOrder,
    CancelOrder,
    Cause,
    Deposit,
    FundingPaid,
    LedgerPosted,
    LiquidationSettled,
    PlaceOrder,
    PositionChanged,
    Withdraw,
)
from libs.topics import symbol_partition
from tests.integration.wallet.conftest import Stack
from tests.unit.wallet.kit import BUY, LOT, PRICE, SELL, SYMBOL, USDT, Exchange

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


def test_kill_9_at_random_points_changes_no_balance_hold_or_entry(
    kafka_bootstrap: str, redis_url: str
) -> None:
    rng = random.Random(20261125)
    stack = Stack(kafka_bootstrap, redis_url, snapshot_every=40)
    stack.pump.start()
    reference = Exchange()
    try:
        stack.wallet.start()
        funding = [
            Deposit(request_id=f"seed{u}", user_id=u, amount=1_000_000 * USDT) for u in USERS
        ]
        for request in funding:
            stack.send(request, partition=0)
            reference.request(request)
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
        for start in range(0, len(requests), 10):
            for request in requests[start : start + 10]:
                if isinstance(request, list):  # position events
                    for event in request:
                        stack.send(event, stack.topics.position_events, partition=3)
                        reference.event(event)
                    continue
                stack.send(request, partition=0)
                reference.request(request)
            stack.flush()
            time.sleep(0.2)
        time.sleep(3)
        done.set()
        thread.join(60)
        state = stack.quiet(timeout=180)
    finally:
        stack.close()

    assert kills >= 5
    assert any(isinstance(r, list) for r in requests)
    w = reference.wallet
    # balances and holds, as the wallet wrote them to Redis
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    for user in USERS:
        account = r.hgetall(f"wallet:account:{user}")
        assert int(account["balance"]) == w.balance(user), user
        assert int(account["holds"]) == w.holds.of_user(user), user
    assert state["open_holds"] == len(w.holds.by_order)
    # the ledger: every entry exactly once, and the same entries as the uninterrupted run
    entries = [e for e in stack.wallet_events() if isinstance(e, LedgerPosted)]
    assert sorted(e.entry_id for e in entries) == list(range(1, w.ledger.entry_id + 1))
    totals: dict = {}
    for entry in entries:
        for leg in entry.legs:
            totals[(leg.kind, leg.owner)] = totals.get((leg.kind, leg.owner), 0) + leg.amount
    assert {k: v for k, v in totals.items() if v} == {
        k: v for k, v in w.ledger.balances.items() if v
    }
    # every accepted command forwarded once
    forwarded = [
        ANY.decode(rec.value)
        for rec in stack.bus.replay(stack.topics.commands, symbol_partition(SYMBOL))
    ]
    expected = [
        m for m in reference.outputs if isinstance(m, (PlaceOrder, CancelOrder, AmendOrder))
    ]
    assert forwarded == expected
    assert stack.wallet.rebuild()["digest"] == state["digest"]
