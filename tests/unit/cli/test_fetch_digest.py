"""`python -m exchange` asks every instance of an engine: a book's or a user shard's digest
comes from the one that runs it (the others answer 404), and a status from all of them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from exchange.cli import fetch_digest
from exchange.stack import Target
from libs.ops import OpsServer


def instance(shards: set[int]) -> OpsServer:
    """An engine's ops endpoint running ``shards``, as ``libs.bus.shards.ShardHost`` answers."""

    def digest(query: dict[str, str]) -> dict:
        if "shard" not in query:
            return {"shards": {str(p): {"digest": f"d{p}"} for p in sorted(shards)}}
        if int(query["shard"]) not in shards:
            raise LookupError("not running here")
        return {"digest": f"d{query['shard']}"}

    return OpsServer(0, digest)


@pytest.fixture
def target() -> Iterator[Target]:
    first, second = instance({0}), instance({1, 2})
    urls = f"http://127.0.0.1:{first.port},http://127.0.0.1:{second.port}"
    yield Target("broker:9092", digest_urls={"wallet": urls}, user_partitions=3)
    first.close()
    second.close()


def test_a_shard_is_asked_of_the_instance_that_runs_it(target: Target) -> None:
    assert fetch_digest(target, "wallet", shard=0) == {"digest": "d0"}
    assert fetch_digest(target, "wallet", shard=2) == {"digest": "d2"}


def test_a_shard_no_instance_runs_is_an_error(target: Target) -> None:
    with pytest.raises(OSError):
        fetch_digest(target, "wallet", shard=5, timeout=2)


def test_without_a_shard_every_instances_shards_come_together(target: Target) -> None:
    assert fetch_digest(target, "wallet") == {
        "shards": {"0": {"digest": "d0"}, "1": {"digest": "d1"}, "2": {"digest": "d2"}}
    }
