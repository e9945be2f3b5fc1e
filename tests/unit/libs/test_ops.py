import json
import urllib.error
import urllib.request

import pytest
from prometheus_client import CollectorRegistry, Counter

from libs.ops import OpsServer


@pytest.fixture
def server():
    registry = CollectorRegistry()
    Counter("commands", "commands applied", registry=registry).inc(3)

    def digest(query: dict[str, str]) -> dict:
        if query.get("symbol") != "BTC-PERP":
            raise LookupError(f"not served here: {query.get('symbol')}")
        return {"symbol": "BTC-PERP", "digest": "ab", "offset": 7}

    ops = OpsServer(0, digest, registry)
    yield f"http://127.0.0.1:{ops.port}"
    ops.close()


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_metrics_are_served_in_prometheus_text_format(server):
    status, body = _get(f"{server}/metrics")
    assert status == 200
    assert b"commands_total 3.0" in body


def test_digest_answers_with_the_service_json(server):
    status, body = _get(f"{server}/digest?symbol=BTC-PERP")
    assert status == 200
    assert json.loads(body) == {"symbol": "BTC-PERP", "digest": "ab", "offset": 7}


def test_digest_of_something_not_served_is_a_404_with_a_reason(server):
    status, body = _get(f"{server}/digest?symbol=DOGE-PERP")
    assert status == 404
    assert "DOGE-PERP" in json.loads(body)["msg"]
