"""Request rate limits shared by every gateway process: all state lives in Redis.

A fixed window per bucket: the first hit creates ``ratelimit:{bucket}:{window_seconds}`` with
a ``window_seconds`` expiry, each hit increments it, and once the count passes the limit every
hit is refused until the key expires. A Lua script does the increment, the expiry and the
read of the time left in one atomic step, so concurrent gateways never lose a count and no
key outlives its window. (Fixed windows let a client send up to twice the limit across a
window boundary; Binance's limits behave the same way, and it costs one key per bucket.)

Redis errors propagate: whether to fail open or closed is the caller's decision.
"""

from __future__ import annotations

import math

from redis.asyncio import Redis

# KEYS[1]: the window's counter; ARGV[1]: the limit; ARGV[2]: the window in ms.
# Returns -1 when the hit is allowed, else the ms until the window ends (at least 1).
_HIT = """
local count = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    ttl = tonumber(ARGV[2])
end
if count <= tonumber(ARGV[1]) then
    return -1
end
return math.max(ttl, 1)
"""


class RateLimiter:
    def __init__(self, redis: Redis) -> None:
        self._hit = redis.register_script(_HIT)

    async def hit(self, bucket: str, limit: int, window_seconds: int) -> float | None:
        """Count one request against ``bucket``: at most ``limit`` per ``window_seconds``.

        Return None when the request is allowed, else the whole seconds (at least 1, at most
        the window) until the window ends, for a ``Retry-After`` header.
        """
        if limit < 1 or window_seconds < 1:
            raise ValueError(f"need limit >= 1 and window >= 1 s, got {limit} per {window_seconds}")
        wait_ms = int(
            await self._hit(
                keys=[f"ratelimit:{bucket}:{window_seconds}"], args=[limit, window_seconds * 1000]
            )
        )
        if wait_ms < 0:
            return None
        return float(math.ceil(wait_ms / 1000))
