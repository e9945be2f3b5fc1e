"""Retries of a client order id over HTTP: the answer is always the original order and its id,
whatever the balance is now, and whichever gateway the retry reaches."""

from __future__ import annotations

import time
import uuid
from decimal import Decimal

import httpx

from libs.money import format_cash, parse_cash
from libs.symbols import get_symbol
from services.wallet.core import WalletCore
from tests.e2e.stack import gateway
from tests.processes import free_port


def order(coid: str) -> dict:
    return {
        "symbol": "BTC-PERP",
        "side": "Buy",
        "order_type": "Limit",
        "price": "49000.0",
        "quantity": "0.010",
        "leverage": "10",
        "client_order_id": coid,
    }


def drain(user) -> str:
    """Withdraw everything the open orders leave free; return what they hold."""
    deadline = time.monotonic() + 10
    while Decimal((account := user.get("/account").json())["holds"]) == 0:  # trails a little
        assert time.monotonic() < deadline, account
        time.sleep(0.1)
    done = user.post("/withdraw", {"asset": "USDT", "amount": account["available"]})
    assert done.status_code == 200 and done.json()["status"] == "Done", done.text
    return account["holds"]


def hold_of(placed: dict) -> str:
    """The margin the wallet holds for ``placed`` (its rule: ``WalletCore.required``)."""
    spec = get_symbol(placed["symbol"])
    price, lots = spec.price_to_ticks(placed["price"]), spec.qty_to_lots(placed["quantity"])
    return format_cash(WalletCore.required(spec, price, lots, int(placed["leverage"])))


def test_a_retry_answers_the_original_order_when_the_balance_no_longer_covers_it(trader):
    user = trader(deposit="500")
    coid = f"bot-{uuid.uuid4().hex[:8]}"
    first = user.post("/place_order", order(coid))
    assert first.status_code == 200 and first.json()["status"] == "New", first.text
    drain(user)
    retry = user.post("/place_order", order(coid))
    assert retry.status_code == 200, retry.text  # not 400 -2019: nothing new was checked
    assert (retry.json()["order_id"], retry.json()["status"]) == (first.json()["order_id"], "New")
    assert retry.json()["client_order_id"] == coid
    user.post("/cancel_all", {"symbol": "BTC-PERP"})


def test_a_retry_the_wallet_answers_names_the_original_before_the_read_model_has_it(stack, trader):
    """Through a second gateway (it never saw the first attempt) while the projector is down,
    so the retry goes all the way to the wallet: its answer names the original order."""
    user = trader(deposit="500")
    coid = f"bot-{uuid.uuid4().hex[:8]}"
    port = free_port()
    env = {**stack.services["gateway"].env, "GATEWAY_INSTANCE": "5"}
    other = gateway(port, env, name=f"{stack.prefix}gateway-5")
    other.start()
    projector = stack.services["projector"]
    try:
        projector.stop()
        try:
            first = user.post("/place_order", order(coid))
            assert first.status_code == 200 and first.json()["status"] == "New", first.text
            original = first.json()["order_id"]
            # the read model is the projector's, down: withdraw what the hold leaves, computed
            held = hold_of(order(coid))
            free = format_cash(parse_cash("500") - parse_cash(held))
            done = user.post("/withdraw", {"asset": "USDT", "amount": free})
            assert done.status_code == 200 and done.json()["status"] == "Done", done.text
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as api:
                retry = api.post("/place_order", json=order(coid), headers=user.headers)
            assert retry.status_code == 202, retry.text  # the read model does not know it yet
            assert (retry.json()["order_id"], retry.json()["status"]) == (original, "Pending")
        finally:
            projector.start()
        deadline = time.monotonic() + 20
        while (found := user.get(f"/orders/client/{coid}")).status_code != 200:
            assert time.monotonic() < deadline, found.text
            time.sleep(0.2)
        assert (found.json()["order_id"], found.json()["status"]) == (original, "New")
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as api:
            again = api.post("/place_order", json=order(coid), headers=user.headers)
        assert again.status_code == 200 and again.json()["order_id"] == original, again.text
        orders = user.get("/orders", status="all").json()
        live = [o for o in orders if o["client_order_id"] == coid and o["code"] != -4015]
        assert [o["order_id"] for o in live] == [original]  # the refused retry is only a record
        assert user.get("/account").json()["holds"] == held  # the original's hold, no other
    finally:
        other.stop()
        user.post("/cancel_all", {"symbol": "BTC-PERP"})
