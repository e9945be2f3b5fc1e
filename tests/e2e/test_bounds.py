"""Bounds at the edge of the real exchange: the faucet cannot overflow the wallet, and a huge
body is refused with 413 before it is read, declared or chunked."""

from __future__ import annotations

import json
import select
import socket
import time
from urllib.parse import urlparse

import httpx
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.e2e.test_trading import eventually

MAXIMUM = "1000000"  # libs.money.MAX_TRANSFER
TEN_MB = 10 * 1024 * 1024


def test_ten_maximal_deposits_then_a_clear_4xx_and_the_wallet_still_works(stack, trader):
    whale, other = trader(deposit=""), trader(deposit="")
    old_maximum = whale.post("/deposit", {"asset": "USDT", "amount": "10000000000"})
    assert old_maximum.status_code == 400 and old_maximum.json()["code"] == -1130
    for _ in range(10):
        done = whale.post("/deposit", {"asset": "USDT", "amount": MAXIMUM})
        assert done.status_code == 200 and done.json()["status"] == "Done", done.text
    assert done.json()["balance"] == "10000000"
    refused = whale.post("/deposit", {"asset": "USDT", "amount": MAXIMUM})
    assert refused.status_code == 400, refused.text
    assert refused.json() == {
        "code": -4095,
        "msg": "Deposit refused: the balance would pass 10000000 USDT.",
    }
    over = whale.post("/withdraw", {"asset": "USDT", "amount": "1000000.00000001"})
    assert over.status_code == 400 and over.json()["code"] == -1130
    # the wallet still works, for the whale and for everyone else
    order = whale.place("Buy", "30000.0", "0.010")
    assert order["status"] == "New", order
    assert whale.post("/cancel", {"order_id": order["order_id"]}).json()["status"] == "Cancelled"
    out = whale.post("/withdraw", {"asset": "USDT", "amount": MAXIMUM})
    assert out.status_code == 200 and out.json()["status"] == "Done", out.text
    back = whale.post("/deposit", {"asset": "USDT", "amount": "5"})
    assert back.status_code == 200 and back.json()["balance"] == "9000005"
    assert other.post("/deposit", {"asset": "USDT", "amount": "100"}).json()["status"] == "Done"
    eventually(lambda: whale.get("/account").json()["balance"] == "9000005")
    wallet = stack.services["wallet"]
    digest = httpx.get(f"http://127.0.0.1:{wallet.port}/digest", timeout=5)
    assert digest.status_code == 200 and len(digest.json()["digest"]) == 64
    metrics = httpx.get(f"http://127.0.0.1:{wallet.port}/metrics", timeout=5).text
    failed = [line for line in metrics.splitlines() if line.startswith("wallet_failed_total{")]
    assert all(line.endswith(" 0.0") for line in failed), failed
    stack.check_alive()


def _connect(stack) -> socket.socket:
    url = urlparse(stack.url)
    return socket.create_connection((url.hostname, url.port), timeout=10)


def _response(sock: socket.socket) -> tuple[int, dict]:
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = int(
        next(
            line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
        ).split(b":")[1]
    )
    while len(body) < length:
        body += sock.recv(65536)
    return status, json.loads(body)


def test_a_declared_10_mb_body_gets_413_before_any_of_it_is_sent(stack, trader):
    user = trader(deposit="")
    with _connect(stack) as sock:
        sock.sendall(
            b"POST /place_order HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Authorization: Bearer {user.token}\r\nContent-Length: {TEN_MB}\r\n\r\n".encode()
        )
        status, body = _response(sock)
    assert status == 413
    assert body == {"code": -1413, "msg": "Request body larger than 65536 bytes."}


def test_a_chunked_body_without_length_gets_413_while_it_is_still_being_sent(stack, trader):
    user = trader(deposit="")
    chunk = b"{" * 16384
    framed = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    sent = 0
    answer = None
    with _connect(stack) as sock:
        sock.sendall(
            b"POST /place_order HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Authorization: Bearer {user.token}\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
        )
        while sent < TEN_MB:
            readable, _, _ = select.select([sock], [], [], 0.01)
            if readable:
                answer = _response(sock)
                break
            try:
                sock.sendall(framed)
            except OSError:  # the server closed after answering
                time.sleep(0.05)
                answer = _response(sock)
                break
            sent += len(chunk)
    assert answer is not None, "the whole 10 MB went in without an answer"
    assert answer == (413, {"code": -1413, "msg": "Request body larger than 65536 bytes."})
    assert sent < TEN_MB // 4
    assert httpx.get(f"{stack.url}/healthz", timeout=5).status_code == 200


def test_a_websocket_message_over_the_limit_closes_the_socket_with_1009(stack):
    with connect(stack.url.replace("http://", "ws://") + "/ws") as ws:
        ws.send(json.dumps({"op": "ping"}))
        assert json.loads(ws.recv(timeout=10)) == {"op": "pong"}
        ws.send(json.dumps({"op": "ping", "pad": " " * 70_000}))
        try:
            ws.recv(timeout=10)
        except ConnectionClosed as closed:
            assert closed.rcvd is not None and closed.rcvd.code == 1009
        else:
            raise AssertionError("the socket stayed open")


def test_a_price_whose_largest_order_would_pass_the_notional_bound_is_refused(stack, trader):
    user = trader()
    body = {"symbol": "BTC-PERP", "side": "Sell", "order_type": "Limit", "quantity": "0.001"}
    above = user.post("/place_order", {**body, "price": "10000000.1", "reduce_only": True})
    assert above.status_code == 400
    assert above.json() == {"code": -4002, "msg": "price above the maximum 10000000.0."}
    stop = {**body, "order_type": "StopMarket", "stop_price": "20000000.0"}
    assert user.post("/place_order", stop).json()["code"] == -4002
    at = user.post("/place_order", {**body, "price": "10000000.0", "reduce_only": True})
    assert at.status_code in (200, 400) and at.json().get("code") != -4002
