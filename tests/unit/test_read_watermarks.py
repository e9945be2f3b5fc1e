"""The engines' events carry what the read side's watermarks are made of: the projector writes
each account update's cause and origin into the account (docs/READ-MODEL.md, "Read-your-writes")."""

from __future__ import annotations

from libs.bus import JournalLoop, MemoryBus, Outgoing
from libs.messages import ANY, AccountUpdated, Cause, Deposit, PositionChanged, encode
from libs.topics import Topics, exchange_topics, user_partition
from services.wallet.service import WalletService

PREFIX = "w."
USER = 3
FILL = Cause("matcher.events", 0, 17)


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


def test_the_wallet_tells_with_each_account_update_its_cause_and_the_fill_behind_it():
    bus, service, loop = wallet()
    topics, q = service.topics, user_partition(USER)
    produce(bus, topics.requests, Deposit(request_id="d", user_id=USER, amount=10**10), q)
    produce(bus, topics.positions_events, position_changed(1, FILL), q)
    drain(loop)
    updates = [
        m
        for m in (ANY.decode(r.value) for r in bus.replay(topics.wallet_events, q))
        if isinstance(m, AccountUpdated)
    ]
    assert [(u.cause, u.origin) for u in updates] == [  # a turn applies positions first
        (Cause("positions.events", q, 0), FILL),  # the projector's settled:matcher.events:0
        (Cause("orders.requests", q, 0), None),
    ]
    assert [u.margin for u in updates] == [5, 5]  # 100 of entry at the default 20x
