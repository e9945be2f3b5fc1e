"""Request rate limits shared by every gateway process: all state lives in Redis.

A fixed window per bucket: the first hit creates ``ratelimit:{bucket}:{window_seconds}`` with
a ``window_seconds`` expiry, each hit increments it, and once the count passes the limit every
hit is refused until the key expires. A Lua script does the increment, the expiry and the
read of the time left in one atomic step (for several buckets at once: a request's per-IP and
per-user limits cost one round trip), so concurrent gateways never lose a count and no
key outlives its window. (Fixed windows let a client send up to twice the limit across a
window boundary; Binance's limits behave the same way, and it costs one key per bucket.)

Redis errors propagate: whether to fail open or closed is the caller's decision.
"""

from __future__ import annotations

import math

from redis.asyncio import Redis

# KEYS: the windows' counters, in order; ARGV: a limit and a window in ms for each.
# Counts one hit in each window in turn and stops at the first that is over its limit (the
# later ones are not counted, as if each were its own request after the one before it).
# Returns -1 when every window allows the hit, else the ms until the refusing window ends
# (at least 1).
_HIT = """
for i, key in ipairs(KEYS) do
    local window = tonumber(ARGV[2 * i])
    local count = redis.call('INCR', key)
    local ttl = redis.call('PTTL', key)
    if ttl < 0 then
        redis.call('PEXPIRE', key, window)
        ttl = window
    end
    if count > tonumber(ARGV[2 * i - 1]) then
        return math.max(ttl, 1)
    end
end
return -1
"""

Limit = tuple[str, int, int]
"""A bucket, its limit and its window in seconds."""


class RateLimiter:
    def __init__(self, redis: Redis) -> None:
        self._hit = redis.register_script(_HIT)

    async def hit(self, bucket: str, limit: int, window_seconds: int) -> float | None:
        """Count one request against ``bucket``: at most ``limit`` per ``window_seconds``.

        Return None when the request is allowed, else the whole seconds (at least 1, at most
        the window) until the window ends, for a ``Retry-After`` header.
        """
        return await self.hit_all((bucket, limit, window_seconds))

    async def hit_all(self, *limits: Limit) -> float | None:
        """Count one request against each ``(bucket, limit, window_seconds)`` in turn, in one
        round trip, stopping at the first that refuses it: the same counts and answer as
        ``hit`` on each in turn until one refuses."""
        keys, args = [], []
        for bucket, limit, window_seconds in limits:
            if limit < 1 or window_seconds < 1:
                raise ValueError(
                    f"need limit >= 1 and window >= 1 s, got {limit} per {window_seconds}"
                )
            keys.append(f"ratelimit:{bucket}:{window_seconds}")
            args += (limit, window_seconds * 1000)
        wait_ms = int(await self._hit(keys=keys, args=args))
        if wait_ms < 0:
            return None
        return float(math.ceil(wait_ms / 1000))
