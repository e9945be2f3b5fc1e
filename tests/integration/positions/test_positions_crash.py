"""kill -9 the position engine at random points of a long flow: the final positions and the
funding payments equal an uninterrupted run's, nothing lost, nothing applied twice.

Margins are ample (no liquidation can depend on how balances and marks interleave), so the
uninterrupted run is the pure core fed the same logs in process: balances, index ticks, then
the matcher's events in their one total order (fills and echoed marks alike).
"""

from __future__ import annotations

import random
import threading
import time

import pytest

from libs.messages import ANY, FundingPaid, PositionChanged
from libs.symbols import default_symbols
from libs.topics import cause_of
from services.positions.core import PositionsCore
from tests.integration.positions.conftest import NS, SYMBOL, Stack

USERS = [1, 2, 3, 4, 5, 6]
OPTIONS = {"funding_interval_seconds": 2, "basis_window": 1}


def drive(stack: Stack, rng: random.Random, rounds: int, done: threading.Event) -> None:
    oid = 0
    for round_ in range(rounds):
        for _ in range(rng.randint(1, 4)):
            oid += 1
            side = rng.choice(("buy", "sell"))
            price = str(49_950 + rng.randint(0, 10) * 10)
            qty = rng.choice(("0.01", "0.02", "0.05"))
            stack.order(oid, rng.choice(USERS), side, price, qty)
        stack.index(str(49_980 + rng.randint(0, 4) * 10), (round_ + 1) * NS // 4)
        stack.flush()
        time.sleep(rng.uniform(0.0, 0.08))
    done.set()


def reference(stack: Stack) -> tuple[PositionsCore, list]:
    core = PositionsCore(default_symbols(), **OPTIONS)
    out = []
    for topic, apply in (
        (stack.topics.wallet_events, core.apply_wallet),
        (stack.topics.index_prices, core.apply_index),
        (stack.topics.matcher_events, core.apply_matcher),
    ):
        for p in sorted(stack.bus.end_offsets(topic)):
            for r in stack.bus.replay(topic, p):
                message = ANY.decode(r.value)
                cause = cause_of(topic, p, r.offset, stack.prefix)
                out += [o.message for o in apply(message, cause)]
    return core, out


def key(event) -> tuple:
    if type(event) is PositionChanged:
        return (
            "pc",
            event.user_id,
            event.trade_id,
            event.size,
            event.entry_notional,
            event.realised_pnl,
            event.fee,
        )
    return ("fp", event.user_id, event.funding_time, event.amount, event.rate)


@pytest.mark.parametrize("matcher", ["pump", "service"])
def test_kill_9_at_random_points_changes_nothing(make_stack, matcher):
    rng = random.Random(20261125)
    flow_rng = random.Random(7)
    stack = make_stack(matcher, snapshot_every=7, **OPTIONS)
    stack.engine.start()
    for user in USERS:
        stack.balance(user, 10**6 * 10**8)
    stack.flush()
    stack.quiet()
    done = threading.Event()
    driver = threading.Thread(target=drive, args=(stack, flow_rng, 300, done), daemon=True)
    driver.start()
    kills = 0
    while not done.is_set():
        time.sleep(rng.uniform(0.5, 2.0))
        stack.engine.kill()
        kills += 1
        stack.engine.start()
    driver.join()
    state = stack.quiet()
    assert kills >= 3

    events = stack.events()
    topic = stack.topics.positions_events
    for p in sorted(stack.bus.end_offsets(topic)):  # gapless: nothing lost, nothing twice
        seqs = [ANY.decode(r.value).seq for r in stack.bus.replay(topic, p)]
        assert seqs == list(range(1, len(seqs) + 1)), f"partition {p}"

    core, expected = reference(stack)
    kinds = (PositionChanged, FundingPaid)
    live = sorted(key(e) for e in events if type(e) in kinds)
    want = sorted(key(e) for e in expected if type(e) in kinds)
    assert any(k[0] == "fp" for k in want) and any(k[0] == "pc" for k in want)
    assert live == want
    positions = {
        u: (a.positions[SYMBOL].size, a.positions[SYMBOL].entry)
        for u, a in core.accounts.items()
        if SYMBOL in a.positions
    }
    final: dict[int, tuple[int, int]] = {}
    for e in events:
        if type(e) is PositionChanged:
            final[e.user_id] = (e.size, e.entry_notional)
    assert {u: v for u, v in final.items() if v[0]} == positions
    assert stack.engine.rebuild()["digest"] == state["digest"]
