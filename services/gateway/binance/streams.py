"""The Binance face's WebSocket streams: Binance USDⓈ-M's market streams and user data stream.

Endpoints, as Binance serves them (and under ``/public``, ``/market`` and ``/private``, the
paths ccxt.pro's ``binanceusdm`` derives from a ``.../ws`` base URL):

- ``/ws/<stream>[/<stream>...]``: raw events; ``<stream>`` may be a listen key. A path part
  that names no stream (ccxt connects to ``/public/ws/0``) is ignored, as Binance does.
- ``/stream?streams=a/b/c``: each event wrapped ``{"stream": name, "data": event}``.
- ``/public/ws``, ``/market/ws``, ``/private/ws[?listenKey=...]``: like ``/ws/...``. The bare
  ``/ws`` is the gateway's own WebSocket (docs/API.md), so it is not served here.

On any of them a client sends Binance's ``{"method": "SUBSCRIBE" | "UNSUBSCRIBE" |
"LIST_SUBSCRIPTIONS" | "SET_PROPERTY" | "GET_PROPERTY", "params": [...], "id": N}`` and gets
``{"result": ..., "id": N}`` or ``{"error": {"code", "msg"}, "id": N}``.

Every stream is built from the projector's pub/sub channels through the gateway's ``Hub``
(one Redis subscription per channel per process); the events' shapes are in
``stream_events.py``. Per connection this keeps what Binance's events need and the channels
do not carry: a book (partial depth, book ticker), the current candle of each kline stream
(from trades: the read model keeps no candles yet), the funding rate (mark price), and for a
user stream the fill that came before its order's update and what each order's fills cost.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass, field

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from libs.messages import OrderStatus
from libs.read_model import keys
from libs.symbols import SymbolSpec
from services.gateway.binance import listen_keys as listen_key_routes
from services.gateway.binance import stream_events as ev
from services.gateway.binance.listen_keys import ListenKeys, listen_keys, looks_like_key
from services.gateway.binance.names import STATUSES
from services.gateway.state import Gateway
from services.gateway.ws import Hub, Subscriber

log = logging.getLogger("services.gateway.binance.streams")
router = APIRouter()
router.include_router(listen_key_routes.router)

MAX_STREAMS = 200
"""Streams per connection (Binance allows 1024; ccxt opens a new connection every 200)."""
MAX_FRAME = 65_536
LISTEN_KEY_CHECK_SECONDS = 30.0
"""How often a connection checks that its listen keys still exist (else ``listenKeyExpired``)."""

# Binance's WebSocket request errors (not exchange reject codes)
UNKNOWN_PROPERTY, INVALID_VALUE, INVALID_REQUEST, INVALID_JSON = 0, 1, 2, 3

Route = tuple[str, str]
"""A channel's kind (``depth``, ``trades``, ``mark``, ``user``) and its symbol or user id."""


def _route(channel: str) -> Route:
    _, kind, tail = channel.split(":", 2)
    return kind, tail


