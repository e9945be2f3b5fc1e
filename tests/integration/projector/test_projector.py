"""The projector process on real Kafka and Redis: the keys and messages it writes, and
what survives ``kill -9`` and a flushed Redis."""

from __future__ import annotations

import json
import os
import random
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from functools import partial

import pytest
from confluent_kafka import Producer as KafkaProducer

from libs.bus import Outgoing
from libs.bus.kafka import KafkaBus
from libs.messages import (
    AccountUpdated,
    AmendOrder,
    CancelAll,
    CancelOrder,
    Cause,
    LiquidationOrder,
    MarkPriceTick,
    MarkPriceUpdated,
    Message,
    OrderFilled,
    OrderRequestRejected,
    OrderType,
    PlaceOrder,
    PositionChanged,
    Side,
    TimeInForce,
    encode,
)
from libs.read_model import keys
from libs.symbols import default_symbols
from libs.topics import Topics, cause_of
from services.matcher.core import MatchingCore
from services.projector.app import RedisReadModel
from services.projector.projection import Input
from tests.processes import ServiceProcess, free_port

pytestmark = pytest.mark.integration

SPEC = default_symbols()["BTC-PERP"]
SYMBOL = SPEC.name
MID = 500_000
PARTITIONS = {"requests": 2, "matcher_events": 3, "wallet_events": 2, "positions_events": 2}


@pytest.fixture
def prefix(kafka_bootstrap: str) -> str:
    """A private set of the projector's topics, named by a random prefix."""
    name = f"it-projector-{uuid.uuid4().hex[:10]}-"
    topics = Topics(name)
    bus = KafkaBus(kafka_bootstrap)
    for role, partitions in PARTITIONS.items():
        bus.create_topic(getattr(topics, role), partitions)
    return name


@pytest.fixture
def store(redis_url: str) -> Iterator[RedisReadModel]:
    model = RedisReadModel(redis_url)
    model.delete_owned_keys()
    yield model
    model.delete_owned_keys()
    model.client.close()


class ProjectorProcess(ServiceProcess):
    """``python -m services.projector`` on the test's topics: start, kill -9, stop."""

    def __init__(self, bootstrap: str, redis_url: str, prefix: str) -> None:
        port = free_port()
        super().__init__(
            "projector",
            "services.projector",
            {
                **os.environ,
                "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
                "REDIS_URL": redis_url,
                "TOPIC_PREFIX": prefix,
                "METRICS_PORT": str(port),
                "MAX_WAITING": "3",  # pause and resume partitions often
            },
            port=port,
            ready_line=b"projector ready",
            log_name=f"{prefix}projector",
        )


@pytest.fixture
def projector(kafka_bootstrap: str, redis_url: str, prefix: str) -> Iterator[ProjectorProcess]:
    process = ProjectorProcess(kafka_bootstrap, redis_url, prefix)
    yield process
    process.stop()


class Venue:
    """One BTC-PERP MatchingCore driven the way the exchange drives it, writing what each
    engine writes: the gateway's requests, the wallet's rejections and account updates, the
    matcher's batches (one transaction each, ending with BatchCompleted), position and mark
    events. Keeps the offsets each partition will end at."""

    def __init__(self, bootstrap: str, prefix: str) -> None:
        self.topics = Topics(prefix)
        self.core = MatchingCore(SPEC)
        self.plain = KafkaBus(bootstrap).producer()
        self.matcher = KafkaProducer(
            {"bootstrap.servers": bootstrap, "transactional.id": f"{prefix}matcher"}
        )
        self.matcher.init_transactions(30)
        self.ends: dict[tuple[str, int], int] = defaultdict(int)
        self.command_offset = 0
        self.seq = 0

    def cause(self, topic: str, partition: int, offset: int) -> Cause:
        """The cause an engine writes for this record: its logical topic name."""
        return cause_of(topic, partition, offset, self.topics.prefix)

    def _plain(self, topic: str, partition: int, value: bytes) -> Cause:
        self.plain.produce(Outgoing(topic, value, partition=partition))
        offset = self.ends[(topic, partition)]
        self.ends[(topic, partition)] += 1
        return self.cause(topic, partition, offset)

    def request(self, command: Message) -> Cause:
        user = command.user_id  # type: ignore[attr-defined]
        return self._plain(self.topics.requests, user % 2, encode(command))

    def wallet(self, event: Message) -> None:
        user = event.user_id  # type: ignore[attr-defined]
        self._plain(self.topics.wallet_events, user % 2, encode(event))

    def positions(self, event: Message, partition: int) -> None:
        self._plain(self.topics.positions_events, partition, encode(event))

    def garbage(self) -> None:
        self._plain(self.topics.positions_events, 1, b"\xc1 not a message")

    def batch(self, commands: list) -> list:
        if not commands:
            return []  # the matcher writes nothing (and no transaction marker)
        items = [(self.command_offset + i, c) for i, c in enumerate(commands)]
        self.command_offset += len(commands)
        events = self.core.process_batch(items)
        self.matcher.begin_transaction()
        for event in events:
            self.matcher.produce(self.topics.matcher_events, encode(event), partition=0)
        self.matcher.commit_transaction(30)
        self.ends[(self.topics.matcher_events, 0)] += len(events) + 1  # + the commit marker
        return events

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def flush(self) -> None:
        self.plain.flush()

    def covered(self) -> dict[str, int]:
        """The ``projector:offsets`` once everything is applied: after the last record (for
        the matcher: after its last BatchCompleted, before the final commit marker)."""
        matcher = self.topics.matcher_events
        return {
            keys.offsets_field(t, p): end - (1 if t == matcher else 0)
            for (t, p), end in self.ends.items()
        }


