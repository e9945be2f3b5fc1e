"""Reads of the Redis read model (written by the projector).

See docs/READ-MODEL.md for the keys. Nothing here writes. A user's reads first wait (bounded)
until the read model covers what the user's last replies showed (``freshness.py``); users
with no reply outstanding pay nothing for it. Positions are computed on read from their facts,
the balance and the marks (``libs.read_model.positions.view``).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import cast

from prometheus_client import Counter, Histogram
from redis.asyncio import Redis

from libs.read_model import keys
from libs.read_model.positions import PositionFacts, view
from libs.symbols import SymbolSpec, default_symbols
from services.gateway.freshness import Outstanding, Read, Seen, covered

WAITED = Histogram(
    "gateway_read_wait_seconds",
    "Time a read waited for the read model to cover the user's last reply",
    ["read"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2),
)
GAVE_UP = Counter(
    "gateway_read_wait_timeouts_total",
    "Reads answered with what the read model had after waiting the whole bound",
    ["read"],
)
FIRST_POLL_SECONDS = 0.0005
LAST_POLL_SECONDS = 0.01

StrHash = dict[str, str]
"""A hash as the gateway reads it: its client decodes responses (``decode_responses=True`` in
app.py), so redis-py's ``bytes | str`` answers are all ``str`` here."""