@dataclass(slots=True)
class UserEvents:
    """One user's ``ws:user`` messages as Binance's ``ORDER_TRADE_UPDATE`` and
    ``ACCOUNT_UPDATE``. The projector publishes a fill and then its order's new state, so a
    fill is held until that order message, and the two make one ``TRADE`` update."""

    gw: Gateway
    user_id: int
    fill: dict | None = None
    tracked: dict[int, ev.Tracked] = field(default_factory=dict)

    async def events(self, raw: dict, now_ms: int) -> list[dict]:
        kind = raw.get("type")
        if kind == "fill":
            self.fill = raw
            return []
        fill, self.fill = self.fill, None
        if fill is not None and (kind != "order" or str(fill["order_id"]) != str(raw["order_id"])):
            log.warning(
                "fill %s of order %s had no order update", fill["trade_id"], fill["order_id"]
            )
            fill = None
        spec = self.gw.symbols.get(str(raw.get("symbol", "")))
        if kind == "order" and spec is not None:
            return await self._order(spec, raw, fill, now_ms)
        if kind == "account":
            return [ev.balance_update(raw, now_ms)]
        if kind == "position" and spec is not None:
            mark = (await self.gw.reads.mark(spec.name)).get("mark")
            return [ev.position_update(spec, raw, int(mark) if mark else None, now_ms)]
        return []  # funding and liquidation notices: Binance's user stream has no such event

    async def _order(self, spec: SymbolSpec, raw: dict, fill: dict | None, now_ms: int) -> list:
        status = STATUSES.get(str(raw.get("status")))
        if status is None or raw.get("status") == OrderStatus.PENDING:
            return []  # Pending: no engine answered yet, Binance's stream shows nothing
        order_id, filled = int(raw["order_id"]), int(raw.get("filled") or 0)
        tracked = self.tracked.get(order_id)
        execution = ev.execution_type(status, fill, tracked, raw)
        if tracked is None:
            tracked = ev.Tracked(str(raw.get("price", "")), int(raw.get("qty") or 0))
        if fill is not None and tracked.filled + int(fill["qty"]) == filled:
            tracked.filled += int(fill["qty"])
            tracked.notional += spec.notional(int(fill["price"]), int(fill["qty"]))
        elif tracked.filled != filled:  # fills before this stream began: read them
            await self._read_fills(spec, order_id, tracked)
        tracked.price, tracked.qty = str(raw.get("price", "")), int(raw.get("qty") or 0)
        average = ev.average_price(spec, tracked)
        if status in ev.FINAL:
            self.tracked.pop(order_id, None)
        else:
            self.tracked[order_id] = tracked
        return [ev.order_update(spec, raw, execution, fill, average, now_ms)]

    async def _read_fills(self, spec: SymbolSpec, order_id: int, tracked: ev.Tracked) -> None:
        """What the order's fills cost, from the user's ``fills:{user}`` (its newest
        ``FILLS_KEPT``); read directly, not waiting for the user's replies to be covered."""
        kept = await self.gw.reads.redis.lrange(keys.fills_key(self.user_id), 0, -1)
        mine = [f for f in map(json.loads, kept) if int(f["order_id"]) == order_id]
        tracked.filled = sum(int(f["qty"]) for f in mine)
        tracked.notional = sum(spec.notional(int(f["price"]), int(f["qty"])) for f in mine)