def run_step(venue: Venue, rng: random.Random, ids: list[int], users: list[int]) -> None:
    """One turn of a random market: requests, the wallet's verdicts, one matcher batch, and
    the account, position and mark events that follow it."""
    commands: list = []
    for _ in range(rng.randint(1, 5)):
        user, roll = rng.choice(users), rng.random()
        oid = ids[-1] + 1
        side = rng.choice([Side.BUY, Side.SELL])
        place = partial(
            PlaceOrder,
            request_id=f"r{oid}",
            order_id=oid,
            user_id=user,
            symbol=SYMBOL,
            side=side,
            ts=oid * 1000,
        )
        if roll < 0.55:
            ids.append(oid)
            tif = rng.choice(
                [TimeInForce.GTC] * 4 + [TimeInForce.IOC, TimeInForce.FOK, TimeInForce.GTX]
            )
            coid = f"c{oid}" if rng.random() < 0.3 else None
            commands.append(
                place(
                    order_type=OrderType.LIMIT,
                    qty=rng.randint(3, 20),
                    price=MID + rng.randint(-5, 5),
                    tif=tif,
                    client_order_id=coid,
                )
            )
        elif roll < 0.65:
            ids.append(oid)
            commands.append(place(order_type=OrderType.MARKET, qty=rng.randint(3, 20)))
        elif roll < 0.72:
            ids.append(oid)
            commands.append(
                place(
                    order_type=OrderType.STOP_LIMIT,
                    qty=rng.randint(3, 20),
                    price=MID + rng.randint(-5, 5),
                    stop_price=MID + (8 if side is Side.BUY else -8),
                )
            )
        elif roll < 0.82:
            target = rng.choice(ids)
            commands.append(
                CancelOrder(request_id=f"c{oid}", user_id=user, symbol=SYMBOL, order_id=target)
            )
        elif roll < 0.88:
            target = rng.choice(ids)
            commands.append(
                AmendOrder(
                    request_id=f"a{oid}",
                    user_id=user,
                    symbol=SYMBOL,
                    order_id=target,
                    price=MID + rng.randint(-5, 5),
                    qty=rng.randint(3, 20),
                )
            )
        elif roll < 0.91:
            commands.append(CancelAll(request_id=f"x{oid}", user_id=user, symbol=SYMBOL))
        elif roll < 0.95:
            commands.append(
                LiquidationOrder(
                    request_id=f"l{oid}",
                    order_id=(1 << 62) | oid,
                    user_id=user,
                    symbol=SYMBOL,
                    side=side,
                    qty=rng.randint(3, 20),
                    price=MID + rng.randint(-5, 5),
                )
            )
            ids.append(oid)
        else:
            commands.append(
                MarkPriceTick(symbol=SYMBOL, mark_price=MID + rng.randint(-3, 3), ts=oid)
            )
    forwarded = []
    for command in commands:
        if isinstance(command, LiquidationOrder | MarkPriceTick):
            forwarded.append(command)  # from the position engine, not the gateway
            continue
        cause = venue.request(command)
        if isinstance(command, PlaceOrder) and command.order_id % 7 == 0:
            venue.wallet(
                OrderRequestRejected(
                    seq=venue.next_seq(),
                    cause=cause,
                    request_id=command.request_id,
                    user_id=command.user_id,
                    order_id=command.order_id,
                    code=-2019,
                    msg="Margin is insufficient.",
                )
            )
        else:
            forwarded.append(command)
    events = venue.batch(forwarded)
    origin = venue.cause(
        venue.topics.matcher_events, 0, venue.ends[(venue.topics.matcher_events, 0)] - 2
    )
    for event in events:
        if isinstance(event, OrderFilled):
            venue.positions(
                PositionChanged(
                    seq=venue.next_seq(),
                    cause=origin,
                    user_id=event.taker_user_id,
                    symbol=SYMBOL,
                    trade_id=event.trade_id,
                    size=event.qty,
                    entry_notional=SPEC.notional(event.price, event.qty),
                    realised_pnl=0,
                    fee=1,
                ),
                event.taker_user_id % 2,
            )
    user = rng.choice(users)
    venue.wallet(
        AccountUpdated(
            seq=venue.next_seq(), cause=origin, user_id=user, balance=10, holds=1, available=9
        )
    )
    if rng.random() < 0.2:
        venue.positions(
            MarkPriceUpdated(
                seq=venue.next_seq(),
                cause=origin,
                symbol=SYMBOL,
                mark_price=MID,
                index_price=MID - 1,
                ts=7,
            ),
            0,
        )


