"""The demo market's HTTP calls against a scripted transport: signed as Binance signs, sent
again while the answer says nothing happened yet, and a refusal is an error."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from urllib.parse import parse_qsl, urlsplit

import pytest
from prometheus_client import CollectorRegistry

from services.demo_market.client import (
    Api,
    AuthLost,
    Budget,
    Metrics,
    Refused,
    Stopped,
    TransportError,
)


class Scripted:
    """Answers from a list, in turn; an exception in the list is raised instead."""

    def __init__(self, *answers: object) -> None:
        self.answers = list(answers)
        self.sent: list[tuple[str, str, dict[str, str]]] = []

    def send(self, method, url, headers, body, timeout):
        self.sent.append((method, url, headers))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        status, data = answer
        return status, json.dumps(data).encode(), {}


def api(transport: Scripted, stop: threading.Event | None = None) -> Api:
    made = Api(
        "http://gw",
        "maker",
        transport,
        Budget(1000, 100),
        stop or threading.Event(),
        Metrics(CollectorRegistry()),
        wall_ms=lambda: 1_700_000_000_000,
    )
    made.key, made.secret = "k", "s3cret"
    return made


def test_a_signed_call_carries_the_key_a_timestamp_and_the_hmac_of_its_query():
    transport = Scripted((200, {"ok": 1}))
    assert api(transport).signed("POST", "/fapi/v1/order", symbol="BTCUSDT", side="BUY") == {
        "ok": 1
    }
    method, url, headers = transport.sent[0]
    query = urlsplit(url).query
    signed, _, signature = query.rpartition("&signature=")
    assert method == "POST" and headers == {"X-MBX-APIKEY": "k"}
    assert hmac.new(b"s3cret", signed.encode(), hashlib.sha256).hexdigest() == signature
    assert dict(parse_qsl(signed)) == {
        "symbol": "BTCUSDT",
        "side": "BUY",
        "recvWindow": "10000",
        "timestamp": "1700000000000",
    }


def test_trouble_is_retried_until_an_answer(monkeypatch, caplog):
    monkeypatch.setattr("services.demo_market.client.backoff", lambda attempt: 0.0)
    transport = Scripted(
        TransportError("refused"),
        (503, {"code": -1007, "msg": "Timeout"}),
        (202, {"status": "Pending"}),
        (429, {"code": -1003}),
        (200, [1]),
    )
    with caplog.at_level("INFO", "demo_market"):
        assert api(transport).public("/fapi/v1/depth", symbol="BTCUSDT") == [1]
    assert len(transport.sent) == 5
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2  # one when the trouble starts, one when it ends
    assert "retrying" in lines[0] and "answers again (after 4 retries)" in lines[1]


def test_a_pending_deposit_is_not_sent_twice():
    transport = Scripted((202, {"status": "Pending"}))
    assert api(transport).session("POST", "/deposit", {}, pending_ok=True) == {"status": "Pending"}
    assert len(transport.sent) == 1


def test_a_refusal_and_a_lost_key_are_errors():
    with pytest.raises(Refused) as refused:
        api(Scripted((400, {"code": -2019, "msg": "Margin"}))).signed("GET", "/x")
    assert (refused.value.status, refused.value.code) == (400, -2019)
    with pytest.raises(AuthLost):
        api(Scripted((401, {"code": -2015}))).signed("GET", "/x")


def test_a_stopping_process_gives_up_retrying():
    stop = threading.Event()
    stop.set()
    with pytest.raises(Stopped):
        api(Scripted(TransportError("down")), stop).public("/fapi/v1/ping")
