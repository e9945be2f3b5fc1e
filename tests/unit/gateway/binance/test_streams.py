"""The Binance face's WebSocket streams (services/gateway/binance/streams.py) on the real gateway
app built on in-memory adapters: fakeredis publishes what the projector publishes, the gateway's
``Hub`` fans it out, and each connection gets Binance's events; ccxt.pro's own handlers parse
them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import ccxt.pro
import pytest

from libs.messages import OrderStatus
from libs.read_model import keys
from services.gateway.binance import streams
from services.gateway.binance.stream_events import CandleBuilder, interval_bounds
from services.projector.orders import Order
from tests.unit.gateway.fakes import Stack, started

NOW_MS = 1_700_000_000_000
BTC = "BTC-PERP"
ALICE, BOB = 1, 2


@pytest.fixture
def stack() -> Iterator[Stack]:
    with started() as running:
        running.client.app.state.gateway.now_ns = lambda: NOW_MS * 1_000_000  # type: ignore[attr-defined]
        yield running


def publish(stack: Stack, channel: str, payload: dict) -> None:
    stack.run(stack.redis.publish(channel, json.dumps(payload)))


def confirmed(socket: Any, request_id: int = 99) -> list:
    """Wait until the connection's subscriptions are live: answer LIST_SUBSCRIPTIONS."""
    socket.send_json({"method": "LIST_SUBSCRIPTIONS", "id": request_id})
    answer = socket.receive_json()
    assert answer["id"] == request_id
    return answer["result"]


def depth(update_id: int, bids: list, asks: list) -> dict:
    return {
        "symbol": BTC,
        "first_update_id": update_id,
        "update_id": update_id,
        "bids": bids,
        "asks": asks,
    }


def trade(trade_id: int, price: int, qty: int, taker: str = "buy", ts: int = NOW_MS) -> dict:
    return {"trade_id": trade_id, "price": price, "qty": qty, "taker_side": taker, "ts": ts}


def seed_book(stack: Stack, update_id: int) -> None:
    stack.seed_hash(
        keys.book_key(BTC),
        {
            "bids": json.dumps([[500_000, 10], [499_990, 20]]),
            "asks": json.dumps([[500_010, 5]]),
            "update_id": update_id,
        },
    )


# --- requests -------------------------------------------------------------------------------


def test_subscribe_and_unsubscribe_answer_with_the_request_id_and_change_the_list(stack):
    with stack.client.websocket_connect("/public/ws") as socket:
        socket.send_json({"method": "SUBSCRIBE", "params": ["btcusdt@depth@100ms"], "id": 1})
        assert socket.receive_json() == {"result": None, "id": 1}
        socket.send_json({"method": "SUBSCRIBE", "params": ["btcusdt@aggTrade"], "id": 2})
        assert socket.receive_json() == {"result": None, "id": 2}
        assert confirmed(socket, 3) == ["btcusdt@depth@100ms", "btcusdt@aggTrade"]
        socket.send_json({"method": "UNSUBSCRIBE", "params": ["btcusdt@depth@100ms"], "id": 4})
        assert socket.receive_json() == {"result": None, "id": 4}
        assert confirmed(socket, 5) == ["btcusdt@aggTrade"]
        publish(stack, keys.depth_channel(BTC), depth(1, [[500_000, 1]], []))
        publish(stack, keys.trades_channel(BTC), trade(8, 500_000, 1))
        assert socket.receive_json()["e"] == "aggTrade"  # the depth update is not sent


def test_unknown_streams_and_methods_get_binances_error_shape_and_the_socket_lives_on(stack):
    with stack.client.websocket_connect("/market/ws") as socket:
        socket.send_json({"method": "SUBSCRIBE", "params": ["btcusdt@nonsense"], "id": 7})
        answer = socket.receive_json()
        assert answer["id"] == 7 and answer["error"]["code"] == 2
        socket.send_json({"method": "SUBSCRIBE", "params": ["dogeusdt@depth"], "id": 8})
        assert socket.receive_json()["error"]["code"] == 2
        socket.send_json({"method": "SUBSCRIBE", "params": [5], "id": 9})
        assert socket.receive_json() == {
            "error": {"code": 1, "msg": "Invalid value type: expected String"},
            "id": 9,
        }
        socket.send_json({"method": "DANCE", "id": 10})
        assert socket.receive_json()["error"]["code"] == 2
        socket.send_text("{not json")
        assert socket.receive_json()["error"]["code"] == 3
        socket.send_json({"method": "SUBSCRIBE", "params": ["x"], "id": -1})
        assert socket.receive_json()["error"]["code"] == 2
        socket.send_json({"method": "GET_PROPERTY", "params": ["combined"], "id": 11})
        assert socket.receive_json() == {"result": False, "id": 11}
        assert confirmed(socket) == []