def read_model(store: RedisReadModel) -> dict:
    """Every key the projector owns, by type; trades and fills without their wall-clock ts."""
    client, out = store.client, {}
    for pattern in keys.OWNED_PATTERNS:
        for key in client.scan_iter(match=pattern, count=1000):
            kind = client.type(key)
            if kind == "hash":
                out[key] = client.hgetall(key)
            elif kind == "set":
                out[key] = sorted(client.smembers(key))
            elif kind == "zset":
                out[key] = client.zrange(key, 0, -1, withscores=True)
            elif kind == "list":
                items = [json.loads(item) for item in client.lrange(key, 0, -1)]
                out[key] = [{k: v for k, v in item.items() if k != "ts"} for item in items]
            else:
                out[key] = client.get(key)
    return out


def wait_covered(store: RedisReadModel, covered: dict[str, int], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        offsets = {k: int(v) for k, v in store.client.hgetall(keys.OFFSETS_KEY).items()}
        if all(offsets.get(field, 0) >= end for field, end in covered.items()):
            assert offsets == covered
            return
        time.sleep(0.1)
    raise AssertionError(f"projector did not catch up: {offsets} != {covered}")


# --- keys and messages ------------------------------------------------------------------------


def test_the_projector_writes_orders_book_trades_fills_and_publishes_every_change(
    kafka_bootstrap, prefix, store, projector
):
    venue = Venue(kafka_bootstrap, prefix)
    maker, taker = (random.randrange(10**9, 2 * 10**9) for _ in range(2))  # private channels
    pubsub = store.client.pubsub()
    channels = [
        keys.depth_channel(SYMBOL),
        keys.trades_channel(SYMBOL),
        keys.mark_channel(SYMBOL),
        keys.user_channel(maker),
        keys.user_channel(taker),
    ]
    pubsub.subscribe(*channels)
    projector.start()
    sell = PlaceOrder(
        request_id="r1",
        order_id=1,
        user_id=maker,
        symbol=SYMBOL,
        side=Side.SELL,
        order_type=OrderType.LIMIT,
        qty=10,
        price=MID,
        client_order_id="mine",
        ts=111,
    )
    buy = PlaceOrder(
        request_id="r2",
        order_id=2,
        user_id=taker,
        symbol=SYMBOL,
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        qty=4,
        price=MID + 3,
        ts=222,
    )
    for command in (sell, buy):
        venue.request(command)
        venue.flush()
        venue.batch([command])
    origin = venue.cause(venue.topics.matcher_events, 0, 3)
    venue.wallet(
        AccountUpdated(seq=1, cause=origin, user_id=taker, balance=50, holds=0, available=40)
    )
    venue.positions(
        MarkPriceUpdated(
            seq=1, cause=origin, symbol=SYMBOL, mark_price=MID, index_price=MID - 2, ts=9
        ),
        0,
    )
    venue.garbage()
    venue.flush()
    wait_covered(store, venue.covered())

    client = store.client
    maker_order = client.hgetall(keys.order_key(1))
    assert {k: maker_order[k] for k in ("status", "filled", "ts", "client_order_id")} == {
        "status": "PartiallyFilled",
        "filled": "4",
        "ts": "111",
        "client_order_id": "mine",
    }
    assert (client.hget(keys.order_key(2), "status"), client.hget(keys.order_key(2), "ts")) == (
        "Filled",
        "222",
    )
    assert client.smembers(keys.open_orders_key(maker)) == {"1"}
    assert client.smembers(keys.open_orders_key(taker)) == set()
    assert client.zrange(keys.all_orders_key(taker), 0, -1) == ["2"]
    assert client.get(keys.client_order_key(maker, "mine")) == "1"
    book = client.hgetall(keys.book_key(SYMBOL))
    assert (json.loads(book["bids"]), json.loads(book["asks"]), book["update_id"]) == (
        [],
        [[MID, 6]],
        "2",
    )
    [trade] = [json.loads(t) for t in client.lrange(keys.trades_key(SYMBOL), 0, -1)]
    assert (trade["trade_id"], trade["price"], trade["qty"], trade["taker_side"]) == (
        1,
        MID,
        4,
        "buy",
    )
    [fill] = [json.loads(f) for f in client.lrange(keys.fills_key(taker), 0, -1)]
    assert fill["fee"] == SPEC.fee(SPEC.notional(MID, 4), maker=False)
    assert (
        client.hget(keys.OFFSETS_KEY, keys.offsets_field(venue.topics.positions_events, 1)) == "1"
    )
    assert 'projector_skipped_total{topic="positions.events"} 1.0' in projector.metrics()

    received: dict[str, list[dict]] = defaultdict(list)
    while (message := pubsub.get_message(timeout=1.0)) is not None:  # all published by now
        if message["type"] == "message":
            received[message["channel"]].append(json.loads(message["data"]))
    pubsub.close()
    depth = received[keys.depth_channel(SYMBOL)]
    assert depth == [
        {"symbol": SYMBOL, "first_update_id": 1, "update_id": 1, "bids": [], "asks": [[MID, 10]]},
        {"symbol": SYMBOL, "first_update_id": 2, "update_id": 2, "bids": [], "asks": [[MID, 6]]},
    ]
    assert received[keys.trades_channel(SYMBOL)] == [trade]
    assert [m["type"] for m in received[keys.user_channel(taker)]] == [
        "order",
        "order",
        "fill",
        "order",
        "account",
    ]
    assert [m["status"] for m in received[keys.user_channel(maker)] if m["type"] == "order"] == [
        "Pending",
        "New",
        "PartiallyFilled",
    ]
    assert received[keys.mark_channel(SYMBOL)] == [
        {"type": "mark", "mark": MID, "index": MID - 2, "ts": 9}
    ]


def test_under_a_topic_prefix_a_position_event_is_held_back_until_its_fill_is_applied(
    kafka_bootstrap, prefix, store, projector
):
    # The position engine names the fill by its logical topic; the projector reads prefixed
    # topics and must still find it.
    venue = Venue(kafka_bootstrap, prefix)
    maker, taker = (random.randrange(10**9, 2 * 10**9) for _ in range(2))
    pubsub = store.client.pubsub()
    pubsub.subscribe(keys.user_channel(taker))
    projector.start()
    sell = PlaceOrder(
        request_id="r1",
        order_id=1,
        user_id=maker,
        symbol=SYMBOL,
        side=Side.SELL,
        order_type=OrderType.LIMIT,
        qty=10,
        price=MID,
    )
    buy = PlaceOrder(
        request_id="r2",
        order_id=2,
        user_id=taker,
        symbol=SYMBOL,
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        qty=4,
        price=MID,
    )
    venue.request(sell)
    venue.flush()
    venue.batch([sell])
    venue.request(buy)
    first = venue.ends[(venue.topics.matcher_events, 0)]  # the buy's batch: accepted, filled, ...
    fill = venue.cause(venue.topics.matcher_events, 0, first + 1)
    assert fill.topic == "matcher.events" != venue.topics.matcher_events
    venue.positions(
        PositionChanged(
            seq=1,
            cause=fill,
            user_id=taker,
            symbol=SYMBOL,
            trade_id=1,
            size=4,
            entry_notional=SPEC.notional(MID, 4),
            realised_pnl=0,
            fee=1,
        ),
        0,
    )
    venue.flush()
    positions = keys.offsets_field(venue.topics.positions_events, 0)
    matcher = keys.offsets_field(venue.topics.matcher_events, 0)
    wait_covered(store, {k: v for k, v in venue.covered().items() if k != positions})
    time.sleep(1.0)  # time enough to apply it, were it not held back
    assert store.client.hget(keys.OFFSETS_KEY, positions) is None
    assert isinstance(venue.batch([buy])[1], OrderFilled)
    venue.flush()
    wait_covered(store, venue.covered())
    assert int(store.client.hget(keys.OFFSETS_KEY, matcher)) == fill.offset + 2

    kinds = []
    while (message := pubsub.get_message(timeout=1.0)) is not None:
        if message["type"] == "message":
            kinds.append(json.loads(message["data"])["type"])
    pubsub.close()
    assert kinds == ["order", "order", "fill", "order", "position"]


def test_the_order_history_keeps_the_newest_1000_closed_orders_and_every_open_one(store):
    topics = Topics("history-")
    projection = store.load(topics, {SYMBOL: SPEC})
    core = MatchingCore(SPEC)
    user = 9
    resting = PlaceOrder(
        request_id="r1",
        order_id=1,
        user_id=user,
        symbol=SYMBOL,
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        qty=5,
        price=MID - 100,
        client_order_id="keep",
    )
    expiring = [
        PlaceOrder(
            request_id=f"r{oid}",
            order_id=oid,
            user_id=user,
            symbol=SYMBOL,
            side=Side.BUY,
            order_type=OrderType.LIMIT,
            qty=5,
            price=MID,
            tif=TimeInForce.IOC,
            client_order_id=f"c{oid}",
        )
        for oid in range(2, 1003)
    ]
    commands = [resting, *expiring]
    for offset, command in enumerate(commands):
        projection.apply(Input(topics.requests, 0, offset, command))
    for offset, event in enumerate(core.process_batch(list(enumerate(commands)))):
        projection.apply(Input(topics.matcher_events, 0, offset, event))
    store.write(projection.flush())

    client = store.client
    history = client.zrange(keys.all_orders_key(user), 0, -1)
    assert history == ["1", *(str(oid) for oid in range(3, 1003))]
    assert client.hget(keys.order_key(1), "status") == "New"
    assert client.get(keys.client_order_key(user, "keep")) == "1"
    assert not client.exists(keys.order_key(2), keys.client_order_key(user, "c2"))
    assert client.hget(keys.order_key(3), "status") == "Expired"
    assert client.get(keys.client_order_key(user, "c3")) == "3"


# --- crashes and a lost Redis ----------------------------------------------------------------


def test_kill_9_mid_stream_and_a_flushed_redis_end_in_the_state_of_an_uninterrupted_run(
    kafka_bootstrap, prefix, store, projector
):
    venue = Venue(kafka_bootstrap, prefix)
    rng = random.Random(20260101)
    ids, users = [1000], [11, 12, 13, 14]
    projector.start()
    done = threading.Event()

    def produce() -> None:
        try:
            for _ in range(240):
                run_step(venue, rng, ids, users)
                venue.flush()
                time.sleep(0.004)
        finally:
            done.set()

    producer = threading.Thread(target=produce)
    producer.start()
    kills = 0
    while not done.is_set() and kills < 3:
        time.sleep(0.7)
        if store.client.hlen(keys.OFFSETS_KEY):  # it is part-way through
            projector.kill()
            kills += 1
            projector.start()
    producer.join()
    assert kills >= 2, "the stream ended before the projector could be killed twice"
    wait_covered(store, venue.covered())
    crashed = read_model(store)
    fills = sum(len(v) for k, v in crashed.items() if k.startswith("fills:"))
    assert fills > 50 and len(crashed[keys.trades_key(SYMBOL)]) * 2 <= fills
    trade_ids = [t["trade_id"] for t in crashed[keys.trades_key(SYMBOL)]]
    assert len(trade_ids) == len(set(trade_ids)), "a trade listed twice"

    projector.kill()
    store.delete_owned_keys()  # what FLUSHDB does to the projector
    projector.start()
    wait_covered(store, venue.covered())
    assert read_model(store) == crashed

    store.delete_owned_keys()  # flushed under a running projector: it notices at its next write
    venue.positions(
        MarkPriceUpdated(
            seq=venue.next_seq(),
            cause=Cause("x", 0, 0),
            symbol=SYMBOL,
            mark_price=MID,
            index_price=MID,
            ts=1,
        ),
        0,
    )
    venue.flush()
    wait_covered(store, venue.covered())
    rebuilt = read_model(store)
    assert {k: int(v) for k, v in rebuilt.pop(keys.OFFSETS_KEY).items()} == venue.covered()
    crashed.pop(keys.OFFSETS_KEY)
    mark = {"mark": str(MID), "index": str(MID), "ts": "1", "open_interest": "0"}
    assert rebuilt.pop(keys.mark_key(SYMBOL)) == mark  # what the new event told
    crashed.pop(keys.mark_key(SYMBOL), None)
    assert rebuilt == crashed
