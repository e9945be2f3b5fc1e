"""WebSocket streams: depth, trades and mark price per symbol, and each user's own events.

The projector publishes every change on Redis pub/sub (docs/READ-MODEL.md); each
gateway process holds one subscription per channel, however many clients watch it, and fans
messages out to them. The protocol is in docs/API.md.

Depth: the snapshot comes after the subscription is live, and updates already folded into it
are dropped, so a client applying updates in order holds the book; each update's
``first_update_id`` is the previous ``update_id`` + 1, so a gap is visible (resubscribe). A
client that cannot keep up (``QUEUE_LIMIT`` messages behind) is disconnected.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import defaultdict

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from redis.asyncio import Redis

from libs import codes
from libs.money import format_cash, format_rate
from libs.read_model import keys
from services.gateway import views
from services.gateway.security import InvalidToken
from services.gateway.state import Gateway

log = logging.getLogger("services.gateway.ws")
router = APIRouter()

QUEUE_LIMIT = 10_000
MAX_CHANNELS = 50


class Subscriber:
    """A client of the hub (this API's ``Session``, or the Binance face's streams): a bounded
    queue of channel messages, sent on by ``pump`` one at a time under ``sending``; a client
    that falls ``QUEUE_LIMIT`` messages behind is disconnected."""

    def __init__(self, socket: WebSocket) -> None:
        self.socket = socket
        self.queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue(QUEUE_LIMIT)
        self.overflowed = False
        # Held while a subscription's state is seeded (a depth snapshot), so no message
        # overtakes the seed it follows.
        self.sending = asyncio.Lock()

    def deliver(self, channel: str, data: str) -> None:
        if self.queue.full():
            self.overflowed = True
            return
        self.queue.put_nowait((channel, data))

    async def pump(self) -> None:
        while True:
            channel, data = await self.queue.get()
            if self.overflowed:
                await self.socket.close(code=1008, reason="client too slow")
                return
            async with self.sending:
                await self.take(channel, data)

    async def take(self, channel: str, data: str) -> None:
        """Send on what one channel message makes for this client."""
        raise NotImplementedError


class Hub:
    """One Redis subscription per channel for the whole process; fan-out to client queues."""

    def __init__(self, redis: Redis) -> None:
        self._pubsub = redis.pubsub()
        self._clients: dict[str, set[Subscriber]] = defaultdict(set)
        self._confirmed: dict[str, asyncio.Event] = {}
        self._reader: asyncio.Task | None = None

    async def subscribe(self, channel: str, session: Subscriber) -> None:
        """Add ``session`` to ``channel``; returns once Redis delivers the channel's messages."""
        clients = self._clients[channel]
        clients.add(session)
        if len(clients) == 1:
            self._confirmed[channel] = asyncio.Event()
            await self._pubsub.subscribe(channel)
            if self._reader is None:
                self._reader = asyncio.create_task(self._read())
        await self._confirmed[channel].wait()

    async def unsubscribe(self, channel: str, session: Subscriber) -> None:
        clients = self._clients.get(channel)
        if clients is None or session not in clients:
            return
        clients.discard(session)
        if not clients:
            del self._clients[channel]
            self._confirmed.pop(channel, None)
            await self._pubsub.unsubscribe(channel)

    async def _read(self) -> None:
        while True:
            try:
                message = await self._pubsub.get_message(timeout=1.0)
            except Exception:  # a lost Redis connection: log, back off, let redis-py reconnect
                log.exception("pub/sub read failed")
                await asyncio.sleep(1)
                continue
            if message is None:
                continue
            channel = message["channel"]
            if message["type"] == "subscribe":
                if channel in self._confirmed:
                    self._confirmed[channel].set()
            elif message["type"] == "message":
                for session in list(self._clients.get(channel, ())):
                    session.deliver(channel, message["data"])

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        await self._pubsub.aclose()


