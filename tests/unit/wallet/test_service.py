"""The wallet's Kafka handler over the in-memory bus: routing, malformed input, recovery."""

from __future__ import annotations

import random

from libs.bus import JournalLoop, MemoryBus, Outgoing
from libs.messages import (
    ANY,
    AccountUpdated,
    Cause,
    Deposit,
    FundingPaid,
    LedgerPosted,
    OrderRequestRejected,
    PlaceOrder,
    RejectRequest,
    encode,
)
from libs.topics import Topics, exchange_topics, symbol_partition, user_partition
from services.wallet.service import MALFORMED, WalletService
from tests.integration.wallet.matcher_pump import MatcherPump
from tests.unit.wallet.kit import BUY, LOT, PRICE, SELL, SYMBOL, USDT, cancel, place

TOPICS = Topics()


def setup(snapshot_every: int = 1000) -> tuple[MemoryBus, WalletService, JournalLoop]:
    bus = MemoryBus()
    for topic in exchange_topics():
        bus.create_topic(topic.name, topic.partitions)
    service = WalletService(bus, TOPICS, snapshot_every=snapshot_every)
    loop = JournalLoop(
        bus, service, group_id="wallet", transactional_id="wallet-0", partitions=service.inputs
    )
    return bus, service, loop


def send(bus: MemoryBus, message, topic: str = TOPICS.requests) -> None:
    producer = bus.producer()
    user = message.user_id
    producer.produce(Outgoing(topic, encode(message), str(user).encode(), user_partition(user)))


def read(bus: MemoryBus, topic: str) -> list:
    return [
        ANY.decode(r.value)
        for p in range(len(bus.end_offsets(topic)))
        for r in bus.replay(topic, p)
    ]


def drain(loop: JournalLoop, pump: MatcherPump | None = None) -> None:
    while True:
        moved = loop.run_once()
        if pump is not None:
            moved += pump.pump_once()
        if not moved:
            return


def test_accepted_and_refused_orders_go_in_order_to_their_symbol_partition() -> None:
    bus, _, loop = setup()
    send(bus, Deposit(request_id="d", user_id=3, amount=3000 * USDT))
    send(bus, place(1, 3, BUY, PRICE, LOT))
    send(bus, place(2, 3, BUY, PRICE, LOT))  # beyond what is left
    drain(loop)
    forwarded, rejected = [
        ANY.decode(r.value) for r in bus.replay(TOPICS.commands, symbol_partition(SYMBOL))
    ]
    assert forwarded == place(1, 3, BUY, PRICE, LOT)
    assert isinstance(rejected, RejectRequest)  # the book answers it on matcher.events
    assert (rejected.request_id, rejected.order_id, rejected.code) == ("p2", 2, -2019)
    events = [ANY.decode(r.value) for r in bus.replay(TOPICS.wallet_events, user_partition(3))]
    assert not [e for e in events if isinstance(e, OrderRequestRejected)]
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    updates = [e for e in events if isinstance(e, AccountUpdated)]
    assert [u.holds for u in updates] == [0]  # the deposit's; the hold is told with the answer


def test_a_hold_is_told_with_the_books_answer_in_the_turn_that_settles_it() -> None:
    bus, _service, loop = setup()
    pump = MatcherPump(bus, TOPICS.commands, TOPICS.matcher_events)
    send(bus, Deposit(request_id="d", user_id=3, amount=6000 * USDT))
    drain(loop, pump)
    send(bus, place(1, 3, BUY, PRICE, LOT))
    loop.run_once()  # the order's turn: forwarded, no account event yet
    assert [type(e) for e in read(bus, TOPICS.wallet_events)] == [LedgerPosted, AccountUpdated]
    drain(loop, pump)  # the book accepts it (it rests): the hold is told
    *_, told = read(bus, TOPICS.wallet_events)
    assert isinstance(told, AccountUpdated) and told.holds == 2525 * USDT
    assert told.available == (6000 - 2525) * USDT


