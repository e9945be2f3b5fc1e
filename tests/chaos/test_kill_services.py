"""Chaos: kill -9 each service in turn while users trade; nothing is lost or applied twice.

The whole exchange runs as processes (tests/e2e/stack.py). Six users trade crossing orders
through the API from threads while the wallet, matcher, positions, the projector and the
gateway are each killed with SIGKILL and restarted. Afterwards, on a quiet stack: every
order we were answered for has a final state, positions net to zero and equal each user's
own fills, and each engine's live state digest equals the one rebuilt from the topics alone.
"""

from __future__ import annotations

import json
import random
import threading
import time
import urllib.request
from collections.abc import Iterator
from decimal import Decimal

import httpx
import pytest

from exchange.cli import verify_exchange
from exchange.verify import line
from tests.e2e.conftest import Trader
from tests.e2e.stack import Stack

VICTIMS = ["wallet", "matcher", "projector", "positions", "gateway"]
SYMBOL = "ETH-PERP"


@pytest.fixture(scope="module")
def stack(kafka_bootstrap: str, database_url: str, redis_url: str) -> Iterator[Stack]:
    exchange = Stack(kafka_bootstrap, database_url, redis_url)
    try:
        exchange.start()
        yield exchange
    finally:
        exchange.stop()


def _trade(api: httpx.Client, seller: Trader, buyer: Trader, stop: threading.Event, seen: list):
    rng = random.Random(seller.user_id)
    while not stop.is_set():
        price = f"{2000 + rng.randint(0, 5)}.00"
        for user, side in ((seller, "Sell"), (buyer, "Buy")):
            body = {"symbol": SYMBOL, "side": side, "order_type": "Limit", "price": price}
            body["quantity"] = f"0.0{rng.randint(1, 3)}"
            try:
                reply = api.post("/place_order", json=body, headers=user.headers)
            except httpx.HTTPError:  # the gateway is down for a moment
                time.sleep(0.2)
                continue
            if reply.status_code in (200, 202):
                seen.append((user, reply.json()["order_id"]))
        time.sleep(0.05)


def _digest(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def _quiet(check, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "the stack did not settle"
        time.sleep(0.5)


def _assert_live_equals_rebuilt(stack: Stack, symbol: str) -> None:
    """Each engine's live state equals its state rebuilt from the topics alone, at the same
    offsets (the wallet, positions, and the matcher's book of ``symbol``): the check of
    ``python -m exchange verify``."""
    engines = ["wallet", "positions", "matcher"]
    checks = verify_exchange(stack.target(), timeout=120, symbols=[symbol], names=engines)
    assert all(check.ok for check in checks), "\n".join(line(check) for check in checks)


def test_killing_every_service_mid_trading_loses_and_doubles_nothing(stack: Stack):
    with httpx.Client(base_url=stack.url, timeout=10) as api:
        traders = [Trader(api) for _ in range(6)]
        stop, seen = threading.Event(), []
        threads = [
            threading.Thread(target=_trade, args=(api, traders[i], traders[i + 1], stop, seen))
            for i in range(0, 6, 2)
        ]
        for thread in threads:
            thread.start()
        try:
            for victim in VICTIMS:
                time.sleep(2)
                stack.services[victim].kill()
                time.sleep(0.5)
                stack.services[victim].start()
            time.sleep(2)
        finally:
            stop.set()
            for thread in threads:
                thread.join()
        stack.check_alive()
        assert len(seen) > 50, "too few orders went through to mean anything"

        # Every order we were told about reaches a final, readable state.
        def settled() -> bool:
            return all(
                user.get(f"/orders/{order_id}").json().get("status") not in (None, "Pending")
                for user, order_id in seen
            )

        _quiet(settled)
        for user in traders:
            user.post("/cancel_all", {"symbol": SYMBOL})

        # Positions net to zero, and each equals the user's own fills.
        def positions_match_fills() -> bool:
            sizes = []
            for user in traders:
                held = {p["symbol"]: Decimal(p["size"]) for p in user.get("/positions").json()}
                fills = user.get("/fills", limit=500).json()
                net = sum(
                    (Decimal(f["quantity"]) * (1 if f["side"] == "Buy" else -1))
                    for f in fills
                    if f["symbol"] == SYMBOL
                )
                if held.get(SYMBOL, Decimal(0)) != net:
                    return False
                sizes.append(net)
            return sum(sizes) == 0 and any(sizes)

        _quiet(positions_match_fills)

    _assert_live_equals_rebuilt(stack, SYMBOL)
