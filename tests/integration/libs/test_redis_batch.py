"""``libs.redis_batch`` on a real Redis: a batch runs in order, exactly, atomically, and not at
all when its guard key is missing."""

from __future__ import annotations

import pytest
import redis

from libs.messages import OrderStatus
from libs.redis_batch import MAX_ARGS, RedisBatch, pack

DB = 12  # keys of this test's own


@pytest.fixture
def client(redis_url: str) -> redis.Redis:
    client = redis.Redis.from_url(f"{redis_url.rsplit('/', 1)[0]}/{DB}")
    client.flushdb()
    return client


def test_commands_run_in_order_and_values_arrive_exact(client: redis.Redis) -> None:
    big = 2**63 - 1  # past a Lua double's 2**53: it must travel as a string
    assert RedisBatch(client).run(
        [
            ("HSET", "h", "big", big, "cash", 123_456_789_012_345_678, "rate", 0.1),
            ("SET", "s", "é€".encode()),
            ("RPUSH", "l", 1, 2),
            ("DEL", "l"),
            ("RPUSH", "l", 3),
        ]
    )
    assert client.hgetall("h") == {
        b"big": str(big).encode(),
        b"cash": b"123456789012345678",
        b"rate": b"0.1",
    }
    assert client.get("s") == "é€".encode()
    assert client.lrange("l", 0, -1) == [b"3"]


def test_a_str_enum_travels_as_its_value(client: redis.Redis) -> None:
    # the projector writes an order's OrderStatus as it is
    assert RedisBatch(client).run([("HSET", "o", "status", OrderStatus.PARTIALLY_FILLED)])
    assert client.hget("o", "status") == b"PartiallyFilled"


def test_a_missing_guard_key_applies_nothing(client: redis.Redis) -> None:
    batch = RedisBatch(client)
    assert not batch.run([("SET", "a", 1)], unless_missing="ready")
    assert not client.exists("a")
    client.set("ready", 1)
    assert batch.run([("SET", "a", 1)], unless_missing="ready")
    assert client.get("a") == b"1"


def test_a_procedure_gets_its_keys_and_arguments(client: redis.Redis) -> None:
    body = "redis.call('SET', KEYS[2], ARGV[1] .. KEYS[1] .. ARGV[2]) return 1"
    batch = RedisBatch(client, {"join": body})
    assert batch.run([("SET", "x", 0), ("CALL", "join", 2, "k1", "out", "<", ">")])
    assert client.get("out") == b"<k1>"


def test_the_script_is_loaded_again_after_redis_forgot_it(client: redis.Redis) -> None:
    batch = RedisBatch(client)
    assert batch.run([("SET", "a", 1)])
    client.script_flush()
    assert batch.run([("SET", "a", 2)])
    assert client.get("a") == b"2"


def test_a_failing_command_raises(client: redis.Redis) -> None:
    client.set("str", "x")
    with pytest.raises(redis.ResponseError):
        RedisBatch(client).run([("HSET", "str", "f", 1)])


def test_bad_arguments_are_refused_before_they_reach_redis() -> None:
    with pytest.raises(TypeError):
        pack([("SET", "k", None)])  # type: ignore[list-item]
    with pytest.raises(UnicodeDecodeError):  # cmsgpack has no binary type
        pack([("SET", "k", b"\xff")])
    with pytest.raises(ValueError):
        pack([("DEL", *(str(i) for i in range(MAX_ARGS)))])
