"""Read-your-writes over HTTP: right after a reply, the same user's reads show what it said.

No polling here: every read comes immediately after the reply it checks, as a bot would do
it (docs/READ-MODEL.md, "Read-your-writes").
"""

from __future__ import annotations

from decimal import Decimal

SYMBOL = "ETH-PERP"  # away from the other e2e tests' BTC-PERP books
PRICE, FAR = "2000.00", "2100.00"
QTY = Decimal("0.020")
ROUNDS = 30


def test_each_read_right_after_a_reply_reflects_it(stack, trader):
    maker, taker = trader(), trader()
    stale: list[str] = []

    def expect(what: str, ok: bool, seen: object) -> None:
        if not ok:
            stale.append(f"round {rnd}: {what}: {seen}")

    margin = Decimal(0)
    for rnd in range(1, ROUNDS + 1):
        rest = maker.place("Sell", PRICE, str(QTY), symbol=SYMBOL)
        assert rest["status"] == "New", rest
        order = maker.get(f"/orders/{rest['order_id']}").json()
        expect("resting order", order.get("status") == "New", order)
        opened = [o["order_id"] for o in maker.get("/orders", symbol=SYMBOL).json()]
        expect("open orders", rest["order_id"] in opened, opened)
        holds = maker.get("/account").json()["holds"]
        expect("maker holds", Decimal(holds) > 0, holds)

        take = taker.place("Buy", PRICE, str(QTY), symbol=SYMBOL)
        assert (take["status"], take["filled"]) == ("Filled", str(QTY)), take
        positions = taker.get("/positions").json()
        size = positions[0]["size"] if positions else None
        expect("position", size == str(QTY * rnd), positions)
        fills = taker.get("/fills").json()
        expect("fills", len(fills) == rnd and fills[0]["order_id"] == take["order_id"], fills)
        order = taker.get(f"/orders/{take['order_id']}").json()
        expect(
            "taker order", (order.get("status"), order.get("filled")) == ("Filled", str(QTY)), order
        )
        account = taker.get("/account").json()
        fees = sum(Decimal(f["fee"]) for f in fills)
        expect("balance net of every fee", Decimal(account["balance"]) == 100000 - fees, account)
        expect("holds released", Decimal(account["holds"]) == 0, account)
        expect(
            "margin of the grown position", Decimal(account["position_margin"]) > margin, account
        )
        margin = Decimal(account["position_margin"])

        if rnd % 5 == 0:  # a resting order and its cancel
            far = maker.place("Sell", FAR, str(QTY), symbol=SYMBOL)
            assert far["status"] == "New", far
            cancelled = maker.post("/cancel", {"order_id": far["order_id"]}).json()
            assert cancelled["status"] == "Cancelled", cancelled
            order = maker.get(f"/orders/{far['order_id']}").json()
            expect("cancelled order", order.get("status") == "Cancelled", order)
            opened = [o["order_id"] for o in maker.get("/orders", symbol=SYMBOL).json()]
            expect("open orders after the cancel", far["order_id"] not in opened, opened)
            holds = maker.get("/account").json()["holds"]
            expect("maker holds after the cancel", Decimal(holds) == 0, holds)

    stack.check_alive()
    assert not stale, f"{len(stale)} stale reads, e.g. " + " | ".join(stale[:5])
