"""The wallet's hot state in Redis, for the gateway: a cache, rebuilt from the state when lost.

The keys and what they hold are ``libs/read_model/wallet.py``, which the gateway reads with;
this module computes each user's picture and writes it, with the offsets it covers.
"""

from __future__ import annotations

import logging

import redis

from libs.read_model.wallet import (
    APPLIED_KEY,
    READY_KEY,
    account_key,
    caused_field,
    leverage_key,
)
from libs.redis_batch import Command, RedisBatch, flat
from services.wallet.core import WalletCore

log = logging.getLogger(__name__)


def picture(core: WalletCore, users: list[int]) -> dict[int, tuple[dict, dict]]:
    """Return, per user, the account hash and the leverage hash (read under the state lock)."""
    result = {}
    for user in users:
        upnl = core.unrealised_pnl(user)
        margin = core.position_margin(user)
        holds = core.holds.of_user(user)
        balance = core.balance(user)
        account = {
            "balance": balance,
            "holds": holds,
            "available": balance + upnl - margin - holds,
            "margin": margin,
            "upnl": upnl,
        }
        leverage = {symbol: core.leverage_of(user, symbol) for symbol in core.symbols}
        result[user] = (account, leverage)
    return result


class RedisReadModel:
    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url, socket_timeout=5)
        self.batch = RedisBatch(self.client)

    def lost(self) -> bool:
        """True when the full picture must be written again (Redis empty or unreachable)."""
        try:
            return not self.client.exists(READY_KEY)
        except redis.RedisError:
            return True

    def write(
        self,
        pictures: dict[int, tuple[dict, dict]],
        *,
        full: bool,
        applied: dict[str, int] | None = None,
        caused: dict[int, dict[tuple[str, int], int]] | None = None,
    ) -> bool:
        """Write the users' hashes (with their ``caused`` fields), then the ``applied`` offsets
        they reflect, atomically; return False when Redis did not take them, or when a partial
        write finds ``wallet:ready`` gone (then everything must be written again)."""
        caused = caused or {}
        commands: list[Command] = []
        for user, (account, leverage) in pictures.items():
            fields = {caused_field(*place): o for place, o in caused.get(user, {}).items()}
            commands.append(("HSET", account_key(user), *flat({**account, **fields})))
            if leverage:
                commands.append(("HSET", leverage_key(user), *flat(leverage)))
        if full:
            commands.append(("SET", READY_KEY, 1))
        if applied:
            commands.append(("HSET", APPLIED_KEY, *flat(applied)))
        try:
            return self.batch.run(commands, unless_missing=None if full else READY_KEY)
        except redis.RedisError as error:
            log.warning("redis write failed (will rewrite everything): %s", error)
            return False
