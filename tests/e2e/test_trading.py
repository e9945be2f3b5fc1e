"""End to end on real Kafka, Postgres and Redis: every service running as its own process."""

from __future__ import annotations

import time
from collections.abc import Callable

from tests.e2e.ws_client import WsClient


def eventually(check: Callable[[], object], timeout: float = 15) -> object:
    """Poll ``check`` until it returns a truthy value (reads come from an eventual model)."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            assert result, f"still not true after {timeout} s"
            return result
        time.sleep(0.1)


def test_two_users_trade_and_see_it_everywhere(stack, trader):
    alice, bob = trader(), trader()
    watcher = WsClient(stack.url, ["depth:BTC-PERP", "trades:BTC-PERP"])
    alice_ws = WsClient(stack.url, ["user"], token=alice.token)
    bob_ws = WsClient(stack.url, ["user"], token=bob.token)

    rest = alice.place("Sell", "50000.0", "0.010")
    assert rest["status"] == "New" and rest["filled"] == "0.000" and rest["remaining"] == "0.010"
    take = bob.place("Buy", "50000.0", "0.004")
    assert (take["status"], take["filled"], take["remaining"]) == ("Filled", "0.004", "0.000")

    # Both see the fill, their positions, balances and fees over REST ...
    alice_fill = eventually(lambda: alice.get("/fills").json())[0]
    bob_fill = eventually(lambda: bob.get("/fills").json())[0]
    assert (alice_fill["maker"], alice_fill["fee"], alice_fill["price"]) == (
        True,
        "0.04",
        "50000.0",
    )
    assert (bob_fill["maker"], bob_fill["fee"], bob_fill["quantity"]) == (False, "0.1", "0.004")
    assert eventually(lambda: alice.get("/positions").json())[0]["size"] == "-0.004"
    assert eventually(lambda: bob.get("/positions").json())[0]["size"] == "0.004"
    eventually(lambda: alice.get("/account").json()["balance"] == "99999.96")
    eventually(lambda: bob.get("/account").json()["balance"] == "99999.9")
    order = alice.get(f"/orders/{rest['order_id']}").json()
    assert (order["status"], order["filled"], order["remaining"]) == (
        "PartiallyFilled",
        "0.004",
        "0.006",
    )

    # ... and over the WebSocket user stream.
    for ws, fee in ((alice_ws, "0.04"), (bob_ws, "0.1")):
        assert ws.wait_for(lambda m: m.get("type") == "fill")["data"]["fee"] == fee
        ws.wait_for(lambda m: m.get("type") == "position")
        ws.wait_for(lambda m: m.get("type") == "account")
    alice_ws.wait_for(
        lambda m: m.get("type") == "order" and m["data"]["status"] == "PartiallyFilled"
    )
    watcher.wait_for(lambda m: m.get("channel") == "trades:BTC-PERP")

    # The depth the WebSocket client built from snapshot + updates is the REST book exactly.
    rest_book = eventually(
        lambda: (
            (b := alice.api.get("/orderbook/BTC-PERP").json())["asks"] == [["50000.0", "0.006"]]
            and b
        )
    )
    eventually(lambda: watcher.book("BTC-PERP")["update_id"] == rest_book["update_id"])
    synced = watcher.book("BTC-PERP")
    assert (synced["bids"], synced["asks"]) == (rest_book["bids"], rest_book["asks"])

    # Cancel the rest: the book is empty, on REST and for the depth watcher.
    cancelled = alice.post("/cancel", {"order_id": rest["order_id"], "user_id": alice.user_id})
    assert cancelled.status_code == 200, cancelled.text
    assert (cancelled.json()["status"], cancelled.json()["remaining"]) == ("Cancelled", "0.006")
    book = eventually(
        lambda: (b := alice.api.get("/orderbook/BTC-PERP").json())["asks"] == [] and b
    )
    assert book["bids"] == []
    eventually(lambda: watcher.book("BTC-PERP")["update_id"] == book["update_id"])
    assert watcher.book("BTC-PERP")["asks"] == [] and watcher.gaps == []
    for ws in (watcher, alice_ws, bob_ws):
        ws.close()


def test_market_ioc_post_only_reduce_only_and_a_stop(stack, trader):
    maker, taker = trader(), trader()  # BTC-PERP's minimum notional is 100 USDT

    maker.place("Sell", "50010.0", "0.003")
    ioc = taker.place("Buy", "50010.0", "0.005", time_in_force="IOC")
    assert (ioc["status"], ioc["filled"], ioc["remaining"]) == ("Expired", "0.003", "0.002")

    # A market order is margined at the last price (or mark): the IOC just printed one.
    maker.place("Sell", "50010.0", "0.003")
    market = taker.place("Buy", None, "0.003")
    assert (market["status"], market["filled"]) == ("Filled", "0.003")

    resting = maker.place("Sell", "50020.0", "0.003")
    post_only = taker.place("Buy", "50020.0", "0.003", time_in_force="GTX")
    assert (post_only["status"], post_only["reason"]) == ("Expired", "post_only")
    assert maker.post("/cancel", {"order_id": resting["order_id"]}).json()["status"] == "Cancelled"

    # taker is long 0.006: a reduce-only buy would grow it, a reduce-only sell may rest.
    grow = taker.place("Buy", "40000.0", "0.003", reduce_only=True)
    assert grow["status"] in ("Rejected", "Expired") and grow.get("code") != -4164, grow
    shrink = taker.place("Sell", "60000.0", "0.003", reduce_only=True)
    assert shrink["status"] == "New", shrink

    # A stop-market sell below the market triggers when a trade prints at its price.
    stop = taker.place(
        "Sell", None, "0.003", order_type="StopMarket", stop_price="49990.0", trigger_by="Last"
    )
    assert stop["status"] == "New", stop
    assert maker.place("Buy", "49990.0", "0.006")["status"] == "New"
    trigger = taker.place("Sell", "49990.0", "0.003")
    assert trigger["status"] == "Filled", trigger
    fired = eventually(
        lambda: (o := taker.get(f"/orders/{stop['order_id']}").json())["status"] == "Filled" and o
    )
    assert fired["filled"] == "0.003"

    for user in (maker, taker):
        done = user.post("/cancel_all", {"symbol": "BTC-PERP"})
        assert done.status_code == 200, done.text
    book = eventually(
        lambda: (
            (b := maker.api.get("/orderbook/BTC-PERP").json())["bids"] == []
            and b["asks"] == []
            and b
        )
    )
    assert book["bids"] == book["asks"] == []
