"""services.gateway.limits.RateLimiter against a real Redis (buckets named per test run)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from services.gateway.limits import RateLimiter


def with_limiter(redis_url: str, scenario: Callable[[RateLimiter, Redis], Awaitable[None]]) -> None:
    """Run ``scenario`` on a limiter over a fresh client (one event loop per test)."""

    async def main() -> None:
        client = Redis.from_url(redis_url)
        try:
            await scenario(RateLimiter(client), client)
        finally:
            await client.aclose()

    asyncio.run(main())


def new_bucket() -> str:
    return f"test-{uuid.uuid4().hex}"


def test_hits_up_to_the_limit_pass_and_the_next_gets_a_retry_after(redis_url: str) -> None:
    async def scenario(limiter: RateLimiter, _: Redis) -> None:
        bucket = new_bucket()
        assert [await limiter.hit(bucket, 3, 10) for _ in range(3)] == [None] * 3
        wait = await limiter.hit(bucket, 3, 10)
        assert wait is not None and 0 < wait <= 10
        assert await limiter.hit(bucket, 3, 10) is not None  # refused hits keep being refused

    with_limiter(redis_url, scenario)


def test_buckets_are_counted_apart(redis_url: str) -> None:
    async def scenario(limiter: RateLimiter, _: Redis) -> None:
        busy, idle = new_bucket(), new_bucket()
        await limiter.hit(busy, 1, 10)
        assert await limiter.hit(busy, 1, 10) is not None
        assert await limiter.hit(idle, 1, 10) is None

    with_limiter(redis_url, scenario)


def test_a_new_window_allows_requests_again(redis_url: str) -> None:
    async def scenario(limiter: RateLimiter, _: Redis) -> None:
        bucket = new_bucket()
        assert await limiter.hit(bucket, 2, 1) is None
        assert await limiter.hit(bucket, 2, 1) is None
        wait = await limiter.hit(bucket, 2, 1)
        assert wait == 1.0
        await asyncio.sleep(1.1)
        assert await limiter.hit(bucket, 2, 1) is None

    with_limiter(redis_url, scenario)


def test_concurrent_hits_are_never_lost(redis_url: str) -> None:
    async def scenario(limiter: RateLimiter, _: Redis) -> None:
        bucket = new_bucket()
        results = await asyncio.gather(*(limiter.hit(bucket, 50, 10) for _ in range(80)))
        assert sum(r is None for r in results) == 50

    with_limiter(redis_url, scenario)


def test_the_counter_lives_under_ratelimit_and_expires_with_its_window(redis_url: str) -> None:
    async def scenario(limiter: RateLimiter, client: Redis) -> None:
        bucket = new_bucket()
        await limiter.hit(bucket, 5, 2)
        assert 0 < await client.pttl(f"ratelimit:{bucket}:2") <= 2000

    with_limiter(redis_url, scenario)


@pytest.mark.parametrize(("limit", "window"), [(0, 1), (1, 0)])
def test_a_limit_or_window_below_one_is_refused(redis_url: str, limit: int, window: int) -> None:
    async def scenario(limiter: RateLimiter, _: Redis) -> None:
        with pytest.raises(ValueError, match="limit"):
            await limiter.hit(new_bucket(), limit, window)

    with_limiter(redis_url, scenario)


def test_hits_on_several_buckets_count_in_turn_and_stop_at_the_first_refusal(
    redis_url: str,
) -> None:
    async def scenario(limiter: RateLimiter, client: Redis) -> None:
        ip, user = new_bucket(), new_bucket()
        assert await limiter.hit_all((ip, 2, 60), (user, 1, 1)) is None
        wait = await limiter.hit_all((ip, 2, 60), (user, 1, 1))  # the user's window is full
        assert wait == 1.0
        wait = await limiter.hit_all((ip, 2, 60), (user, 1, 1))  # now the IP's is full
        assert wait is not None and 1 < wait <= 60
        counts = [await client.get(f"ratelimit:{b}") for b in (f"{ip}:60", f"{user}:1")]
        assert counts == [b"3", b"2"]  # the user was not counted once the IP refused
        assert 0 < await client.pttl(f"ratelimit:{user}:1") <= 1000

    with_limiter(redis_url, scenario)


def test_several_buckets_share_their_budgets_with_single_hits(redis_url: str) -> None:
    """A user's budget is one, whether another gateway counts it alone or with an IP."""

    async def scenario(limiter: RateLimiter, _: Redis) -> None:
        ip, user = new_bucket(), new_bucket()
        results = await asyncio.gather(
            *(limiter.hit_all((ip, 1000, 60), (user, 30, 10)) for _ in range(25)),
            *(limiter.hit(user, 30, 10) for _ in range(25)),
        )
        assert sum(r is None for r in results) == 30

    with_limiter(redis_url, scenario)


def test_requests_that_arrive_together_share_one_call_and_keep_their_own_answers(
    redis_url: str,
) -> None:
    async def scenario(limiter: RateLimiter, client: Redis) -> None:
        ip, users = new_bucket(), [new_bucket() for _ in range(3)]
        before = await _script_calls(client)
        # ip allows 4; each user 1: the user windows after the ip's refusal are not counted
        answers = await asyncio.gather(
            *(limiter.hit_all((ip, 4, 10), (users[i % 3], 1, 10)) for i in range(6))
        )
        assert await _script_calls(client) - before <= 2  # not one per request
        assert [a is None for a in answers] == [True, True, True, False, False, False]
        assert int(await client.get(f"ratelimit:{ip}:10")) == 6
        assert [int(await client.get(f"ratelimit:{u}:10")) for u in users] == [2, 1, 1]

    with_limiter(redis_url, scenario)


def test_every_request_of_a_call_that_failed_gets_the_error(redis_url: str) -> None:
    async def main() -> None:
        client = Redis(host="127.0.0.1", port=1, socket_connect_timeout=1)  # nothing listens
        limiter = RateLimiter(client)
        try:
            results = await asyncio.gather(
                *(limiter.hit(new_bucket(), 1, 10) for _ in range(3)), return_exceptions=True
            )
            assert all(isinstance(r, RedisConnectionError) for r in results), results
        finally:
            await client.aclose()

    asyncio.run(main())


async def _script_calls(client: Redis) -> int:
    stats = await client.info("commandstats")
    return sum(stats.get(f"cmdstat_{name}", {}).get("calls", 0) for name in ("evalsha", "eval"))


def test_a_request_cancelled_while_its_call_is_out_still_counts_and_nothing_hangs(
    redis_url: str,
) -> None:
    async def scenario(limiter: RateLimiter, _: Redis) -> None:
        bucket = new_bucket()
        first = asyncio.create_task(limiter.hit(bucket, 1, 10))
        await asyncio.sleep(0)  # queued, its call not answered yet
        first.cancel()
        assert await asyncio.wait_for(limiter.hit(bucket, 1, 10), 5) is not None
        assert first.cancelled()

    with_limiter(redis_url, scenario)