def test_malformed_and_unknown_records_on_each_input_are_skipped_and_counted() -> None:
    bus, service, loop = setup()
    producer = bus.producer()
    wrong_kind = encode(
        FundingPaid(
            seq=1,
            cause=Cause("x", 0, 0),
            user_id=1,
            symbol=SYMBOL,
            amount=1,
            rate=1,
            funding_time=1,
        )
    )
    garbage = [b"\xc1", b"not msgpack", None, encode(Deposit(request_id="d", user_id=1, amount=1))]
    before = {
        t: MALFORMED.labels(t)._value.get()
        for t in ("orders.requests", "matcher.events", "positions.events")
    }
    for topic in (TOPICS.requests, TOPICS.matcher_events, TOPICS.positions_events):
        for value in garbage[:3] + (
            [wrong_kind] if topic != TOPICS.positions_events else garbage[3:]
        ):
            producer.produce(Outgoing(topic, value, b"1", user_partition(1)))
    send(bus, Deposit(request_id="ok", user_id=1, amount=5 * USDT))
    drain(loop)
    for topic, count in before.items():
        assert MALFORMED.labels(topic)._value.get() == count + 4
    assert service.core.balance(1) == 5 * USDT  # nothing else touched the state


def test_a_restarted_wallet_rebuilds_the_committed_state_exactly() -> None:
    rng = random.Random(7)
    bus, service, loop = setup(snapshot_every=17)
    pump = MatcherPump(bus, TOPICS.commands, TOPICS.matcher_events)
    for user in range(1, 6):
        send(bus, Deposit(request_id=f"d{user}", user_id=user, amount=20_000 * USDT))
    for oid in range(1, 200):
        user = rng.randint(1, 5)
        if rng.random() < 0.3:
            send(bus, cancel(rng.randint(1, oid), user))
        else:
            side = rng.choice((BUY, SELL))
            send(
                bus,
                place(oid, user, side, PRICE + rng.randint(-5, 5) * 10, rng.randint(1, 3) * LOT),
            )
        if rng.random() < 0.2:
            drain(loop, pump)
    drain(loop, pump)
    fresh = WalletService(bus, TOPICS, snapshot_every=17)
    fresh.rewind(loop.consumer.committed())
    assert fresh.digest_json() == service.digest_json()
    assert fresh.core.ledger.entry_id > 50
    assert any(isinstance(m, PlaceOrder) for m in read(bus, TOPICS.commands))


def test_a_failed_commit_recovers_the_state_the_log_holds_and_doubles_no_output() -> None:
    from libs.bus import AbortableError

    bus, service, loop = setup(snapshot_every=3)
    for user in (1, 2):
        send(bus, Deposit(request_id=f"d{user}", user_id=user, amount=9000 * USDT))
    drain(loop)
    send(bus, place(1, 1, BUY, PRICE, LOT))  # the third input: a snapshot is due, commit first
    loop.producer.fail_next_commit = AbortableError("injected")
    assert loop.run_once() == 0
    assert service.core.holds.of_user(1) == 2525 * USDT  # the journaled turn stays applied
    drain(loop)
    assert service.core.holds.of_user(1) == 2525 * USDT
    assert len(list(bus.replay(TOPICS.commands, symbol_partition(SYMBOL)))) == 1


def test_the_rewind_replays_the_recorded_turns_not_a_new_interleaving() -> None:
    from libs.messages import PositionChanged

    bus, service, loop = setup()
    send(bus, Deposit(request_id="d", user_id=1, amount=3000 * USDT))
    send(bus, place(1, 1, BUY, PRICE, LOT))  # holds 2,525: accepted
    drain(loop)
    loss = PositionChanged(
        seq=1,
        cause=Cause("p", 0, 0),
        user_id=1,
        symbol=SYMBOL,
        trade_id=1,
        size=0,
        entry_notional=0,
        realised_pnl=-900 * USDT,
        fee=0,
    )
    send(bus, loss, TOPICS.positions_events)
    drain(loop)
    assert service.core.holds.of_user(1) == 2525 * USDT
    # one turn of the same records would apply the loss first and refuse the order ...
    naive = WalletService(bus, TOPICS)
    records = [r for tp in naive.inputs for r in bus.replay(*tp)]
    naive.handle(records)
    assert naive.core.holds.of_user(1) == 0
    # ... the rewind re-applies the turns as they were journaled
    fresh = WalletService(bus, TOPICS)
    fresh.rewind(loop.consumer.committed())
    assert fresh.core.holds.of_user(1) == 2525 * USDT
    assert fresh.digest_json() == service.digest_json()
