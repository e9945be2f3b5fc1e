"""libs.bus.shards.ShardHost: it runs the shards its group membership gives it, each on a
thread, stops a revoked one inside the rebalance (before the group hands it on), and answers
/digest for the shards it runs."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from libs.bus.shards import ShardHost


class FakeMembership:
    """Scripted assignments; a revocation calls the host back as librdkafka would, in poll."""

    def __init__(self, on_revoke: Any) -> None:
        self.on_revoke, self.owned, self.revoke_next, self.closed = on_revoke, [], [], False

    def poll(self, timeout: float) -> list[int]:
        time.sleep(0.01)
        if self.revoke_next:
            gone, self.revoke_next = self.revoke_next, []
            self.on_revoke(gone)
            self.owned = [p for p in self.owned if p not in gone]
        return list(self.owned)

    def close(self) -> None:
        self.closed = True
        gone, self.owned = self.owned, []
        self.on_revoke(gone)


class FakeLoop:
    def __init__(self) -> None:
        self.running, self.closed = threading.Event(), False

    def run(self, stop: threading.Event) -> None:
        self.running.set()
        stop.wait()
        self.running.clear()

    def close(self) -> None:
        assert not self.running.is_set(), "closed while its thread still ran"
        self.closed = True


class FakeService:
    def __init__(self, partition: int) -> None:
        self.partition = partition

    def digest_json(self, query: dict[str, str] | None = None) -> dict:
        return {"digest": f"shard {self.partition}"}


@pytest.fixture
def host() -> Any:
    started: dict[int, FakeLoop] = {}

    def start(partition: int) -> tuple[Any, Any]:
        started[partition] = FakeLoop()
        return started[partition], FakeService(partition)

    host = ShardHost("wallet", FakeMembership, start, partitions=4, poll_timeout=0.01)
    stop = threading.Event()
    thread = threading.Thread(target=host.run, args=(stop,))
    thread.start()

    def finish() -> None:  # as the service does: stop serving the group, then close
        stop.set()
        thread.join(5)
        host.close()

    yield host, started, finish
    finish()


def eventually(condition: Any) -> None:
    deadline = time.monotonic() + 5
    while not condition():
        assert time.monotonic() < deadline, "never happened"
        time.sleep(0.01)


def test_it_runs_what_it_is_given_and_stops_what_is_taken_before_handing_it_on(host) -> None:
    host, started, _ = host
    host.membership.owned = [1, 3]
    eventually(lambda: host.owned() == [1, 3])
    eventually(lambda: started[1].running.is_set() and started[3].running.is_set())
    host.membership.revoke_next = [1]
    eventually(lambda: host.owned() == [3] and started[1].closed)
    assert not started[1].running.is_set()  # stopped before closed (FakeLoop.close checks)
    assert started[3].running.is_set() and not started[3].closed  # the other one runs on
    first = started[1]
    host.membership.owned = [3, 1]  # given back: a new loop (it fences and recovers)
    eventually(lambda: host.owned() == [1, 3] and started[1] is not first)
    eventually(started[1].running.is_set)


def test_digest_answers_for_the_shards_it_runs_and_404s_the_others(host) -> None:
    host, _, _ = host
    host.membership.owned = [2]
    eventually(lambda: host.owned() == [2])
    assert host.digest_json({"shard": "2"}) == {"digest": "shard 2"}
    assert host.digest_json({}) == {"shards": {"2": {"digest": "shard 2"}}}
    with pytest.raises(LookupError, match="not running here"):
        host.digest_json({"shard": "0"})
    with pytest.raises(LookupError, match="a partition number"):
        host.digest_json({"shard": "x"})


def test_closing_leaves_the_group_and_stops_every_shard(host) -> None:
    host, started, finish = host
    host.membership.owned = [0, 1]
    eventually(lambda: host.owned() == [0, 1])
    finish()
    assert host.membership.closed and host.owned() == []
    assert all(loop.closed for loop in started.values())
