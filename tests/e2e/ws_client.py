"""A WebSocket client on a thread: collects every message, and folds depth into a book."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from decimal import Decimal

from websockets.sync.client import connect


class WsClient:
    def __init__(self, url: str, channels: list[str], token: str | None = None) -> None:
        query = f"?token={token}" if token else ""
        self._socket = connect(url.replace("http://", "ws://") + "/ws" + query, legacy=True)
        self.messages: list[dict] = []
        self.books: dict[str, dict[str, dict[str, str]]] = {}  # symbol -> side -> price -> qty
        self.update_ids: dict[str, int] = {}
        self.gaps: list[str] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        self._socket.send(json.dumps({"op": "subscribe", "channels": channels}))
        for channel in channels:
            self.wait_for(lambda m, c=channel: m.get("op") == "subscribed" and m["channel"] == c)

    def _read(self) -> None:
        try:
            for raw in self._socket:
                message = json.loads(raw)
                with self._lock:
                    self.messages.append(message)
                    self._fold(message)
        except Exception:  # the socket closed: the test inspects what arrived
            return

    def _fold(self, message: dict) -> None:
        channel = message.get("channel", "")
        if "op" in message or not channel.startswith("depth:"):
            return
        symbol, data = channel.partition(":")[2], message["data"]
        if message["type"] == "snapshot":
            self.books[symbol] = {
                "bids": {p: q for p, q in data["bids"]},
                "asks": {p: q for p, q in data["asks"]},
            }
        else:
            if data["first_update_id"] != self.update_ids.get(symbol, -1) + 1:
                self.gaps.append(f"{symbol}: {self.update_ids.get(symbol)} -> {data}")
            for side in ("bids", "asks"):
                levels = self.books[symbol][side]
                for price, qty in data[side]:
                    if Decimal(qty) == 0:
                        levels.pop(price, None)
                    else:
                        levels[price] = qty
        self.update_ids[symbol] = data["update_id"]

    def book(self, symbol: str) -> dict:
        with self._lock:
            book = self.books.get(symbol, {"bids": {}, "asks": {}})
            return {
                "bids": sorted(
                    ([p, q] for p, q in book["bids"].items()), key=lambda level: -Decimal(level[0])
                ),
                "asks": sorted(
                    ([p, q] for p, q in book["asks"].items()), key=lambda level: Decimal(level[0])
                ),
                "update_id": self.update_ids.get(symbol),
            }

    def wait_for(self, match: Callable[[dict], bool], timeout: float = 15) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                for message in self.messages:
                    if match(message):
                        return message
            time.sleep(0.02)
        raise AssertionError(f"no matching WebSocket message in {timeout} s: {self.messages[-5:]}")

    def close(self) -> None:
        self._socket.close()
        self._thread.join(5)
