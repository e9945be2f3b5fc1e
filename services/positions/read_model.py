"""The position engine's hot state in Redis, for the gateway: a cache, rebuilt when lost.

The keys and what they hold are ``libs/read_model/positions.py``, which the gateway reads with;
this module computes each user's view and the markets' and writes them, with the offsets they
cover.
"""

from __future__ import annotations

import json
import logging

import redis

from libs.read_model.positions import (
    APPLIED_KEY,
    READY_KEY,
    funding_key,
    mark_key,
    positions_key,
)
from libs.redis_batch import Command, RedisBatch, flat
from services.positions.core import PositionsCore

log = logging.getLogger(__name__)


def picture(core: PositionsCore, users: list[int]) -> tuple[dict[int, dict], dict[str, tuple]]:
    """Return the users' position hashes and every symbol's (mark, funding) hashes."""
    views = {user: {s: json.dumps(v) for s, v in core.view(user).items()} for user in users}
    markets = {
        name: (
            {"mark": m.mark, "index": m.index, "ts": m.mark_ts},
            {"rate": m.last_rate, "next_funding_time": m.next_funding},
        )
        for name, m in core.markets.items()
    }
    return views, markets


class RedisReadModel:
    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url, socket_timeout=5)
        self.batch = RedisBatch(self.client)

    def write(
        self,
        views: dict[int, dict],
        markets: dict[str, tuple],
        *,
        full: bool,
        applied: dict[str, int] | None = None,
    ) -> bool:
        """Write atomically (a reader never sees a half-replaced hash), with the ``applied``
        input offsets the state reflects; return False when Redis did not take it, or when a
        partial write finds ``positions:ready`` gone (everything must be written again)."""
        commands: list[Command] = []
        for user, view in views.items():
            commands.append(("DEL", positions_key(user)))
            if view:
                commands.append(("HSET", positions_key(user), *flat(view)))
        for name, (mark, funding) in markets.items():
            commands.append(("HSET", mark_key(name), *flat(mark)))
            commands.append(("HSET", funding_key(name), *flat(funding)))
        if full:
            commands.append(("SET", READY_KEY, 1))
        if applied:
            commands.append(("HSET", APPLIED_KEY, *flat(applied)))
        try:
            return self.batch.run(commands, unless_missing=None if full else READY_KEY)
        except redis.RedisError as error:
            log.warning("redis write failed (will rewrite everything): %s", error)
            return False
