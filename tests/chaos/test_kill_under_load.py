"""Chaos under load: kill -9 every process in turn while the mixed workload runs.

The mixed workload of ``bench/gateway_mixed.py`` (limits within 0.5% of the mark, half of
them crossing, IOC, market, cancels of resting orders) runs open loop at RATE orders/s
against the whole exchange on a private broker, while the wallet, the matcher's I/O process,
then its core process, positions, the projector, the gateway and the Kafka broker are each
killed with SIGKILL and restarted, one after another. Afterwards, on a quiet stack:

- every order answered 200 has a final or open state, and every order answered 202 has one
  or never reached the log (404 well after the delivery timeout);
- no fill appears twice, and every user's position equals the net of their own fills, the
  positions netting to zero;
- money is conserved: the ledger's accounts sum to zero, what is inside equals the deposits
  (nobody withdrew), the users' balances are what the API shows, and the fee account holds
  every fee the fills name;
- each engine's live digest equals its state rebuilt from the topics alone;
- after the broker is back (it answers metadata and coordinator lookups), orders are served
  again (answered 200) within RECOVERED_WITHIN seconds, every service recovering by itself.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from bench.gateway_mixed import IndexFeed, MixedLoad
from bench.http_load import signup
from tests.chaos.test_broker_outage import Broker
from tests.chaos.test_kill_services import _assert_live_equals_rebuilt, _digest, _quiet
from tests.e2e.stack import Stack
from tests.processes import ROOT

# Orders/s offered, open loop: what issue 12 asks for. The stack on a 2-core machine answers
# the mixed flow at 200/s with p99 under 100 ms and saturates near 300/s (docs/BENCHMARKS.md).
# After the broker's restart the requests the gateway queued while it was away (up to the 30 s
# delivery timeout) reach the engines at once, and new orders are answered in time only once
# that backlog is drained by the headroom left above RATE.
RATE = 200
USERS = 200  # as the mixed bench; few enough orders each that every fill fits a /fills page
FILLS_PAGE = 500
DEPOSIT = "100000"
CASH = Decimal("1e8")  # cash units per USDT
SYMBOL = "BTC-PERP"  # the mixed flow's symbol
VICTIMS = ["wallet", "matcher", "matcher-core", "positions", "projector", "gateway", "broker"]
BEFORE_FIRST_KILL = 4.0  # seconds of load before the first kill
BETWEEN_KILLS = 3.0
RECOVERED_WITHIN = 30.0  # seconds from the broker being back to orders answered again (issue 12)
REPLY_TIMEOUT = 2.5  # the gateway's reply wait (2 s) and HTTP: a later 200 was sent after it


def _core_pid(pid: int) -> int:
    """The matcher's pinned core process: its child that is not multiprocessing's tracker."""
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        if b"resource_tracker" not in Path(f"/proc/{child}/cmdline").read_bytes():
            return int(child)
    raise AssertionError("the matcher has no core process")


def _kill(stack: Stack, broker: Broker, victim: str) -> float | None:
    """Kill -9 ``victim`` and start it again; for the broker, return when it was back."""
    if victim == "broker":
        broker.kill()
        time.sleep(1)
        broker.start()  # waits until it answers
        return time.monotonic()
    if victim == "matcher-core":  # the I/O process notices and ends; the supervisor's job
        matcher = stack.services["matcher"]
        assert matcher.proc is not None
        os.kill(_core_pid(matcher.proc.pid), signal.SIGKILL)
        matcher.proc.wait(60)
        matcher.start()
        return None
    stack.services[victim].kill()
    time.sleep(0.5)
    stack.services[victim].start()
    return None


class Recorded(MixedLoad):
    """The mixed load, keeping (user, order id, HTTP status) of every answered placement, and
    when each placement answered 200 came."""

    def __init__(self, *args) -> None:
        super().__init__(*args)
        self.placed: list[tuple[int, int, int]] = []
        self.served: list[float] = []  # monotonic times of the 200 answers to placements
        self.answers: list[tuple[float, str]] = []  # (monotonic time, outcome) of every answer

    def classify(self, request, status: int, body: bytes) -> str:
        kind = super().classify(request, status, body)
        self.answers.append((time.monotonic(), kind))
        if request.order.kind != "cancel" and status in (200, 202):
            self.placed.append((request.order.user, json.loads(body)["order_id"], status))
            if status == 200:
                self.served.append(time.monotonic())
        return kind


@pytest.mark.timeout(900)  # the load runs a minute; the checks ask for every order
def test_kill_9_of_every_process_under_load_loses_and_doubles_nothing(
    broker: Broker, database_url: str, redis_url: str
) -> None:
    stack = Stack(broker.bootstrap, database_url, redis_url, redis_db=12)
    feed: IndexFeed | None = None
    try:
        stack.start()
        tokens = asyncio.run(signup(stack, USERS, DEPOSIT))
        feed = IndexFeed(broker.bootstrap, stack.prefix)
        feed.start()
        load = Recorded(stack.url, tokens, feed)
        # after the broker's restart, long enough to see orders served again
        seconds = BEFORE_FIRST_KILL + BETWEEN_KILLS * len(VICTIMS) + RECOVERED_WITHIN + 10
        result: dict = {}
        running = threading.Thread(
            target=lambda: result.update(asyncio.run(load.run(RATE, seconds))), daemon=True
        )
        running.start()
        time.sleep(BEFORE_FIRST_KILL)
        back = None
        for victim in VICTIMS:
            back = _kill(stack, broker, victim) or back
            time.sleep(BETWEEN_KILLS)
        running.join(seconds + 120)
        assert result, "the load did not finish"
        assert back is not None
        # a 200 this long after the broker was back answers an order sent after it was
        again = next((t for t in load.served if t > back + REPLY_TIMEOUT), None)
        after = Counter(kind for t, kind in load.answers if t > back + REPLY_TIMEOUT)
        assert again is not None, f"no order served after the broker came back: {after}"
        assert again - back <= RECOVERED_WITHIN, f"served again {again - back:.1f} s after"
        print(f"orders served again {again - back:.1f} s after the broker was back")  # pytest -s
        # The load ran at RATE. Not the rate achieved to the last reply: the requests the
        # client queued while the broker was away (its connections each held 2 s by a 202)
        # drain after the run, for as long as the recovery RECOVERED_WITHIN bounds took.
        assert result["offered"] >= 0.95 * RATE, result
        stack.check_alive()
        assert sum(1 for *_, status in load.placed if status == 200) > 500, result["statuses"]
        feed.stop()  # no mark ticks between a live digest and its rebuild
        feed = None
        _check(stack, tokens, load.placed)
    finally:
        if feed is not None:
            feed.stop()
        stack.stop()


def _check(stack: Stack, tokens: list[str], placed: list[tuple[int, int, int]]) -> None:
    with httpx.Client(base_url=stack.url, timeout=30) as api:

        def get(user: int, path: str, **params) -> httpx.Response:
            headers = {"Authorization": f"Bearer {tokens[user]}"}
            return api.get(path, params=params, headers=headers)

        # Every answered order has a final or open state (or, answered 202 while the broker
        # was away, never reached the log: 404 once the delivery timeout is long past).
        time.sleep(35)  # DELIVERY_TIMEOUT_SECONDS: an order on its way is in the log or dropped

        unsettled = list(placed)

        def settled() -> bool:  # each pass asks only for the orders not seen settled yet
            for placement in list(unsettled):
                user, order_id, status = placement
                reply = get(user, f"/orders/{order_id}")
                if reply.status_code == 404 and status == 202:
                    unsettled.remove(placement)
                    continue
                if reply.status_code != 200 or reply.json().get("status") in (None, "Pending"):
                    return False
                unsettled.remove(placement)
            return True

        _quiet(settled, timeout=120)
        for user in range(len(tokens)):
            headers = {"Authorization": f"Bearer {tokens[user]}"}
            api.post("/cancel_all", json={"symbol": SYMBOL}, headers=headers)

        # No fill twice; each position is the net of the user's fills; they net to zero.
        def positions_match_fills() -> bool:
            sizes = []
            for user in range(len(tokens)):
                fills = get(user, "/fills", limit=FILLS_PAGE).json()
                assert len(fills) < FILLS_PAGE, "more fills than a page: raise USERS"
                ids = [(f["trade_id"], f["side"]) for f in fills]
                assert len(ids) == len(set(ids)), f"user {user}: a fill appears twice"
                net = sum(
                    Decimal(f["quantity"]) * (1 if f["side"] == "Buy" else -1)
                    for f in fills
                    if f["symbol"] == SYMBOL
                )
                held = {p["symbol"]: Decimal(p["size"]) for p in get(user, "/positions").json()}
                if held.get(SYMBOL, Decimal(0)) != net:
                    return False
                sizes.append(net)
            return sum(sizes) == 0 and any(sizes)

        _quiet(positions_match_fills, timeout=120)

        # Money is conserved, and the read model agrees with the ledger.
        wallet = stack.services["wallet"]
        accounts = _digest(wallet.ready_url.replace("/metrics", "/digest"))["accounts"]
        assert sum(accounts.values()) == 0
        assert -accounts["outside"] == len(tokens) * Decimal(DEPOSIT) * CASH  # none withdrawn
        balances = sum(Decimal(get(u, "/account").json()["balance"]) for u in range(len(tokens)))
        assert balances * CASH == accounts["user"]
        fees = sum(
            Decimal(f["fee"])
            for u in range(len(tokens))
            for f in get(u, "/fills", limit=FILLS_PAGE).json()
        )
        assert fees * CASH == accounts["fees"]

    _assert_live_equals_rebuilt(stack, SYMBOL)

    # and the command line says so for the whole exchange: every engine, every book
    done = subprocess.run(
        [sys.executable, "-m", "exchange", *stack.cli_args(), "verify", "--timeout", "120"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
