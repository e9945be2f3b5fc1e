"""Reads of the Redis read model (written by the engines and the gateway projector).

See docs/READ-MODEL.md for who writes which key. Nothing here writes.
"""

from __future__ import annotations

import json

from redis.asyncio import Redis

from services.gateway import keys
from services.positions.read_model import funding_key, mark_key, positions_key
from services.wallet.read_model import account_key, leverage_key


class ReadModel:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def order(self, order_id: int) -> dict[str, str] | None:
        fields = await self.redis.hgetall(keys.order_key(order_id))
        return fields or None

    async def order_by_client_id(self, user_id: int, client_order_id: str) -> dict[str, str] | None:
        order_id = await self.redis.get(keys.client_order_key(user_id, client_order_id))
        return await self.order(int(order_id)) if order_id else None

    async def orders(self, user_id: int, open_only: bool, limit: int) -> list[dict[str, str]]:
        if open_only:
            ids = sorted(
                (int(i) for i in await self.redis.smembers(keys.open_orders_key(user_id))),
                reverse=True,
            )[:limit]
        else:
            ids = [
                int(i)
                for i in await self.redis.zrevrange(keys.all_orders_key(user_id), 0, limit - 1)
            ]
        if not ids:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for order_id in ids:
                pipe.hgetall(keys.order_key(order_id))
            found = await pipe.execute()
        return [fields for fields in found if fields]

    async def open_order_ids(self, user_id: int) -> set[int]:
        return {int(i) for i in await self.redis.smembers(keys.open_orders_key(user_id))}

    async def account(self, user_id: int) -> tuple[dict[str, str], dict[str, str]]:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hgetall(account_key(user_id))
            pipe.hgetall(leverage_key(user_id))
            fields, leverage = await pipe.execute()
        return fields, leverage

    async def positions(self, user_id: int) -> dict[str, str]:
        return await self.redis.hgetall(positions_key(user_id))

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
        return [
            json.loads(f) for f in await self.redis.lrange(keys.fills_key(user_id), 0, limit - 1)
        ]

    async def mark(self, symbol: str) -> dict[str, str]:
        return await self.redis.hgetall(mark_key(symbol))

    async def funding(self, symbol: str) -> dict[str, str]:
        return await self.redis.hgetall(funding_key(symbol))
