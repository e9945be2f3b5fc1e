"""The wallet's publish: what an idle wallet asks Redis, and how a lost picture is noticed."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from libs.bus import JournalLoop, MemoryBus, Outgoing
from libs.messages import Deposit, encode
from libs.topics import Topics, exchange_topics, user_partition
from services.wallet import app
from services.wallet.service import WalletService

PREFIX = "p."
REQUESTS = itertools.count()


@dataclass
class Redis:
    """A read model that can lose its picture, counting what it is asked."""

    ready: bool = True
    asked: int = 0
    writes: list[tuple[bool, list[int]]] = field(default_factory=list)

    def lost(self) -> bool:
        self.asked += 1
        return not self.ready

    def write(self, pictures, *, full: bool, applied=None, caused=None) -> bool:
        self.writes.append((full, sorted(pictures)))
        if full:
            self.ready = True
        return self.ready  # a partial write into a lost picture reports it


def running_wallet(*users: int) -> tuple[MemoryBus, WalletService, JournalLoop]:
    bus = MemoryBus()
    for topic in exchange_topics():
        bus.create_topic(PREFIX + topic.name, topic.partitions)
    service = WalletService(bus, Topics(PREFIX))
    loop = JournalLoop(
        bus, service, group_id="w", transactional_id="w-0", partitions=service.inputs
    )
    for user in users:
        deposit(bus, service, loop, user)
    return bus, service, loop


def deposit(bus: MemoryBus, service: WalletService, loop: JournalLoop, user: int) -> None:
    message = Deposit(request_id=f"d{next(REQUESTS)}", user_id=user, amount=10**10)
    topic = service.topics.requests
    bus.producer().produce(Outgoing(topic, encode(message), b"k", user_partition(user)))
    while loop.run_once():
        pass


def test_an_idle_wallet_asks_redis_only_when_told_to_look():
    _, service, _ = running_wallet(1)
    model = Redis()
    app.publish(service, model, look=False)  # type: ignore[arg-type]
    assert model.writes == [(True, [1])]  # the first publish after a load writes everything
    for _ in range(50):
        app.publish(service, model, look=False)  # type: ignore[arg-type]
    assert model.asked == 0 and len(model.writes) == 1
    app.publish(service, model, look=True)  # type: ignore[arg-type]
    assert model.asked == 1 and len(model.writes) == 1


def test_a_picture_lost_while_idle_is_written_again_as_soon_as_the_wallet_looks():
    _, service, _ = running_wallet(1, 2)
    model = Redis()
    app.publish(service, model)  # type: ignore[arg-type]
    model.ready = False
    app.publish(service, model, look=True)  # type: ignore[arg-type]
    assert model.writes[-1] == (True, [1, 2])


def test_a_write_that_finds_the_picture_lost_is_followed_by_a_full_one_without_asking():
    bus, service, loop = running_wallet(1, 2)
    model = Redis()
    app.publish(service, model)  # type: ignore[arg-type]
    model.ready = False
    deposit(bus, service, loop, 1)
    app.publish(service, model, look=False)  # type: ignore[arg-type]
    assert model.writes[-1] == (False, [1])  # it found out, in the same round trip
    app.publish(service, model, look=False)  # type: ignore[arg-type]
    assert model.writes[-1] == (True, [1, 2])
    assert model.asked == 0
