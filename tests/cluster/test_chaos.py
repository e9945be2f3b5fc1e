"""The whole exchange on the three-broker cluster, two instances of every service, under a mixed
load through both gateways: a broker is killed -9, later one instance of each service, and the
killed instances are started again. Afterwards nothing is lost or doubled, money is conserved,
positions equal the fills, and every user shard, book and the read model agree with their
rebuild from the log (issue 16).

Eight symbols (the matchers split them) and two user shards (``USER_PARTITIONS=2``: the
wallets and the position engines split the users) so that every kill moves state.
"""

from __future__ import annotations

import random
import threading
import time
import urllib.error
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field

import httpx
import pytest
from confluent_kafka.admin import AdminClient

from bench.gateway_mixed import MixedFlow
from bench.matcher_rebalance import eight_symbols
from exchange.cli import fetch_digest, verify_exchange
from libs.bus.kafka import KafkaBus
from libs.messages import (
    Deleveraged,
    MatcherEvent,
    OrderAccepted,
    OrderFilled,
    OrderRejected,
    PlaceOrder,
    Side,
)
from libs.money import parse_cash
from libs.symbols import default_symbols
from libs.topics import Topics, topic_table, user_partitions
from services.index_feed.sources import default_simulation
from tests.cluster.conftest import kill_node
from tests.e2e.stack import Stack, index_feed, running
from tests.processes import ServiceProcess

USERS = 16
DEPOSIT = "100000"
RATE = 20  # requests a second, both gateways together: 15 processes share two cores
WORKERS = 8
SECONDS_BEFORE_BROKER = 10
SECONDS_BEFORE_SERVICES = 15
SECONDS_BEFORE_RESTART = 40  # to take over in: a 10 s session timeout, then recovery
SECONDS_AFTER_RESTART = 15
KILLED = ("matcher.1", "wallet.1", "positions.1", "gateway.1")
RETRY_SECONDS = 60  # a request a gateway could not answer goes to the other one, for this long