def test_combined_streams_wrap_each_event_with_its_stream_name(stack):
    path = "/stream?streams=btcusdt@aggTrade/btcusdt@trade"
    with stack.client.websocket_connect(path) as socket:
        assert confirmed(socket) == ["btcusdt@aggTrade", "btcusdt@trade"]
        publish(stack, keys.trades_channel(BTC), trade(8, 500_000, 10, taker="sell"))
        first, second = socket.receive_json(), socket.receive_json()
    assert first["stream"] == "btcusdt@aggTrade" and first["data"]["e"] == "aggTrade"
    assert second == {
        "stream": "btcusdt@trade",
        "data": {
            "e": "trade",
            "E": NOW_MS,
            "T": NOW_MS,
            "s": "BTCUSDT",
            "t": 8,
            "p": "50000.0",
            "q": "0.010",
            "X": "MARKET",
            "m": True,
        },
    }


def test_a_raw_path_that_names_no_stream_is_a_connection_to_subscribe_on(stack):
    with stack.client.websocket_connect("/public/ws/0") as socket:
        assert confirmed(socket) == []


# --- market streams ---------------------------------------------------------------------------


def test_diff_depth_ids_continue_from_the_rest_snapshots_last_update_id(stack):
    seed_book(stack, 41)
    snapshot = stack.client.get("/fapi/v1/depth?symbol=BTCUSDT&limit=5").json()
    with stack.client.websocket_connect("/ws/btcusdt@depth") as socket:
        confirmed(socket)
        publish(stack, keys.depth_channel(BTC), depth(42, [[500_000, 0]], [[500_020, 3]]))
        publish(stack, keys.depth_channel(BTC), depth(43, [[499_995, 4]], []))
        first, second = socket.receive_json(), socket.receive_json()
    assert snapshot["lastUpdateId"] == 41
    assert first == {
        "e": "depthUpdate",
        "E": NOW_MS,
        "T": NOW_MS,
        "s": "BTCUSDT",
        "U": 42,
        "u": 42,
        "pu": 41,
        "b": [["50000.0", "0.000"]],
        "a": [["50002.0", "0.003"]],
    }
    assert (second["U"], second["u"], second["pu"]) == (43, 43, 42)


def test_partial_depth_and_book_ticker_show_the_book_after_each_change(stack):
    seed_book(stack, 41)
    with stack.client.websocket_connect("/stream?streams=btcusdt@depth5/btcusdt@bookTicker") as ws:
        initial = ws.receive_json()
        assert initial["stream"] == "btcusdt@depth5"
        assert initial["data"]["b"] == [["50000.0", "0.010"], ["49999.0", "0.020"]]
        ticker = ws.receive_json()["data"]
        assert (ticker["b"], ticker["B"], ticker["a"], ticker["A"]) == (
            "50000.0",
            "0.010",
            "50001.0",
            "0.005",
        )
        confirmed(ws)
        publish(stack, keys.depth_channel(BTC), depth(41, [[500_005, 9]], []))  # in the snapshot
        publish(stack, keys.depth_channel(BTC), depth(42, [[500_000, 0]], []))
        partial, ticker = ws.receive_json()["data"], ws.receive_json()["data"]
    assert partial["u"] == 42 and partial["b"] == [["49999.0", "0.020"]]
    assert ticker["e"] == "bookTicker" and ticker["b"] == "49999.0" and ticker["u"] == 42


def test_agg_trade_has_binances_fields(stack):
    with stack.client.websocket_connect("/ws/btcusdt@aggTrade") as socket:
        confirmed(socket)
        publish(stack, keys.trades_channel(BTC), trade(8, 500_000, 10))
        event = socket.receive_json()
    assert event == {
        "e": "aggTrade",
        "E": NOW_MS,
        "a": 8,
        "s": "BTCUSDT",
        "p": "50000.0",
        "q": "0.010",
        "nq": "0.010",
        "f": 8,
        "l": 8,
        "T": NOW_MS,
        "m": False,
    }


