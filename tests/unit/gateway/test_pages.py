"""The trading page (services/gateway/pages.py) and the original API's klines
(services/gateway/api/klines.py) on the real gateway app built on in-memory adapters: the page
and its files are served with their content types, nothing outside ``web/`` is, every file
the page names exists, and ``GET /klines`` answers the Binance face's candles by name."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from libs import codes
from services.gateway.pages import WEB
from tests.unit.gateway.binance.test_candles import MINUTE, NOW, T0, project
from tests.unit.gateway.fakes import Stack, started
from tests.unit.projector.test_candles import MS, Feed


@pytest.fixture
def stack() -> Iterator[Stack]:
    with started() as running:
        running.client.app.state.gateway.now_ns = lambda: NOW * MS  # type: ignore[attr-defined]
        yield running


def test_the_root_answers_the_trading_page_as_html(stack: Stack) -> None:
    reply = stack.client.get("/")
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "text/html; charset=utf-8"
    assert 'data-testid="orderbook"' in reply.text
    assert '<script type="module" src="/web/app.js">' in reply.text


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("/web/app.js", "javascript"),
        ("/web/style.css", "text/css"),
        ("/web/vendor/lightweight-charts.standalone.production.js", "javascript"),
        ("/web/index.html", "text/html"),
    ],
)
def test_the_pages_files_are_served_with_their_content_types(
    stack: Stack, path: str, kind: str
) -> None:
    reply = stack.client.get(path)
    assert reply.status_code == 200, reply.text
    assert kind in reply.headers["content-type"]
    assert reply.headers["cache-control"] == "no-cache"
    assert reply.headers["x-content-type-options"] == "nosniff"


def test_every_file_the_page_names_exists() -> None:
    html = (WEB / "index.html").read_text()
    named = re.findall(r'(?:src|href)="/web/([^"]+)"', html)
    assert "app.js" in named and "style.css" in named
    for name in named:
        assert (WEB / name).is_file(), name


def test_the_chart_library_is_the_vendored_5_2_1_with_its_licence() -> None:
    script = (WEB / "vendor" / "lightweight-charts.standalone.production.js").read_text()
    assert "Lightweight Charts™ v5.2.1" in script[:400]
    assert "Apache License" in (WEB / "vendor" / "LICENSE").read_text()


@pytest.mark.parametrize(
    "path", ["/web/missing.js", "/web/../pages.py", "/web/%2e%2e/pages.py", "/web/vendor"]
)
def test_nothing_outside_the_pages_files_is_served(stack: Stack, path: str) -> None:
    assert stack.client.get(path).status_code == 404


def test_the_page_is_not_in_the_api_schema(stack: Stack) -> None:
    paths = stack.client.get("/openapi.json").json()["paths"]
    assert "/" not in paths
    assert "/klines" in paths


# --- GET /klines --------------------------------------------------------------------------


@pytest.fixture
def minutes(stack: Stack) -> Feed:
    """Three BTC-PERP minutes with a trade each (50000.0, 50001.0, 50002.0), then a quiet
    minute, then a trade at 49900.0."""
    feed = Feed()
    for n in range(3):
        feed.batch((T0 + n * MINUTE + 1_000) * MS, [(500_000 + 10 * n, n + 1, n % 2 == 0)])
    feed.batch((T0 + 4 * MINUTE + 1_000) * MS, [(499_000, 5, False)])
    project(stack, feed)
    return feed


def test_klines_are_the_binance_candles_by_name(stack: Stack, minutes: Feed) -> None:
    reply = stack.client.get("/klines", params={"symbol": "BTC-PERP", "interval": "1m"})
    assert reply.status_code == 200, reply.text
    rows = reply.json()
    binance = stack.client.get(
        "/fapi/v1/klines", params={"symbol": "BTCUSDT", "interval": "1m"}
    ).json()
    assert len(rows) == len(binance) > 4
    for row, theirs in zip(rows, binance, strict=True):
        assert [row[k] for k in ("open_time", "open", "high", "low", "close", "volume")] == theirs[
            :6
        ]
        assert (row["close_time"], row["quote_volume"], row["trades"]) == tuple(theirs[6:9])
    assert rows[0] == rows[0] | {"open_time": T0, "open": "50000.0", "volume": "0.001"}
    quiet = rows[3]  # no trades: flat at the last close
    assert (quiet["open"], quiet["close"], quiet["trades"]) == ("50002.0", "50002.0", 0)
    assert rows[4]["close"] == "49900.0"


def test_klines_page_by_time_and_limit(stack: Stack, minutes: Feed) -> None:
    params = {"symbol": "BTC-PERP", "start_time": T0 + MINUTE, "limit": 2}
    rows = stack.client.get("/klines", params=params).json()
    assert [row["open_time"] for row in rows] == [T0 + MINUTE, T0 + 2 * MINUTE]


def test_klines_of_a_symbol_without_trades_are_empty(stack: Stack) -> None:
    assert stack.client.get("/klines", params={"symbol": "ETH-PERP"}).json() == []


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"symbol": "DOGE-PERP"}, codes.INVALID_SYMBOL),
        ({"symbol": "BTC-PERP", "interval": "7m"}, codes.INVALID_INTERVAL),
        ({"symbol": "BTC-PERP", "limit": "0"}, codes.INVALID_PARAM),
        ({"symbol": "BTC-PERP", "start_time": "x"}, codes.INVALID_PARAM),
        ({}, codes.MANDATORY_PARAM),
    ],
)
def test_klines_refuse_bad_input_with_a_code_and_msg(stack: Stack, params: dict, code: int) -> None:
    reply = stack.client.get("/klines", params=params)
    assert reply.status_code == 400, reply.text
    assert reply.json()["code"] == code
    assert reply.json()["msg"]