class Session(Subscriber):
    """One WebSocket client: its channels, its queue, and where its depth snapshots stand."""

    def __init__(self, socket: WebSocket, gw: Gateway, hub: Hub) -> None:
        super().__init__(socket)
        self.gw, self.hub = gw, hub
        self.channels: dict[str, str] = {}  # public name -> Redis channel
        self.user_id: int | None = None
        # depth channel -> the snapshot's update id, until the first update after it is sent;
        # from then on every update goes out and the client checks continuity itself (a
        # projector rebuilt from scratch restarts the ids: the client sees a gap, resyncs).
        self.depth_snapshot_id: dict[str, int] = {}

    async def send(self, message: dict) -> None:
        await self.socket.send_text(json.dumps(message, separators=(",", ":")))

    async def error(self, code: int, msg: str) -> None:
        await self.send({"error": {"code": code, "msg": msg}})

    # -- client requests ---------------------------------------------------------------------
    async def handle(self, raw: str) -> None:
        try:
            request = json.loads(raw)
            op = request["op"]
        # RecursionError: JSON nested deeper than the parser goes (a few KB of "[")
        except (ValueError, KeyError, TypeError, RecursionError):
            return await self.error(
                codes.INVALID_PARAM, 'Send JSON like {"op": "subscribe", "channels": [...]}.'
            )
        if op == "ping":
            return await self.send({"op": "pong"})
        if op == "auth":
            return await self.authenticate(request.get("token"))
        channels = request.get("channels")
        if op not in ("subscribe", "unsubscribe") or not isinstance(channels, list):
            return await self.error(
                codes.INVALID_PARAM, "op must be subscribe, unsubscribe, auth or ping."
            )
        for name in channels:
            if not isinstance(name, str):
                await self.error(codes.INVALID_PARAM, "channel names are strings.")
            elif op == "subscribe":
                await self.subscribe(name)
            else:
                await self.unsubscribe(name)

    async def authenticate(self, token: object) -> None:
        try:
            self.user_id = self.gw.tokens.verify(token if isinstance(token, str) else "")
        except InvalidToken as error:
            return await self.error(codes.UNAUTHORIZED, f"Invalid token: {error}")
        await self.send({"op": "auth", "user_id": self.user_id})

    def _redis_channel(self, name: str) -> str | None:
        if name == "user":
            return keys.user_channel(self.user_id) if self.user_id is not None else None
        stream, _, symbol = name.partition(":")
        if symbol not in self.gw.symbols:
            return None
        return {
            "depth": keys.depth_channel,
            "trades": keys.trades_channel,
            "mark": keys.mark_channel,
        }.get(stream, lambda _s: None)(symbol)

    async def subscribe(self, name: str) -> None:
        if name in self.channels:
            return
        if len(self.channels) >= MAX_CHANNELS:
            return await self.error(
                codes.INVALID_PARAM, f"At most {MAX_CHANNELS} channels per connection."
            )
        channel = self._redis_channel(name)
        if channel is None:
            if name == "user":
                return await self.error(
                    codes.UNAUTHORIZED, 'Authenticate first: {"op": "auth", "token": ...}.'
                )
            return await self.error(codes.INVALID_PARAM, f"Unknown channel {name[:40]!r}.")
        self.channels[name] = channel
        async with self.sending:
            await self.hub.subscribe(channel, self)
            if name.startswith("depth:"):
                await self._depth_snapshot(name, channel)
            await self.send({"op": "subscribed", "channel": name})

    async def _depth_snapshot(self, name: str, channel: str) -> None:
        spec = self.gw.symbols[name.partition(":")[2]]
        update_id, bids, asks = await self.gw.reads.book(spec.name)
        self.depth_snapshot_id[channel] = update_id
        data = {
            "update_id": update_id,
            "bids": views.levels(spec, bids),
            "asks": views.levels(spec, asks),
        }
        await self.send({"channel": name, "type": "snapshot", "data": data})

    async def unsubscribe(self, name: str) -> None:
        channel = self.channels.pop(name, None)
        if channel is not None:
            self.depth_snapshot_id.pop(channel, None)
            await self.hub.unsubscribe(channel, self)

    async def close(self) -> None:
        for name in list(self.channels):
            await self.unsubscribe(name)

    # -- stream messages ---------------------------------------------------------------------
    async def take(self, channel: str, data: str) -> None:
        name = next((n for n, c in self.channels.items() if c == channel), None)
        if name is None:
            return  # unsubscribed while the message waited
        message = self.render(name, channel, json.loads(data))
        if message is not None:
            await self.send(message)

    def render(self, name: str, channel: str, raw: dict) -> dict | None:
        stream, _, symbol = name.partition(":")
        if stream == "depth":
            snapshot_id = self.depth_snapshot_id.get(channel)
            if snapshot_id is not None:
                if raw["update_id"] <= snapshot_id:
                    return None  # already folded into the snapshot this client got
                del self.depth_snapshot_id[channel]
            spec = self.gw.symbols[symbol]
            data = {
                "first_update_id": raw["first_update_id"],
                "update_id": raw["update_id"],
                "bids": views.levels(spec, raw["bids"]),
                "asks": views.levels(spec, raw["asks"]),
            }
            return {"channel": name, "type": "update", "data": data}
        if stream == "trades":
            return {"channel": name, "data": views.trade(self.gw.symbols[symbol], raw)}
        if stream == "mark":
            return {"channel": name, "type": raw.get("type"), "data": self._mark(symbol, raw)}
        return {"channel": "user", "type": raw.get("type"), "data": self._user(raw)}

    def _mark(self, symbol: str, raw: dict) -> dict:
        spec = self.gw.symbols[symbol]
        if raw.get("type") == "mark":
            return {
                "symbol": symbol,
                "mark_price": views.price_or_none(spec, int(raw["mark"])),
                "index_price": views.price_or_none(spec, int(raw["index"])),
                "time": int(raw["ts"]) // 1_000_000,
            }
        return {
            "symbol": symbol,
            "funding_rate": format_rate(int(raw["rate"])),
            "funding_time": int(raw["funding_time"]) // 1_000_000,
        }

    def _user(self, raw: dict) -> dict:
        kind = raw.get("type")
        spec = self.gw.symbols.get(raw.get("symbol", ""))
        if kind == "order" and spec is not None:
            return views.order(spec, {k: str(v) for k, v in raw.items()})
        if kind == "fill" and spec is not None:
            return views.fill(spec, raw)
        if kind == "account":
            return {k: format_cash(int(raw[k])) for k in ("balance", "holds", "available")}
        if kind == "position" and spec is not None:
            size = int(raw["size"])
            return {
                "symbol": spec.name,
                "size": ("-" if size < 0 else "") + spec.lots_to_qty(abs(size)),
                "entry_notional": format_cash(int(raw["entry_notional"])),
                "realised_pnl": format_cash(int(raw["realised_pnl"])),
                "fee": format_cash(int(raw["fee"])),
            }
        return {k: v for k, v in raw.items() if k != "type"}


@router.websocket("/ws")
async def stream(socket: WebSocket) -> None:
    gw: Gateway = socket.app.state.gateway
    hub: Hub = socket.app.state.hub
    await socket.accept()
    session = Session(socket, gw, hub)
    token = socket.query_params.get("token")
    if token is not None:
        await session.authenticate(token)
    pump = asyncio.create_task(session.pump())
    try:
        while not pump.done():
            frame = await socket.receive()
            if frame["type"] == "websocket.disconnect":
                break
            text = frame.get("text")
            if text is None or len(text) > 65536:
                await session.error(codes.INVALID_PARAM, "Send JSON text frames of at most 64 KiB.")
                continue
            await session.handle(text)
    except WebSocketDisconnect:
        pass
    finally:
        pump.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await pump
        await session.close()
