"""The engines publish, with each write of their read model, how far it reflects the log: the
watermarks the gateway's read-your-writes waits on (docs/READ-MODEL.md)."""

from __future__ import annotations

from dataclasses import dataclass, field

from libs.bus import JournalLoop, MemoryBus, Outgoing, Record
from libs.messages import BatchCompleted, Cause, Deposit, PositionChanged, encode
from libs.topics import Topics, exchange_topics, user_partition
from services.positions import app as positions_app
from services.positions.service import PositionsService
from services.wallet import app as wallet_app
from services.wallet.core import WalletCore
from services.wallet.service import WalletService

PREFIX = "w."
USER = 3
FILL = Cause("matcher.events", 0, 17)


@dataclass
class FakeModel:
    """A read model that takes every write."""

    writes: list[dict] = field(default_factory=list)

    def lost(self) -> bool:
        return False

    def write(self, *pictures, full: bool, applied=None, caused=None) -> bool:
        self.writes.append({"full": full, "applied": applied, "caused": caused})
        return True


def wallet() -> tuple[MemoryBus, WalletService, JournalLoop]:
    bus = MemoryBus()
    for topic in exchange_topics():
        bus.create_topic(PREFIX + topic.name, topic.partitions)
    service = WalletService(bus, Topics(PREFIX))
    loop = JournalLoop(
        bus, service, group_id="w", transactional_id="w-0", partitions=service.inputs
    )
    return bus, service, loop


def position_changed(seq: int, cause: Cause) -> PositionChanged:
    return PositionChanged(
        seq=seq,
        cause=cause,
        user_id=USER,
        symbol="BTC-PERP",
        trade_id=seq,
        size=4,
        entry_notional=100,
        realised_pnl=0,
        fee=0,
    )


def produce(bus: MemoryBus, topic: str, message, partition: int) -> None:
    bus.producer().produce(Outgoing(topic, encode(message), b"k", partition))


def drain(loop: JournalLoop) -> None:
    while loop.run_once():
        pass


def test_the_wallet_writes_its_applied_offsets_and_each_users_last_position_cause():
    bus, service, loop = wallet()
    topics, q = service.topics, user_partition(USER)
    produce(bus, topics.requests, Deposit(request_id="d", user_id=USER, amount=10**10), q)
    produce(bus, topics.positions_events, position_changed(1, FILL), q)
    drain(loop)
    model = FakeModel()
    wallet_app.publish(service, model)  # type: ignore[arg-type]
    [write] = model.writes
    assert write["applied"] == {f"{topics.requests}:{q}": 1, f"{topics.positions_events}:{q}": 1}
    assert write["caused"] == {USER: {("matcher.events", 0): 18}}

    wallet_app.publish(service, model)  # type: ignore[arg-type]
    assert len(model.writes) == 1  # nothing new: no write

    batch_end = BatchCompleted(symbol="BTC-PERP", seq=1, cmd_offset=0, first_offset=0, size=1)
    produce(bus, topics.matcher_events, batch_end, 0)
    drain(loop)
    wallet_app.publish(service, model)  # type: ignore[arg-type]
    assert len(model.writes) == 2  # no user changed, but the offsets moved: they are written
    assert model.writes[-1]["applied"][f"{topics.matcher_events}:0"] == 1


def test_a_rewind_keeps_only_the_position_causes_of_committed_turns():
    bus, service, loop = wallet()
    topics, q = service.topics, user_partition(USER)
    produce(bus, topics.positions_events, position_changed(1, FILL), q)
    drain(loop)
    later = Cause("matcher.events", 0, 30)
    service.handle(
        [Record(topics.positions_events, q, 1, b"k", encode(position_changed(2, later)))]
    )  # applied, never committed
    assert service.core.caused[USER] == {("matcher.events", 0): 31}
    service.rewind(loop.consumer.committed())
    assert service.core.caused[USER] == {("matcher.events", 0): 18}


def test_the_position_causes_survive_a_snapshot_and_a_rewind():
    bus, service, loop = wallet()
    topics, q = service.topics, user_partition(USER)
    produce(bus, topics.positions_events, position_changed(1, FILL), q)
    drain(loop)
    # what a rewind after a later snapshot starts from
    restored = WalletCore.restore(service.core.snapshot())
    assert restored.caused[USER] == {("matcher.events", 0): 18}
    assert restored.digest() == service.core.digest()


def test_the_position_engine_writes_its_applied_offsets_with_its_read_model():
    bus = MemoryBus()
    for topic in exchange_topics():
        bus.create_topic(PREFIX + topic.name, topic.partitions)
    service = PositionsService(bus, Topics(PREFIX))
    batch_end = BatchCompleted(symbol="BTC-PERP", seq=1, cmd_offset=0, first_offset=0, size=1)
    service.handle([Record(f"{PREFIX}matcher.events", 0, 6, b"BTC-PERP", encode(batch_end))])
    model = FakeModel()
    positions_app.publish(service, model)  # type: ignore[arg-type]
    assert model.writes[-1]["applied"] == {f"{PREFIX}matcher.events:0": 7}