def test_mark_price_carries_the_funding_rate_and_next_funding_time(stack):
    next_funding = (NOW_MS + 3_600_000) * 1_000_000
    stack.seed_hash(keys.funding_key(BTC), {"rate": 10_000, "next_funding_time": next_funding})
    with stack.client.websocket_connect("/ws/btcusdt@markPrice@1s") as socket:
        confirmed(socket)
        mark = {"type": "mark", "mark": 500_050, "index": 500_040, "ts": NOW_MS * 1_000_000}
        publish(stack, keys.mark_channel(BTC), mark)
        event = socket.receive_json()
    assert event == {
        "e": "markPriceUpdate",
        "E": NOW_MS,
        "s": "BTCUSDT",
        "p": "50005.0",
        "ap": "50005.0",
        "i": "50004.0",
        "P": "50004.0",
        "r": "0.0001",
        "T": NOW_MS + 3_600_000,
    }


def test_kline_candles_are_built_from_trades_and_close_when_the_next_interval_opens(stack):
    start, end = interval_bounds("1m", NOW_MS)
    with stack.client.websocket_connect("/ws/btcusdt@kline_1m") as socket:
        confirmed(socket)
        publish(stack, keys.trades_channel(BTC), trade(8, 500_000, 10, ts=start + 1))
        publish(stack, keys.trades_channel(BTC), trade(9, 500_100, 5, "sell", ts=start + 2))
        publish(stack, keys.trades_channel(BTC), trade(10, 499_000, 1, ts=end + 1))
        first, second, closed, opened = (socket.receive_json() for _ in range(4))
    assert first["k"]["x"] is False and second["k"]["h"] == "50010.0"
    assert closed["k"] == {
        "t": start,
        "T": end,
        "s": "BTCUSDT",
        "i": "1m",
        "f": 8,
        "L": 9,
        "o": "50000.0",
        "c": "50010.0",
        "h": "50010.0",
        "l": "50000.0",
        "v": "0.015",
        "n": 2,
        "x": True,
        "q": "750.05",
        "V": "0.010",
        "Q": "500",
        "B": "0",
    }
    assert opened["k"]["t"] == end + 1 and opened["k"]["x"] is False


def test_a_candle_builder_ignores_trades_it_already_counted(stack):
    spec = stack.client.app.state.gateway.symbols[BTC]  # type: ignore[attr-defined]
    builder = CandleBuilder(spec, "1m")
    assert len(builder.add(trade(5, 500_000, 1))) == 1
    assert builder.add(trade(5, 500_000, 1)) == []


# --- the user data stream ---------------------------------------------------------------------


def api_key(stack: Stack, user_id: int) -> dict[str, str]:
    key, _secret = stack.users.create_api_key(user_id, "bot")
    return {"X-MBX-APIKEY": key.key}


def order(user_id: int, status: str, filled: int = 0, order_id: int = 70) -> dict:
    fields = Order(
        order_id=order_id,
        user_id=user_id,
        symbol=BTC,
        request_id="r",
        requested=True,
        side="buy",
        order_type="limit",
        tif="GTC",
        price=500_000,
        qty=10,
        filled=filled,
        status=status,
        client_order_id="mine",
        ts=NOW_MS * 1_000_000,
    ).fields()
    return {"type": "order", **fields}


def fill(order_id: int = 70, qty: int = 4) -> dict:
    return {
        "type": "fill",
        "trade_id": 12,
        "order_id": order_id,
        "symbol": BTC,
        "side": "buy",
        "price": 500_000,
        "qty": qty,
        "maker": True,
        "fee": 40_000,
        "liquidation": False,
        "ts": NOW_MS,
    }