class ReadModel:
    def __init__(
        self,
        redis: Redis,
        outstanding: Outstanding | None = None,
        wait_seconds: float = 2.0,
        symbols: dict[str, SymbolSpec] | None = None,
    ) -> None:
        self.redis = redis
        self.outstanding = outstanding if outstanding is not None else Outstanding()
        self.wait_seconds = wait_seconds
        self.symbols = symbols if symbols is not None else default_symbols()

    def saw(self, user_id: int, seen: Seen | None) -> None:
        """Note a reply given to the user: their next reads reflect at least what it said."""
        if seen is not None:
            self.outstanding.saw(user_id, seen)

    async def caught_up(self, user_id: int, read: Read) -> None:
        """Return once the read model covers what the user's replies showed to reads of this
        kind (at once when none is outstanding), or after ``wait_seconds``: then the read
        shows what there is."""
        need = self.outstanding.of(user_id, read)
        if need is None:
            return
        by_key: dict[str, list[str]] = {}
        for key, field in need:
            by_key.setdefault(key, []).append(field)
        started = time.monotonic()
        pause = FIRST_POLL_SECONDS
        while True:
            done = covered(need, await self._watermarks(by_key))
            waited = time.monotonic() - started
            if done or waited >= self.wait_seconds:
                if not done:
                    GAVE_UP.labels(read.value).inc()
                WAITED.labels(read.value).observe(waited)
                self.outstanding.settle(user_id, read, need)
                return
            await asyncio.sleep(min(pause, self.wait_seconds - waited))
            pause = min(pause * 2, LAST_POLL_SECONDS)

    async def _watermarks(self, by_key: dict[str, list[str]]) -> dict[tuple[str, str], str | None]:
        """Read the watermark fields (one round trip)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for key, fields in by_key.items():
                pipe.hmget(key, fields)
            found = await pipe.execute()
        return {
            (key, field): value
            for (key, fields), got in zip(by_key.items(), found, strict=True)
            for field, value in zip(fields, got, strict=True)
        }

    async def order(self, order_id: int, user_id: int | None = None) -> dict[str, str] | None:
        """Return an order; ``user_id``: the reader, whose last reply it must reflect."""
        if user_id is not None:
            await self.caught_up(user_id, Read.ORDERS)
        fields = cast(StrHash, await self.redis.hgetall(keys.order_key(order_id)))
        return fields or None

    async def order_by_client_id(self, user_id: int, client_order_id: str) -> dict[str, str] | None:
        await self.caught_up(user_id, Read.ORDERS)
        order_id = await self.redis.get(keys.client_order_key(user_id, client_order_id))
        return await self.order(int(order_id)) if order_id else None

    async def named_order(
        self, user_id: int, order_id: int | None, client_order_id: str | None
    ) -> dict[str, str] | None:
        """Return the order a request names: by ``order_id`` when sent, else by the user's
        ``client_order_id`` (the caller refuses a request that names neither)."""
        if order_id is not None:
            return await self.order(order_id, user_id)
        if client_order_id:
            return await self.order_by_client_id(user_id, client_order_id)
        return None

    async def orders(self, user_id: int, open_only: bool, limit: int) -> list[dict[str, str]]:
        await self.caught_up(user_id, Read.ORDERS)
        if open_only:
            ids = sorted(
                (int(i) for i in await self.redis.smembers(keys.open_orders_key(user_id))),
                reverse=True,
            )[:limit]
        else:
            members = await self.redis.zrevrange(keys.all_orders_key(user_id), 0, limit - 1)
            ids = [int(i) for i in cast("list[str]", members)]  # no scores asked for
        if not ids:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for order_id in ids:
                pipe.hgetall(keys.order_key(order_id))
            found = await pipe.execute()
        return [fields for fields in found if fields]

    async def open_order_ids(self, user_id: int) -> set[int]:
        await self.caught_up(user_id, Read.ORDERS)
        return {int(i) for i in await self.redis.smembers(keys.open_orders_key(user_id))}

    async def account(self, user_id: int) -> tuple[dict[str, str], dict[str, int]]:
        """Return the account hash (missing fields: 0) and the leverage per symbol: the one
        the user set, else the symbol's default; none for a user the wallet never told of."""
        await self.caught_up(user_id, Read.ACCOUNT)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hgetall(keys.account_key(user_id))
            pipe.hgetall(keys.leverage_key(user_id))
            fields, chosen = await pipe.execute()
        if not fields and not chosen:
            return fields, {}
        leverage = {
            symbol: int(chosen.get(symbol) or spec.default_leverage)
            for symbol, spec in self.symbols.items()
        }
        return fields, leverage

    async def positions(self, user_id: int) -> dict[str, dict[str, int]]:
        """Return symbol -> the view of each open position (``positions.view``), at the
        marks as they are now; one round trip."""
        await self.caught_up(user_id, Read.POSITIONS)
        names = list(self.symbols)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hgetall(keys.positions_key(user_id))
            pipe.hget(keys.account_key(user_id), "balance")
            for name in names:
                pipe.hget(keys.mark_key(name), "mark")
            held, balance, *marks = await pipe.execute()
        if not held:
            return {}
        facts = {symbol: PositionFacts.from_json(raw) for symbol, raw in held.items()}
        at = {name: int(mark) if mark else None for name, mark in zip(names, marks, strict=True)}
        return view(self.symbols, facts, int(balance or 0), at)

    async def book(self, symbol: str) -> tuple[int, list, list]:
        fields = await self.redis.hgetall(keys.book_key(symbol))
        if not fields:
            return 0, [], []
        return (
            int(fields.get("update_id", 0)),
            json.loads(fields.get("bids", "[]")),
            json.loads(fields.get("asks", "[]")),
        )

    async def trades(self, symbol: str, limit: int) -> list[dict]:
        return [
            json.loads(t) for t in await self.redis.lrange(keys.trades_key(symbol), 0, limit - 1)
        ]

    async def fills(self, user_id: int, limit: int) -> list[dict]:
        await self.caught_up(user_id, Read.ORDERS)
        return [
            json.loads(f) for f in await self.redis.lrange(keys.fills_key(user_id), 0, limit - 1)
        ]

    async def income(self, user_id: int, low_ms: int, high_ms: int) -> list[dict]:
        """Return the user's income rows timed ``low_ms``..``high_ms``, oldest first."""
        await self.caught_up(user_id, Read.POSITIONS)
        key = keys.income_key(user_id)
        return [
            json.loads(row)
            for row in cast(list[str], await self.redis.zrangebyscore(key, low_ms, high_ms))
        ]

    async def realised_pnl(self, user_id: int, low_ms: int, high_ms: int) -> dict[tuple, int]:
        """Return (symbol, trade id) -> realised PnL of the user's fills timed
        ``low_ms``..``high_ms`` that realised some."""
        await self.caught_up(user_id, Read.POSITIONS)
        key = keys.realised_pnl_key(user_id)
        found = {}
        for member in cast(list[str], await self.redis.zrangebyscore(key, low_ms, high_ms)):
            symbol, trade_id, pnl = json.loads(member)
            found[(symbol, trade_id)] = pnl
        return found

    async def mark(self, symbol: str) -> dict[str, str]:
        """Return ``mark``, ``index``, ``ts`` (each missing before the first mark)."""
        return cast(StrHash, await self.redis.hgetall(keys.mark_key(symbol)))

    async def funding(self, symbol: str) -> dict[str, str]:
        """Return ``rate`` and ``next_funding_time`` (either may be missing)."""
        return cast(StrHash, await self.redis.hgetall(keys.funding_key(symbol)))
