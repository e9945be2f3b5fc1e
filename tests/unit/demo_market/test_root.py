"""The demo market's composition root, built on a transport that answers like the gateway:
the markets come from exchangeInfo, one maker and DEMO_TAKERS takers share them."""

from __future__ import annotations

import json
import threading

from prometheus_client import CollectorRegistry

from services.demo_market.__main__ import build
from services.demo_market.bots import Maker, Taker
from services.demo_market.settings import DemoMarketSettings

EXCHANGE_INFO = {
    "symbols": [
        {
            "symbol": f"{base}USDT",
            "baseAsset": base,
            "filters": [
                {"filterType": "PRICE_FILTER", "tickSize": "0.01"},
                {"filterType": "LOT_SIZE", "minQty": "0.01", "maxQty": "1000", "stepSize": "0.01"},
                {"filterType": "MIN_NOTIONAL", "notional": "5"},
            ],
        }
        for base in ("BTC", "ETH", "SOL")
    ]
}


class Gateway:
    def send(self, method, url, headers, body, timeout):
        assert url == "http://gw:1/fapi/v1/exchangeInfo"
        return 200, json.dumps(EXCHANGE_INFO).encode(), {}


def test_the_root_wires_a_maker_and_the_takers_on_the_chosen_markets(monkeypatch):
    monkeypatch.setenv("GATEWAY_URL", "http://gw:1")
    monkeypatch.setenv("DEMO_SYMBOLS", "SOL-PERP,BTCUSDT")
    monkeypatch.setenv("DEMO_TAKERS", "2")
    monkeypatch.setenv("DEMO_USER_PREFIX", "t")
    bots = build(DemoMarketSettings(), threading.Event(), CollectorRegistry(), transport=Gateway())
    assert [type(b) for b in bots] == [Maker, Taker, Taker]
    assert [b.identity.email for b in bots] == [
        "t-maker@example.com",
        "t-taker-1@example.com",
        "t-taker-2@example.com",
    ]
    assert [m.name for m in bots[0].board.markets] == ["SOL-PERP", "BTC-PERP"]
    assert len({id(b.board) for b in bots}) == 1  # one board, one budget for all


def test_demo_market_off_is_a_setting(monkeypatch):
    monkeypatch.setenv("DEMO_MARKET", "off")
    assert DemoMarketSettings().demo_market is False
    monkeypatch.setenv("DEMO_MARKET", "on")
    assert DemoMarketSettings().demo_market is True