def test_a_listen_key_is_one_per_api_key_kept_alive_and_deleted(stack):
    headers = api_key(stack, ALICE)
    first = stack.client.post("/fapi/v1/listenKey", headers=headers).json()["listenKey"]
    again = stack.client.post("/fapi/v1/listenKey", headers=headers).json()["listenKey"]
    assert len(first) == 64 and first.isalnum() and again == first
    ttl = stack.run(stack.redis.ttl(f"listenkey:key:{first}"))
    assert 3500 < ttl <= 3600
    assert stack.client.put("/fapi/v1/listenKey", headers=headers).json() == {"listenKey": first}
    assert stack.client.delete("/fapi/v1/listenKey", headers=headers).json() == {}
    gone = stack.client.put("/fapi/v1/listenKey", headers=headers)
    assert gone.status_code == 400
    assert gone.json() == {"code": -1125, "msg": "This listenKey does not exist."}
    assert stack.client.post("/fapi/v1/listenKey", headers=headers).json()["listenKey"] != first


def test_listen_key_calls_need_a_known_api_key(stack):
    assert stack.client.post("/fapi/v1/listenKey").json()["code"] == -2014
    unknown = stack.client.post("/fapi/v1/listenKey", headers={"X-MBX-APIKEY": "nope"})
    assert (unknown.status_code, unknown.json()["code"]) == (401, -2015)


def test_a_users_stream_carries_only_their_own_orders_and_account(stack):
    headers = api_key(stack, ALICE)
    listen_key = stack.client.post("/fapi/v1/listenKey", headers=headers).json()["listenKey"]
    with stack.client.websocket_connect(f"/private/ws?listenKey={listen_key}") as socket:
        assert confirmed(socket) == [listen_key]
        publish(stack, keys.user_channel(BOB), order(BOB, OrderStatus.NEW, order_id=71))
        publish(stack, keys.user_channel(ALICE), order(ALICE, OrderStatus.PENDING))
        publish(stack, keys.user_channel(ALICE), order(ALICE, OrderStatus.NEW))
        publish(stack, keys.user_channel(ALICE), fill())
        publish(stack, keys.user_channel(ALICE), order(ALICE, OrderStatus.PARTIALLY_FILLED, 4))
        account = {"type": "account", "balance": 1_000_00000000, "holds": 0, "available": 0}
        publish(stack, keys.user_channel(ALICE), account)
        position = {
            "type": "position",
            "symbol": BTC,
            "size": 4,
            "entry_notional": 200_00000000,
            "realised_pnl": 0,
            "fee": 40_000,
        }
        publish(stack, keys.user_channel(ALICE), position)
        new, traded, balance, held = (socket.receive_json() for _ in range(4))
    assert new["e"] == "ORDER_TRADE_UPDATE" and new["o"]["i"] == 70
    assert (new["o"]["x"], new["o"]["X"], new["o"]["c"]) == ("NEW", "NEW", "mine")
    o = traded["o"]
    assert (o["x"], o["X"], o["l"], o["z"], o["L"], o["ap"], o["n"], o["t"], o["m"]) == (
        "TRADE",
        "PARTIALLY_FILLED",
        "0.004",
        "0.004",
        "50000.0",
        "50000.0",
        "0.0004",
        12,
        True,
    )
    assert balance["a"]["B"] == [{"a": "USDT", "wb": "1000", "cw": "1000", "bc": "0"}]
    assert held["a"]["P"][0]["s"] == "BTCUSDT" and held["a"]["P"][0]["pa"] == "0.004"
    assert held["a"]["P"][0]["ep"] == "50000.0"


def test_a_deleted_listen_key_ends_its_stream(stack, monkeypatch):
    monkeypatch.setattr(streams, "LISTEN_KEY_CHECK_SECONDS", 0.05)
    headers = api_key(stack, ALICE)
    listen_key = stack.client.post("/fapi/v1/listenKey", headers=headers).json()["listenKey"]
    with stack.client.websocket_connect(f"/ws/{listen_key}") as socket:
        confirmed(socket)
        stack.client.delete("/fapi/v1/listenKey", headers=headers)
        assert socket.receive_json()["e"] == "listenKeyExpired"
        assert confirmed(socket) == []


def test_an_unknown_listen_key_is_refused(stack):
    from starlette.websockets import WebSocketDisconnect

    with (
        pytest.raises(WebSocketDisconnect),
        stack.client.websocket_connect(f"/ws/{'x' * 64}") as socket,
    ):
        socket.receive_json()


# --- ccxt.pro parses what the streams send ----------------------------------------------------


