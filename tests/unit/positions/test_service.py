"""The position engine's Kafka handler over the in-memory bus, with the matching core as matcher."""

from __future__ import annotations

import random

from libs.bus import JournalLoop, MemoryBus, Outgoing
from libs.messages import (
    ANY,
    AccountUpdated,
    Cause,
    Deposit,
    IndexPriceTick,
    LedgerAccountKind,
    LedgerLeg,
    LedgerPosted,
    LiquidationSettled,
    LiquidationTriggered,
    MarkPriceSet,
    MarkPriceUpdated,
    OrderCancelled,
    OrderFilled,
    OrderType,
    PlaceOrder,
    PositionChanged,
    Side,
    TimeInForce,
    encode,
)
from libs.topics import Topics, exchange_topics, symbol_partition, user_partition, user_partitions
from services.positions.service import MALFORMED, PositionsService
from tests.integration.wallet.matcher_pump import MatcherPump
from tests.unit.positions.kit import NS, lots, ticks, usdt

TOPICS = Topics()
SYMBOL = "BTC-PERP"


class Stack:
    """The engine's loop, a matcher pump, and producers for the other engines' topics."""

    def __init__(self, snapshot_every: int = 1000, **options: object) -> None:
        self.bus = MemoryBus()
        for topic in exchange_topics():
            self.bus.create_topic(topic.name, topic.partitions)
        self.options = options
        self.snapshot_every = snapshot_every
        self.pump = MatcherPump(self.bus, TOPICS.commands, TOPICS.matcher_events)
        self.producer = self.bus.producer()
        self.wallet_seq: dict[int, int] = {}
        self.start()

    def start(self) -> None:
        self.service = PositionsService(
            self.bus, TOPICS, snapshot_every=self.snapshot_every, **self.options
        )
        self.loop = JournalLoop(
            self.bus,
            self.service,
            group_id="positions",
            transactional_id="positions-0",
            partitions=self.service.inputs,
            poll_timeout=0,
        )
        self.service.rewind(self.loop.consumer.committed())

    def order(self, oid: int, user: int, side: Side, price: str, qty: str, **kw) -> None:
        command = PlaceOrder(
            request_id=f"r{oid}",
            order_id=oid,
            user_id=user,
            symbol=SYMBOL,
            side=side,
            order_type=kw.pop("order_type", OrderType.LIMIT),
            qty=lots(qty),
            price=ticks(price) if price else None,
            tif=kw.pop("tif", TimeInForce.GTC),
            **kw,
        )
        self.producer.produce(
            Outgoing(TOPICS.commands, encode(command), SYMBOL.encode(), symbol_partition(SYMBOL))
        )

    def balance(self, user: int, amount: str) -> None:
        partition = user_partition(user)
        seq = self.wallet_seq[partition] = self.wallet_seq.get(partition, 0) + 1
        event = AccountUpdated(
            seq=seq,
            cause=Cause("orders.requests", 0, 0),
            user_id=user,
            balance=usdt(amount),
            holds=0,
            available=usdt(amount),
        )
        self.producer.produce(
            Outgoing(TOPICS.wallet_events, encode(event), str(user).encode(), partition)
        )

    def index(self, price: str, ts: int) -> None:
        tick = IndexPriceTick(symbol=SYMBOL, price=ticks(price), ts=ts)
        self.producer.produce(
            Outgoing(TOPICS.index_prices, encode(tick), SYMBOL.encode(), symbol_partition(SYMBOL))
        )

    def drain(self) -> None:
        while self.loop.run_once() + self.pump.pump_once():
            pass

    def events(self, kind: type | None = None) -> list:
        out = [
            ANY.decode(r.value)
            for p in range(len(self.bus.end_offsets(TOPICS.positions_events)))
            for r in self.bus.replay(TOPICS.positions_events, p)
        ]
        return [e for e in out if kind is None or type(e) is kind]


def test_an_index_tick_goes_to_the_matcher_and_the_echo_is_published():
    stack = Stack()
    stack.index("50000", 1 * NS)
    stack.drain()
    assert any(type(e) is MarkPriceSet for e in stack.pump.events)
    (update,) = stack.events(MarkPriceUpdated)
    assert (update.mark_price, update.index_price) == (ticks("50000"), ticks("50000"))
    partition_events = [
        r for r in stack.bus.replay(TOPICS.positions_events, symbol_partition(SYMBOL))
    ]
    assert len(partition_events) == 1