@pytest.fixture
def sharded(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Eight symbols and two user shards, for this process and the services it starts."""
    monkeypatch.setenv("USER_PARTITIONS", "2")
    monkeypatch.setenv("SYMBOLS_FILE", "")  # restored by undo; eight_symbols sets it
    eight_symbols()
    user_partitions.cache_clear()
    topic_table.cache_clear()
    yield
    monkeypatch.undo()
    default_symbols.cache_clear()
    user_partitions.cache_clear()
    topic_table.cache_clear()


@dataclass
class User:
    user_id: int
    token: str
    home: int  # the gateway it is sticky to while that one answers


@dataclass
class Load:
    """What the clients sent and were told."""

    placed: dict[tuple[int, str], int] = field(default_factory=dict)  # (user, cid) -> order
    answers: Counter = field(default_factory=Counter)
    failovers: int = 0
    lost: list[str] = field(default_factory=list)  # requests no gateway took in RETRY_SECONDS
    lock: threading.Lock = field(default_factory=threading.Lock)


def signed_up(url: str) -> User:
    with httpx.Client(base_url=url, timeout=30) as api:
        email, password = f"{uuid.uuid4().hex[:10]}@example.com", "correct horse battery"
        user_id = api.post("/signup", json={"email": email, "password": password}).json()["user_id"]
        token = api.post("/signin", json={"email": email, "password": password}).json()["token"]
        reply = api.post(
            "/deposit",
            json={"user_id": user_id, "asset": "USDT", "amount": DEPOSIT},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert reply.status_code == 200 and reply.json()["status"] == "Done", reply.text
    return User(user_id, token, home=user_id % 2)


class Traders:
    """WORKERS threads sending the mixed flow over every symbol at RATE, each user through its
    gateway; a request that gateway does not answer goes, unchanged (the same client order
    id), to the other one until one does."""

    def __init__(self, urls: list[str], users: list[User]) -> None:
        self.urls, self.users = urls, users
        self.flows = {
            name: MixedFlow(len(users), spec, seed=spec.index)
            for name, spec in default_symbols().items()
        }
        # where the index feed starts each symbol; its walk stays inside the price bands
        self.marks = dict(default_simulation(default_symbols()).start)
        self.rng = random.Random(16)
        self.load = Load()
        self.stop = threading.Event()
        self._next = threading.Lock()
        self.threads = [threading.Thread(target=self._work, daemon=True) for _ in range(WORKERS)]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def finish(self) -> Load:
        self.stop.set()
        for thread in self.threads:
            thread.join(RETRY_SECONDS + 30)
        return self.load

    def _work(self) -> None:
        clients = [httpx.Client(base_url=url, timeout=15) for url in self.urls]
        period = WORKERS / RATE
        while not self.stop.is_set():
            started = time.monotonic()
            with self._next:
                symbol = self.rng.choice(sorted(self.flows))
                order = self.flows[symbol].next(self.marks[symbol])
                cid = uuid.uuid4().hex[:16]
            user = self.users[order.user]
            body = {**order.body, "user_id": user.user_id}
            if order.path == "/place_order":
                body["client_order_id"] = cid
            reply = self._send(clients, user, order.path, body)
            if reply is not None:
                with self._next:
                    self.flows[symbol].answered(
                        order, reply.get("status", ""), reply.get("order_id")
                    )
                if order.path == "/place_order" and reply.get("order_id"):
                    with self.load.lock:
                        self.load.placed[(user.user_id, cid)] = int(reply["order_id"])
            time.sleep(max(0.0, period - (time.monotonic() - started)))
        for client in clients:
            client.close()

    def _send(self, clients: list[httpx.Client], user: User, path: str, body: dict) -> dict | None:
        deadline = time.monotonic() + RETRY_SECONDS
        gateway = user.home
        while time.monotonic() < deadline:
            try:
                reply = clients[gateway].post(
                    path, json=body, headers={"Authorization": f"Bearer {user.token}"}
                )
            except httpx.HTTPError:
                reply = None
            if reply is not None and reply.status_code < 500:
                code = reply.json().get("code", "") if reply.status_code == 400 else ""
                with self.load.lock:
                    self.load.answers[f"{path} {reply.status_code} {code}".strip()] += 1
                return reply.json() if reply.status_code in (200, 202) else None
            with self.load.lock:
                self.load.failovers += 1
            gateway = 1 - gateway  # the other gateway, the same request
            time.sleep(0.5)
        with self.load.lock:
            self.load.lost.append(f"{path} {body}")
        return None


def kill_busiest_leader(bootstrap: str, topics: Topics) -> int:
    """kill -9 the broker leading BTC-PERP's partition of orders.commands."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    meta = admin.list_topics(topics.commands, timeout=10).topics[topics.commands]
    node = meta.partitions[default_symbols()["BTC-PERP"].index].leader
    kill_node(node)
    return node


def records(bus: KafkaBus, stack: Stack, name: str) -> list[tuple[int, object]]:
    """Every record of the table's topic ``name`` on the stack, decoded, with its partition."""
    topic = stack.prefix + name
    codec = topic_table()[name].codec
    return [
        (partition, codec.decode(record.value))
        for partition in sorted(bus.end_offsets(topic))
        for record in bus.replay(topic, partition)
    ]


def test_two_of_everything_lose_a_broker_then_one_of_each_and_nothing_is_lost(
    cluster_bootstrap: str, database_url: str, redis_url: str, sharded: None
) -> None:
    stack = Stack(cluster_bootstrap, database_url, redis_url, redis_db=12, instances=2)
    feed = index_feed(stack)
    topics = Topics(stack.prefix)
    with running(stack):
        feed.start()
        try:
            users = [signed_up(stack.urls[i % 2]) for i in range(USERS)]
            traders = Traders(stack.urls, users)
            traders.start()
            time.sleep(SECONDS_BEFORE_BROKER)
            broker = kill_busiest_leader(cluster_bootstrap, topics)
            time.sleep(SECONDS_BEFORE_SERVICES)
            for name in KILLED:
                stack.services[name].kill()
            killed_at = time.monotonic()
            moved = takeovers(stack, killed_at + SECONDS_BEFORE_RESTART)
            time.sleep(max(0.0, killed_at + SECONDS_BEFORE_RESTART - time.monotonic()))
            for name in KILLED:
                stack.services[name].start()
            time.sleep(SECONDS_AFTER_RESTART)
            shares = shares_back(stack, time.monotonic() + 30)
            load = traders.finish()
        finally:
            feed.stop()
        stack.check_alive()
        print(f"broker {broker} killed; answers {dict(load.answers)}; failovers {load.failovers}")
        print(f"after the kill, the survivor ran every shard and book in: {moved}")
        assert all(seconds is not None for seconds in moved.values()), moved
        print(f"after the restart: {shares}")
        assert all(shares.values()), f"a restarted instance took no share back: {shares}"
        assert not load.lost, load.lost[:5]
        assert load.placed, "no order was placed"
        assert load.failovers > 0, "no request needed the other gateway: nothing was tested"

        every_agrees(stack)
        with closing(KafkaBus(cluster_bootstrap, client_id="chaos-check")) as bus:
            commands = records(bus, stack, "orders.commands")
            events = records(bus, stack, "matcher.events")
            nothing_lost_or_doubled(load, commands, events)
            positions_equal_fills(stack, users, events)
            for name in ("wallet.events", "positions.events"):
                numbered_once(records(bus, stack, name), name)
        money_conserved(stack, events)


def takeovers(stack: Stack, deadline: float) -> dict[str, float | None]:
    """Seconds from the kill until the surviving instance of each engine runs every user shard
    (the matcher: every book); None: not by ``deadline``."""
    started = time.monotonic()
    wanted = {
        **{f"{e}/{p}": (e, f"shard={p}") for e in ("wallet", "positions") for p in range(2)},
        **{f"matcher/{s}": ("matcher", f"symbol={s}") for s in default_symbols()},
    }
    moved: dict[str, float | None] = dict.fromkeys(wanted)
    while time.monotonic() < deadline and None in moved.values():
        for name, (engine, query) in wanted.items():
            if moved[name] is None and runs(stack.services[engine], query):
                moved[name] = round(time.monotonic() - started, 1)
        time.sleep(0.2)
    return moved


def shares_back(stack: Stack, deadline: float) -> dict[str, list[str]]:
    """What each restarted instance runs once it has a share again (by ``deadline``)."""
    wanted = {
        "wallet.1": [f"shard={p}" for p in range(2)],
        "positions.1": [f"shard={p}" for p in range(2)],
        "matcher.1": [f"symbol={s}" for s in default_symbols()],
    }
    while True:
        shares = {
            name: [q for q in queries if runs(stack.services[name], q)]
            for name, queries in wanted.items()
        }
        if all(shares.values()) or time.monotonic() > deadline:
            return shares
        time.sleep(0.5)


def runs(instance: ServiceProcess, query: str) -> bool:
    try:
        return bool(instance.get(f"/digest?{query}"))
    except (urllib.error.URLError, OSError):
        return False


def every_agrees(stack: Stack) -> None:
    """Every user shard of the wallet and the position engine, every book and the read model:
    the live digest (from whichever instance runs it) equals the rebuild from the log at the
    same offsets, as `python -m exchange verify` checks them."""
    checks = verify_exchange(stack.target(), timeout=120)
    bad = [f"{c.engine}: {c.verdict.value} {c.error}" for c in checks if not c.ok]
    assert not bad, bad
    shards = {f"{e}/{p}" for e in ("wallet", "positions") for p in range(user_partitions())}
    books = {f"matcher/{symbol}" for symbol in default_symbols()}
    assert {c.engine for c in checks} == shards | books | {"projector"}


def nothing_lost_or_doubled(load: Load, commands: list, events: list) -> None:
    placed = [m for _, m in commands if isinstance(m, PlaceOrder)]
    by_client = Counter((m.user_id, m.client_order_id) for m in placed)
    doubled = [key for key, n in by_client.items() if n > 1]
    assert not doubled, f"a client order id placed twice: {doubled[:5]}"
    commanded = {m.order_id for m in placed}
    lost = [key for key, order in load.placed.items() if order not in commanded]
    assert not lost, f"orders a gateway acknowledged that never reached a book: {lost[:5]}"
    answered = Counter(
        m.order_id
        for _, m in events
        if isinstance(m, OrderAccepted) or (isinstance(m, OrderRejected) and m.order_id)
    )
    unanswered = [order for order in load.placed.values() if order not in answered]
    assert not unanswered, f"acknowledged orders without an answer: {unanswered[:5]}"
    by_symbol: dict[str, list[MatcherEvent]] = {}
    for _, m in events:
        by_symbol.setdefault(m.symbol, []).append(m)
    for symbol, stream in by_symbol.items():
        seqs = [m.seq for m in stream]
        assert seqs == list(range(1, len(seqs) + 1)), f"{symbol}: a gap or a double in seq"
        trades = [m.trade_id for m in stream if isinstance(m, OrderFilled)]
        assert len(trades) == len(set(trades)), f"{symbol}: a trade twice"


def positions_equal_fills(stack: Stack, users: list[User], events: list) -> None:
    """Each user's positions (the read model, through a gateway) are the sum of its fills."""
    net: Counter = Counter()
    for _, m in events:
        if isinstance(m, OrderFilled):
            taker = m.qty if m.taker_side == Side.BUY else -m.qty
            net[(m.taker_user_id, m.symbol)] += taker
            net[(m.maker_user_id, m.symbol)] -= taker
        elif isinstance(m, Deleveraged):
            for match in m.matches:
                bust = match.qty if m.side == Side.BUY else -match.qty
                net[(m.user_id, m.symbol)] += bust
                net[(match.user_id, m.symbol)] -= bust
    specs = default_symbols()
    deadline = time.monotonic() + 60
    while True:
        held: Counter = Counter()
        with httpx.Client(base_url=stack.url, timeout=10) as api:
            for user in users:
                reply = api.get("/positions", headers={"Authorization": f"Bearer {user.token}"})
                for p in reply.json():
                    size = p["size"]
                    lots = specs[p["symbol"]].qty_to_lots(size.lstrip("-"))
                    held[(user.user_id, p["symbol"])] = -lots if size.startswith("-") else lots
        expected = Counter({k: v for k, v in net.items() if v})
        if held == expected or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert held == expected, {k: (held[k], expected[k]) for k in held.keys() | expected.keys()}


def numbered_once(stream: list, name: str) -> None:
    """Each partition of an engine's event topic numbers its events 1, 2, ... once each: no
    shard's takeover wrote one twice or skipped one."""
    seqs: dict[int, list[int]] = {}
    for partition, m in stream:
        seqs.setdefault(partition, []).append(m.seq)
    for partition, numbers in seqs.items():
        assert numbers == list(range(1, len(numbers) + 1)), f"{name}[{partition}]"


def money_conserved(stack: Stack, events: list) -> None:
    """Over both wallet shards: every deposit was credited once (none was withdrawn), balances
    + fees + insurance + the clearing accounts hold exactly that, every shard's ledger sums to
    zero, and the fees are those of the fills, each side's booked once by its user's shard."""
    target = stack.target()
    totals: Counter = Counter()
    for shard in range(user_partitions()):
        accounts = fetch_digest(target, "wallet", shard=shard)["accounts"]
        assert sum(accounts.values()) == 0, (shard, accounts)
        totals.update(accounts)
    deposited = USERS * parse_cash(DEPOSIT)
    assert -totals["outside"] == deposited, totals
    inside = ("user", "fees", "insurance", "funding", "pnl")
    assert sum(totals[kind] for kind in inside) == deposited, totals
    specs = default_symbols()
    fees = 0
    for _, m in events:
        if isinstance(m, OrderFilled):
            spec = specs[m.symbol]
            notional = spec.notional(m.price, m.qty)
            fees += spec.fee(notional, maker=False) + spec.fee(notional, maker=True)
    assert fees > 0, "no fill: nothing was tested"
    assert totals["fees"] == fees, (totals["fees"], fees)
