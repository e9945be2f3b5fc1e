"""Chaos: the broker dies (kill -9) around an order with a client order id, and comes back.

The whole exchange runs as processes (tests/e2e/stack.py) on a private broker this test may
kill. Every request made during the outage is answered within the reply timeout (202: in
flight), every retry of the client order id names the original order, before and after the
broker returns, and once the stack settles exactly one order holds the client id: the
original, filled, as ``GET /orders/client/{id}`` says, and the taker holds the position.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from decimal import Decimal

import httpx

from tests.e2e.conftest import Trader
from tests.e2e.stack import Stack
from tests.processes import ROOT, free_port

ON_TIME = 2.5  # the reply timeout (2 s) and a little for HTTP


class Broker:
    """A single-node Kafka on its own ports and data directory, to kill -9 and restart."""

    def __init__(self) -> None:
        self.data = tempfile.mkdtemp(prefix="outage-broker-")
        self.port, self.controller = free_port(), free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["scripts/kafka.sh", "start", self.data, str(self.port), str(self.controller)],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait = ["scripts/kafka.sh", "wait", self.bootstrap, "120"]
        subprocess.run(wait, cwd=ROOT, check=True)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.kill()
        shutil.rmtree(self.data, ignore_errors=True)


def timed(send) -> tuple[httpx.Response | None, float]:
    """The reply and how long it took; None if none came within the client's timeout."""
    started = time.monotonic()
    try:
        reply = send()
    except httpx.TimeoutException:
        reply = None
    return reply, time.monotonic() - started


def buy(coid: str) -> dict:
    body = {"symbol": "BTC-PERP", "side": "Buy", "order_type": "Limit", "price": "50000.0"}
    return {**body, "quantity": "0.010", "leverage": "10", "client_order_id": coid}


def test_retries_across_a_broker_outage_always_name_the_original_order(
    broker: Broker, database_url: str, redis_url: str
) -> None:
    stack = Stack(broker.bootstrap, database_url, redis_url, redis_db=11)
    # the first attempts must outlive the restart (a JVM start on a busy machine): what
    # happens to a request the broker never takes is the integration tests' business
    stack.services["gateway"].env["DELIVERY_TIMEOUT_SECONDS"] = "180"
    try:
        stack.start()
        with httpx.Client(base_url=stack.url, timeout=10) as api:
            maker, taker = Trader(api), Trader(api)
            resting = maker.place("Sell", "50000.0", "0.020")
            assert resting["status"] == "New", resting
            # The read model shows it before the broker dies: the projector fetches in 50 ms
            # batches, and a read that waits for a writer the dead broker keeps behind waits
            # its whole bound (READ_WAIT_SECONDS), which is not what this test is about.
            assert maker.get("/orders").status_code == 200
            before, during = f"x-{uuid.uuid4().hex[:8]}", f"y-{uuid.uuid4().hex[:8]}"

            # The broker dies just as the first order goes out ...
            replies: list[tuple[httpx.Response, float]] = []
            placing = threading.Thread(
                target=lambda: replies.append(
                    timed(lambda: taker.post("/place_order", buy(before)))
                )
            )
            placing.start()
            time.sleep(0.005)
            broker.kill()
            placing.join()
            [(first, took)] = replies
            assert first is not None and took < ON_TIME, f"no answer in {took:.1f} s"
            assert first.status_code in (200, 202), first.text
            originals = {before: first.json()["order_id"]}

            # ... and the second goes out while it is dead.
            second, took = timed(lambda: taker.post("/place_order", buy(during)))
            assert second is not None and took < ON_TIME, f"no answer in {took:.1f} s"
            assert second.status_code == 202, second.text
            originals[during] = second.json()["order_id"]
            for coid, original in originals.items():
                retry, took = timed(lambda c=coid: taker.post("/place_order", buy(c)))
                assert retry is not None and took < ON_TIME, f"no answer in {took:.1f} s"
                assert retry.status_code == 202 and retry.json()["order_id"] == original
            # every other request on this path is answered on time too
            for path, body in (
                ("/deposit", {"asset": "USDT", "amount": "1"}),
                ("/withdraw", {"asset": "USDT", "amount": "1"}),
                ("/cancel", {"symbol": "ETH-PERP", "order_id": 1}),
                ("/cancel_all", {"symbol": "ETH-PERP"}),
                ("/amend", {"order_id": resting["order_id"], "quantity": "0.020"}),
                ("/leverage", {"symbol": "ETH-PERP", "leverage": 5}),
            ):
                reply, took = timed(lambda p=path, b=body: maker.post(p, b))
                assert reply is not None and took < ON_TIME, f"{path}: no answer in {took:.1f} s"
                assert reply.status_code == 202, (path, reply.text)

            broker.start()
            deadline = time.monotonic() + 240
            settled: set[str] = set()
            while settled != set(originals):
                assert time.monotonic() < deadline, f"not settled: {settled} of {originals}"
                for service in stack.services.values():
                    if not service.alive():  # a supervisor's job: restart what the outage ended
                        service.start()
                for coid, original in originals.items():
                    try:
                        retry = taker.post("/place_order", buy(coid))
                    except httpx.HTTPError:
                        continue
                    assert retry.status_code in (200, 202), retry.text
                    assert retry.json()["order_id"] == original, (coid, retry.text)
                    if retry.json()["status"] == "Filled":
                        settled.add(coid)
                time.sleep(0.5)

            orders = taker.get("/orders", status="all").json()
            for coid, original in originals.items():
                found = taker.get(f"/orders/client/{coid}").json()
                assert (found["order_id"], found["status"]) == (original, "Filled")
                held = [o for o in orders if o["client_order_id"] == coid]
                assert held == [found]  # exactly one order holds the id: the original
            # the client has it. A retry answered from the read model notes no log position
            # for read-your-writes, and the position engine recovering from the outage may
            # still be writing: wait for it (bounded)
            deadline, positions = time.monotonic() + 30, {}
            while positions.get("BTC-PERP") is None and time.monotonic() < deadline:
                positions = {p["symbol"]: p["size"] for p in taker.get("/positions").json()}
                time.sleep(0.2)
            assert Decimal(positions.get("BTC-PERP", "0")) == Decimal("0.020"), positions
    finally:
        stack.stop()