class StreamSession(Subscriber):
    """One Binance-style connection: its streams, its queue, and the state its events need."""

    def __init__(
        self, socket: WebSocket, gw: Gateway, hub: Hub, keys_: ListenKeys, combined: bool
    ) -> None:
        super().__init__(socket)
        self.gw, self.hub, self.listen_keys = gw, hub, keys_
        self.combined = combined
        self.streams: dict[str, ev.Stream] = {}
        self.users: dict[str, int] = {}  # listen key -> user
        self.listeners: dict[str, list[str]] = {}  # channel -> stream names, in order
        self.books: dict[str, ev.LocalBook] = {}
        self.candles: dict[str, ev.CandleBuilder] = {}  # kline stream -> its candle
        self.funding: dict[str, tuple[int, int]] = {}  # symbol -> rate, next funding (ms)
        self.user_events: dict[str, UserEvents] = {}  # user channel -> its events

    def now_ms(self) -> int:
        return self.gw.now_ns() // 1_000_000

    async def send(self, message: object) -> None:
        await self.socket.send_text(json.dumps(message, separators=(",", ":")))

    async def emit(self, stream: str, event: object) -> None:
        await self.send({"stream": stream, "data": event} if self.combined else event)

    async def error(self, code: int, msg: str, request_id: object = None) -> None:
        await self.send({"error": {"code": code, "msg": msg}, "id": request_id})

    # -- requests ----------------------------------------------------------------------------
    async def handle(self, text: str) -> None:
        try:
            request = json.loads(text)
        except (ValueError, RecursionError):
            return await self.error(INVALID_JSON, "Invalid JSON: expected value at line 1.")
        if not isinstance(request, dict):
            return await self.error(INVALID_REQUEST, "Invalid request: expected an object.")
        request_id = request.get("id")
        if not _valid_id(request_id):
            return await self.error(
                INVALID_REQUEST, "Invalid request: request ID must be an unsigned integer"
            )
        method, params = request.get("method"), request.get("params", [])
        if not isinstance(params, list):
            return await self.error(INVALID_VALUE, "Invalid value type: expected list", request_id)
        if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
            return await self._subscriptions(method, params, request_id)
        if method == "LIST_SUBSCRIPTIONS":
            return await self.send({"result": list(self.streams), "id": request_id})
        if method in ("SET_PROPERTY", "GET_PROPERTY"):
            return await self._property(method, params, request_id)
        await self.error(
            INVALID_REQUEST,
            f"Invalid request: unknown variant {str(method)[:40]!r}, expected one of "
            "SUBSCRIBE, UNSUBSCRIBE, LIST_SUBSCRIPTIONS, SET_PROPERTY, GET_PROPERTY",
            request_id,
        )

    async def _subscriptions(self, method: str, params: list, request_id: object) -> None:
        if not all(isinstance(name, str) for name in params):
            return await self.error(
                INVALID_VALUE, "Invalid value type: expected String", request_id
            )
        async with self.sending:
            if method == "UNSUBSCRIBE":
                for name in params:
                    await self.unsubscribe(name)
                return await self.send({"result": None, "id": request_id})
            new = [name for name in dict.fromkeys(params) if name not in self.streams]
            if len(self.streams) + len(new) > MAX_STREAMS:
                msg = f"Invalid request: at most {MAX_STREAMS} streams per connection"
                return await self.error(INVALID_REQUEST, msg, request_id)
            resolved = [(name, await self._resolve(name)) for name in new]
            unknown = [name for name, found in resolved if found is None]
            if unknown:
                msg = f"Invalid request: unknown stream {unknown[0][:80]!r}"
                return await self.error(INVALID_REQUEST, msg, request_id)
            initial: list[tuple[str, object]] = []
            for name, found in resolved:
                initial += await self.subscribe(name, found)  # type: ignore[arg-type]
            await self.send({"result": None, "id": request_id})
            for name, event in initial:
                await self.emit(name, event)

    async def _property(self, method: str, params: list, request_id: object) -> None:
        if not params or params[0] != "combined":
            return await self.error(UNKNOWN_PROPERTY, "Unknown property", request_id)
        if method == "GET_PROPERTY":
            return await self.send({"result": self.combined, "id": request_id})
        if len(params) != 2 or not isinstance(params[1], bool):
            return await self.error(
                INVALID_VALUE, "Invalid value type: expected Boolean", request_id
            )
        self.combined = params[1]
        await self.send({"result": None, "id": request_id})

    async def _resolve(self, name: str) -> ev.Stream | int | None:
        """The market stream ``name`` names, or the user its listen key streams, or None."""
        stream = ev.parse_stream(name, self.gw.binance.specs)
        if stream is not None:
            return stream
        return await self.listen_keys.user_of(name)

    # -- subscriptions -----------------------------------------------------------------------
    async def subscribe(self, name: str, found: ev.Stream | int) -> list[tuple[str, object]]:
        """Subscribe to a resolved stream (the caller holds ``sending``); return the events
        to send once it is confirmed: a partial book, a book ticker or a candle as they are."""
        if isinstance(found, int):
            channel = keys.user_channel(found)
            self.users[name] = found
            self.streams[name] = ev.Stream(name, ev.USER, ())
            if channel not in self.user_events:
                self.user_events[channel] = UserEvents(self.gw, found)
            await self._listen(channel, name)
            return []
        self.streams[name] = found
        for channel in found.channels():
            await self._listen(channel, name)
        now = self.now_ms()
        initial: list[tuple[str, object]] = []
        for symbol in found.symbols:
            spec = self.gw.symbols[symbol]
            if found.needs_book:
                book = self.books.get(symbol)
                if book is None:
                    book = self.books[symbol] = ev.LocalBook.from_snapshot(
                        *await self.gw.reads.book(symbol)
                    )
                if found.kind == ev.PARTIAL_DEPTH:
                    initial.append((name, ev.partial_depth(spec, book, found.levels, now)))
                elif book.bids or book.asks:
                    initial.append((name, ev.book_ticker(spec, book, now)))
            if found.kind == ev.KLINE:
                builder = self.candles[name] = await self._candle(spec, found.interval, now)
                if builder.candle is not None:
                    initial.append(
                        (name, ev.kline(spec, found.interval, builder.candle, False, now))
                    )
        return initial

    async def _listen(self, channel: str, name: str) -> None:
        names = self.listeners.setdefault(channel, [])
        names.append(name)
        if len(names) == 1:
            await self.hub.subscribe(channel, self)

    async def _candle(self, spec: SymbolSpec, interval: str, now_ms: int) -> ev.CandleBuilder:
        """The current candle from the trades the read model keeps (newest first)."""
        builder = ev.CandleBuilder(spec, interval)
        kept = await self.gw.reads.trades(spec.name, keys.TRADES_KEPT)
        start, end = ev.interval_bounds(interval, now_ms)
        for trade in reversed(kept):
            if start <= int(trade["ts"]) <= end:
                builder.add(trade)
        builder.last_trade_id = max((int(t["trade_id"]) for t in kept), default=0)
        return builder

    async def unsubscribe(self, name: str) -> None:
        stream = self.streams.pop(name, None)
        if stream is None:
            return
        user = self.users.pop(name, None)
        channels = [keys.user_channel(user)] if user is not None else stream.channels()
        for channel in channels:
            names = self.listeners.get(channel, [])
            if name in names:
                names.remove(name)
            if not names:
                self.listeners.pop(channel, None)
                self.user_events.pop(channel, None)
                await self.hub.unsubscribe(channel, self)
        self.candles.pop(name, None)
        wanted = {s for other in self.streams.values() if other.needs_book for s in other.symbols}
        for symbol in [s for s in self.books if s not in wanted]:
            del self.books[symbol]

    async def close(self) -> None:
        for name in list(self.streams):
            await self.unsubscribe(name)

    # -- stream messages ---------------------------------------------------------------------
    async def take(self, channel: str, data: str) -> None:
        if channel not in self.listeners:
            return  # unsubscribed while the message waited
        for name, event in await self.events(channel, json.loads(data)):
            await self.emit(name, event)

    async def events(self, channel: str, raw: dict) -> list[tuple[str, object]]:
        """The events one channel message makes, for each stream built from the channel."""
        kind, tail = _route(channel)
        names = list(self.listeners.get(channel, ()))
        now = self.now_ms()
        if kind == "user":
            made = await self.user_events[channel].events(raw, now)
            return [(name, event) for name in names for event in made]
        spec = self.gw.symbols[tail]
        if kind == "depth":
            return self._depth(spec, names, raw, now)
        if kind == "trades":
            return self._trades(spec, names, raw, now)
        if raw.get("type") != "mark":
            self.funding.pop(spec.name, None)  # a new funding rate: read it with the next mark
            return []
        rate, next_ms = await self._funding(spec.name, int(raw["ts"]) // 1_000_000)
        event = ev.mark_price(spec, raw, rate, next_ms)
        return [
            (name, [event] if self.streams[name].kind == ev.ALL_MARK_PRICES else event)
            for name in names
        ]

    def _depth(self, spec: SymbolSpec, names: list[str], raw: dict, now: int) -> list:
        book = self.books.get(spec.name)
        best = book.best() if book is not None else None
        applied = book is not None and book.apply(raw)
        out: list[tuple[str, object]] = []
        for name in names:
            stream = self.streams[name]
            if stream.kind == ev.DIFF_DEPTH:
                out.append((name, ev.depth_update(spec, raw, now)))
            elif book is not None and applied:
                if stream.kind == ev.PARTIAL_DEPTH:
                    out.append((name, ev.partial_depth(spec, book, stream.levels, now)))
                elif book.best() != best:
                    out.append((name, ev.book_ticker(spec, book, now)))
        return out

    def _trades(self, spec: SymbolSpec, names: list[str], raw: dict, now: int) -> list:
        out: list[tuple[str, object]] = []
        for name in names:
            stream = self.streams[name]
            if stream.kind == ev.AGG_TRADE:
                out.append((name, ev.agg_trade(spec, raw)))
            elif stream.kind == ev.TRADE:
                out.append((name, ev.trade(spec, raw)))
            elif stream.kind == ev.KLINE:
                for candle, closed in self.candles[name].add(raw):
                    out.append((name, ev.kline(spec, stream.interval, candle, closed, now)))
        return out

    async def _funding(self, symbol: str, mark_ms: int) -> tuple[int, int]:
        """The last funding rate and the next funding time (ms), read again once passed."""
        known = self.funding.get(symbol)
        if known is None or (known[1] and known[1] <= mark_ms):
            held = await self.gw.reads.funding(symbol)
            known = int(held.get("rate") or 0), int(held.get("next_funding_time") or 0) // 1_000_000
            self.funding[symbol] = known
        return known

    async def watch_listen_keys(self) -> None:
        """End the user streams whose listen key expired or was deleted."""
        while True:
            await asyncio.sleep(LISTEN_KEY_CHECK_SECONDS)
            for name in list(self.users):
                if await self.listen_keys.user_of(name) is None:
                    async with self.sending:
                        await self.unsubscribe(name)
                        await self.emit(name, ev.listen_key_expired(name, self.now_ms()))


def _valid_id(request_id: object) -> bool:
    if request_id is None or isinstance(request_id, str):
        return True
    return isinstance(request_id, int) and not isinstance(request_id, bool) and request_id >= 0


async def _serve(socket: WebSocket, names: list[str], combined: bool) -> None:
    gw: Gateway = socket.app.state.gateway
    hub: Hub = socket.app.state.hub
    await socket.accept()
    session = StreamSession(socket, gw, hub, listen_keys(socket.app), combined)
    tasks: list[asyncio.Task] = []
    try:
        async with session.sending:
            initial: list[tuple[str, object]] = []
            for name in list(dict.fromkeys(n for n in names if n))[:MAX_STREAMS]:
                found = await session._resolve(name)
                if found is None and looks_like_key(name):
                    await socket.close(code=1008, reason="Invalid listenKey.")
                    return
                if found is not None:
                    initial += await session.subscribe(name, found)
            for name, event in initial:
                await session.emit(name, event)
        tasks = [
            asyncio.create_task(session.pump()),
            asyncio.create_task(session.watch_listen_keys()),
        ]
        while not tasks[0].done():
            frame = await socket.receive()
            if frame["type"] == "websocket.disconnect":
                break
            text = frame.get("text")
            if text is None or len(text) > MAX_FRAME:
                await session.error(INVALID_REQUEST, "Invalid request: send JSON text frames.")
                continue
            await session.handle(text)
    except WebSocketDisconnect:
        pass
    finally:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await session.close()


async def raw_streams(socket: WebSocket, streams: str = "") -> None:
    """``/ws/<stream>[/<stream>...]``: the named streams' events, unwrapped."""
    names = streams.split("/")
    listen_key = socket.query_params.get("listenKey")
    await _serve(socket, [*names, listen_key] if listen_key else names, combined=False)


async def combined_streams(socket: WebSocket) -> None:
    """``/stream?streams=a/b/c``: each event wrapped with its stream's name."""
    names = socket.query_params.get("streams", "").split("/")
    listen_key = socket.query_params.get("listenKey")
    await _serve(socket, [*names, listen_key] if listen_key else names, combined=True)


for _prefix in ("", "/public", "/market", "/private"):
    if _prefix:  # the bare /ws is the gateway's own WebSocket (services/gateway/ws.py)
        router.add_api_websocket_route(f"{_prefix}/ws", raw_streams)
    router.add_api_websocket_route(f"{_prefix}/ws/{{streams:path}}", raw_streams)
    router.add_api_websocket_route(f"{_prefix}/stream", combined_streams)