class FakeClient:
    """What ccxt.pro's handlers use of a connection: its url and where results go."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.subscriptions: dict = {}
        self.futures: dict = {}
        self.resolved: dict[str, Any] = {}

    def resolve(self, result: Any, message_hash: str) -> None:
        self.resolved[message_hash] = result

    def reject(self, error: Exception, message_hash: str | None = None) -> None:
        raise error


def ccxt_with_markets(stack: Stack) -> Any:
    exchange = ccxt.pro.binanceusdm()
    info = stack.client.get("/fapi/v1/exchangeInfo").json()
    exchange.set_markets([exchange.parse_market(s) for s in info["symbols"]])
    return exchange


def received(stack: Stack, path: str, channel: str, payloads: list[dict], count: int) -> list:
    with stack.client.websocket_connect(path) as socket:
        confirmed(socket)
        for payload in payloads:
            publish(stack, channel, payload)
        return [socket.receive_json() for _ in range(count)]


def test_ccxt_pro_keeps_its_book_in_sync_from_the_rest_snapshot_and_the_diff_stream(stack):
    seed_book(stack, 41)
    exchange = ccxt_with_markets(stack)
    client = FakeClient("ws://gateway/public/ws/0")
    snapshot = stack.client.get("/fapi/v1/depth?symbol=BTCUSDT&limit=1000").json()
    book = exchange.order_book({})
    book.reset(exchange.parse_order_book(snapshot, "BTC/USDT:USDT", None, "bids", "asks"))
    book["nonce"] = snapshot["lastUpdateId"]
    exchange.orderbooks["BTC/USDT:USDT"] = book
    updates = [
        depth(42, [[500_000, 0]], [[500_020, 3]]),
        depth(43, [[499_995, 4]], []),
    ]
    events = received(stack, "/ws/btcusdt@depth@100ms", keys.depth_channel(BTC), updates, 2)
    for event in events:
        exchange.handle_message(client, event)
    synced = exchange.orderbooks["BTC/USDT:USDT"]
    assert synced["nonce"] == 43
    assert synced["bids"][0] == [49999.5, 0.004] and synced["asks"][-1] == [50002.0, 0.003]


def test_ccxt_pro_parses_trades_marks_orders_and_account_updates(stack):
    exchange = ccxt_with_markets(stack)
    client = FakeClient("ws://gateway/market/ws/0")
    [agg] = received(stack, "/ws/btcusdt@aggTrade", keys.trades_channel(BTC), [trade(8, 1, 1)], 1)
    exchange.handle_message(client, agg)
    parsed = client.resolved["trade::BTC/USDT:USDT"][-1]
    assert (parsed["id"], parsed["side"], parsed["amount"]) == ("8", "buy", 0.001)
    mark = {"type": "mark", "mark": 500_050, "index": 500_040, "ts": NOW_MS * 1_000_000}
    [update] = received(stack, "/ws/btcusdt@markPrice", keys.mark_channel(BTC), [mark], 1)
    exchange.handle_message(client, update)
    assert client.resolved["markPrice:markPrice@BTC/USDT:USDT"]["markPrice"] == 50005.0

    headers = api_key(stack, ALICE)
    listen_key = stack.client.post("/fapi/v1/listenKey", headers=headers).json()["listenKey"]
    private = FakeClient(f"ws://gateway/private/ws?listenKey={listen_key}")
    private.subscriptions["linear"] = {}  # what watch_orders / watch_balance set up
    exchange.balance["linear"] = {}
    account = {"type": "account", "balance": 1_000_00000000, "holds": 0, "available": 0}
    payloads = [
        order(ALICE, OrderStatus.NEW),
        fill(qty=10),
        order(ALICE, OrderStatus.FILLED, 10),
        account,
    ]
    events = received(stack, f"/ws/{listen_key}", keys.user_channel(ALICE), payloads, 3)
    for event in events:
        exchange.handle_message(private, event)
    orders = private.resolved["orders:BTC/USDT:USDT"]
    assert [(o["id"], o["status"], o["filled"]) for o in orders] == [("70", "closed", 0.01)]
    assert orders[0]["clientOrderId"] == "mine" and orders[0]["average"] == 50000.0
    assert private.resolved["myTrades"][-1]["fee"]["cost"] == 0.0004
    assert private.resolved["linear:balance"]["USDT"]["total"] == 1000.0