def test_fills_become_position_changes_on_each_users_partition_with_gapless_seqs():
    stack = Stack()
    stack.order(1, 1, Side.SELL, "50000", "1")
    stack.order(2, 2, Side.BUY, "50000", "1")
    stack.order(3, 9, Side.SELL, "50100", "0.5")
    stack.order(4, 1, Side.BUY, "50100", "0.5")
    stack.drain()
    changes = stack.events(PositionChanged)
    assert sorted((c.user_id, c.size) for c in changes) == [
        (1, -lots("1")),
        (1, -lots("0.5")),
        (2, lots("1")),
        (9, -lots("0.5")),
    ]
    for partition in range(user_partitions()):
        seqs = [
            ANY.decode(r.value).seq for r in stack.bus.replay(TOPICS.positions_events, partition)
        ]
        assert seqs == list(range(1, len(seqs) + 1))


def test_malformed_records_on_each_input_are_skipped_and_counted():
    stack = Stack()
    wrong = encode(Deposit(request_id="d", user_id=1, amount=1))
    labels = ("wallet.events", "matcher.events", "index.prices")
    before = {label: MALFORMED.labels(label)._value.get() for label in labels}
    for topic in (TOPICS.wallet_events, TOPICS.matcher_events, TOPICS.index_prices):
        for value in (b"\xc1", None, wrong):
            stack.producer.produce(Outgoing(topic, value, b"1", 0))
    stack.balance(1, "100")
    stack.drain()
    for label, count in before.items():
        assert MALFORMED.labels(label)._value.get() == count + 3
    assert stack.service.core.accounts[1].balance == usdt("100")


def test_a_mark_drop_liquidates_a_leveraged_long_through_the_matcher():
    stack = Stack()
    stack.balance(2, "100000")
    stack.balance(3, "100000")
    stack.order(1, 2, Side.SELL, "50000", "1")
    stack.order(2, 1, Side.BUY, "50000", "1")  # user 1: long 1 BTC
    stack.order(3, 1, Side.BUY, "40000", "0.1")  # a resting order the liquidation cancels
    stack.order(4, 3, Side.BUY, "49100", "2")  # the bid that absorbs the liquidation
    stack.drain()
    stack.balance(1, "1000")
    # insurance to cover the fee: a ledger entry on INSURANCE
    stack.producer.produce(
        Outgoing(
            TOPICS.wallet_events,
            encode(
                LedgerPosted(
                    seq=99,
                    cause=Cause("x", 0, 0),
                    entry_id=1,
                    memo="seed",
                    legs=(
                        LedgerLeg(LedgerAccountKind.INSURANCE, 0, usdt("500")),
                        LedgerLeg(LedgerAccountKind.OUTSIDE, 0, -usdt("500")),
                    ),
                )
            ),
            b"0",
            0,
        )
    )
    stack.drain()
    stack.index("49200", 1 * NS)  # equity 1000 - 800 = 200 > MM 196.8: safe
    stack.drain()
    assert not stack.events(LiquidationTriggered)
    stack.index("49000", 2 * NS)  # equity 0: bust
    stack.drain()
    (trigger,) = stack.events(LiquidationTriggered)
    assert (trigger.user_id, trigger.bankruptcy_price) == (1, ticks("49000"))
    cancelled = [e for e in stack.pump.events if type(e) is OrderCancelled]
    assert [(e.order_id, e.reason) for e in cancelled] == [(3, "cancel_all")]
    fills = [e for e in stack.pump.events if type(e) is OrderFilled and e.liquidation]
    assert [(f.price, f.qty, f.maker_user_id) for f in fills] == [(ticks("49100"), lots("1"), 3)]
    (settled,) = stack.events(LiquidationSettled)
    assert settled.insurance_delta == usdt("100") - usdt("24.55")
    assert 1 not in stack.service.core.markets[SYMBOL].holders


def test_a_restarted_engine_rebuilds_the_committed_state_exactly():
    rng = random.Random(11)

    def run(restart_every: int | None) -> tuple[str, list]:
        stack = Stack(snapshot_every=13, funding_interval_seconds=5)
        for user in range(1, 6):
            stack.balance(user, "20000")
        for step in range(120):
            oid = step + 1
            user = rng.randint(1, 5)
            side = rng.choice((Side.BUY, Side.SELL))
            price = str(49_900 + rng.randint(0, 200))
            stack.order(oid, user, side, price, rng.choice(("0.01", "0.05", "0.1")))
            if step % 5 == 0:
                stack.index(str(49_950 + rng.randint(0, 100)), (step + 1) * NS)
            stack.drain()
            if restart_every and step % restart_every == 0:
                stack.loop.close()
                stack.start()  # a fresh process: snapshot + turn log
        return stack.service.core.digest(), stack.events()

    rng.seed(11)
    uninterrupted = run(None)
    rng.seed(11)
    restarted = run(7)
    assert restarted == uninterrupted
