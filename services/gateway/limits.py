"""Request rate limits shared by every gateway process: all state lives in Redis.

A fixed window per bucket: the first hit creates ``ratelimit:{bucket}:{window_seconds}`` with
a ``window_seconds`` expiry, each hit increments it, and once the count passes the limit every
hit is refused until the key expires. A Lua script does the increment, the expiry and the
read of the time left in one atomic step, so concurrent gateways never lose a count and no
key outlives its window. (Fixed windows let a client send up to twice the limit across a
window boundary; Binance's limits behave the same way, and it costs one key per bucket.)

A request's per-IP and per-user limits go in one script call, and so do the requests that
arrive while a call is on its way: one call is in flight at a time, and the hits that queued
behind it go together in the next (a group commit). Under load that is one round trip for many
requests instead of one each; a request that finds no call in flight waits for nothing more.

Redis errors propagate: whether to fail open or closed is the caller's decision.
"""

from __future__ import annotations

import asyncio
import math

from redis.asyncio import Redis

KEY_PREFIX = "ratelimit:"
LISTEN_KEY_PREFIX = "listenkey:"
"""The Binance face's user data stream keys (``binance/listen_keys.py``)."""
OWNED_PATTERNS = (f"{KEY_PREFIX}*", f"{LISTEN_KEY_PREFIX}*")
"""Every Redis key the gateway writes: its rate limits' counters and the Binance face's listen
keys (the rest it only reads)."""

# KEYS: every request's windows' counters, request after request; ARGV: the number of
# requests, then for each its number of windows, and a limit and a window in ms per window.
# For each request: counts one hit in each of its windows in turn and stops at the first that
# is over its limit (the later ones are not counted, as if each were its own request after the
# one before it). Returns, per request, -1 when every window allowed the hit, else the ms until
# the refusing window ends (at least 1).
_HIT = """
local results = {}
local k, a = 1, 2
for r = 1, tonumber(ARGV[1]) do
    local result = -1
    local windows = tonumber(ARGV[a])
    a = a + 1
    for _ = 1, windows do
        if result == -1 then
            local key, window = KEYS[k], tonumber(ARGV[a + 1])
            local count = redis.call('INCR', key)
            local ttl = redis.call('PTTL', key)
            if ttl < 0 then
                redis.call('PEXPIRE', key, window)
                ttl = window
            end
            if count > tonumber(ARGV[a]) then
                result = math.max(ttl, 1)
            end
        end
        k, a = k + 1, a + 2
    end
    results[r] = result
end
return results
"""

Limit = tuple[str, int, int]
"""A bucket, its limit and its window in seconds."""

_Hit = tuple[list[str], list[int], "asyncio.Future[int]"]
"""One request's counters, its (limit, window ms) pairs, and where its answer goes."""


class RateLimiter:
    def __init__(self, redis: Redis) -> None:
        self._hit = redis.register_script(_HIT)
        self._queued: list[_Hit] = []
        self._sender: asyncio.Task[None] | None = None  # held: the loop keeps only weak refs

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
        keys: list[str] = []
        args: list[int] = []
        for bucket, limit, window_seconds in limits:
            if limit < 1 or window_seconds < 1:
                raise ValueError(
                    f"need limit >= 1 and window >= 1 s, got {limit} per {window_seconds}"
                )
            keys.append(f"{KEY_PREFIX}{bucket}:{window_seconds}")
            args += (limit, window_seconds * 1000)
        answer: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._queued.append((keys, args, answer))
        if self._sender is None or self._sender.done():  # no call in flight: start one
            self._sender = asyncio.get_running_loop().create_task(self._send())
        wait_ms = await answer
        if wait_ms < 0:
            return None
        return float(math.ceil(wait_ms / 1000))

    async def _send(self) -> None:
        """Send what has queued, one call at a time, until nothing is queued."""
        while self._queued:
            batch, self._queued = self._queued, []
            keys: list[str] = []
            args: list[int] = [len(batch)]
            for hit_keys, hit_args, _ in batch:
                keys += hit_keys
                args.append(len(hit_keys))
                args += hit_args
            try:
                results = [int(r) for r in await self._hit(keys=keys, args=args)]
                if len(results) != len(batch):
                    raise RuntimeError(f"{len(results)} answers to {len(batch)} requests")
            except Exception as error:  # every request of the batch gets the error
                for *_, answer in batch:
                    if not answer.done():
                        answer.set_exception(error)
                continue
            for (*_, answer), wait_ms in zip(batch, results, strict=True):
                if not answer.done():  # a request cancelled meanwhile: its hit counted
                    answer.set_result(wait_ms)
