"""The wallet's hot state in Redis, for the gateway: a cache, rebuilt from the state when lost.

- ``wallet:account:{user}``: hash of ``balance``, ``holds``, ``available``, ``margin`` (position
  initial margin) and ``upnl``, integers in 1e-8 USDT.
- ``wallet:leverage:{user}``: hash of symbol -> leverage in force (the default where unset).
- ``wallet:ready``: set once the full picture is written; when it is missing (Redis restarted
  or flushed) the next publish writes every user again.
"""

from __future__ import annotations

import logging

import redis

from services.wallet.core import WalletCore

log = logging.getLogger(__name__)

READY_KEY = "wallet:ready"


def account_key(user_id: int) -> str:
    return f"wallet:account:{user_id}"


def leverage_key(user_id: int) -> str:
    return f"wallet:leverage:{user_id}"


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

    def lost(self) -> bool:
        """True when the full picture must be written again (Redis empty or unreachable)."""
        try:
            return not self.client.exists(READY_KEY)
        except redis.RedisError:
            return True

    def write(self, pictures: dict[int, tuple[dict, dict]], *, full: bool) -> bool:
        """Write the users' hashes in one pipeline; return False when Redis did not take them."""
        try:
            pipe = self.client.pipeline(transaction=False)
            for user, (account, leverage) in pictures.items():
                pipe.hset(account_key(user), mapping=account)
                pipe.hset(leverage_key(user), mapping=leverage)
            if full:
                pipe.set(READY_KEY, 1)
            pipe.execute()
            return True
        except redis.RedisError as error:
            log.warning("redis write failed (will rewrite everything): %s", error)
            return False
