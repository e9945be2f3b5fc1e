"""Wallet throughput: ledger operations in process, and requests through Kafka.

``python -m bench.wallet`` prints the Markdown section; ``run()`` returns it.

- **In process**: a seeded flow (deposits, limit orders around a drifting mid, cancels) is run
  once through the wallet core and matching cores to record every input the wallet sees
  (requests and the matcher events they cause); the timed passes re-apply those inputs to a
  fresh ``WalletCore``. Reported: inputs/s, ledger entries/s and pre-trade checks/s.
- **Through Kafka** (when ``KAFKA_BOOTSTRAP_SERVERS`` is set): the ``WalletService`` under
  ``JournalLoop`` on private topics; requests (deposits and resting limit orders) are
  produced up front, then timed from the first poll until every one is committed.
"""

from __future__ import annotations

import gc
import os
import random
import time
import uuid

from libs.messages import (
    CancelOrder,
    Cause,
    Deposit,
    OrderType,
    PlaceOrder,
    Side,
    encode,
)
from libs.money import CASH_ONE
from libs.symbols import get_symbol
from services.matcher.core import MatchingCore
from services.wallet.core import WalletCore

SEED = 20261125
REQUESTS = 50_000
USERS = 1_000
KAFKA_REQUESTS = 20_000
ROUNDS = 3


def record_inputs(n: int = REQUESTS, seed: int = SEED) -> list[tuple[Cause, object]]:
    """Return every (cause, input) the wallet applies for a seeded flow of ``n`` requests."""
    spec = get_symbol("BTC-PERP")
    rng = random.Random(seed)
    wallet, book = WalletCore(), MatchingCore(spec)
    inputs: list[tuple[Cause, object]] = []
    offset, book_offset, mid, open_ids = 0, 0, 500_000, []

    def apply(message: object, topic: str) -> list:
        nonlocal offset
        offset += 1
        cause = Cause(topic, 0, offset)
        inputs.append((cause, message))
        return wallet.apply(cause, message)

    for user in range(1, USERS + 1):
        apply(Deposit(request_id="", user_id=user, amount=100_000 * CASH_ONE), "orders.requests")
    for oid in range(1, n - USERS + 1):
        mid += rng.choice((-1, 0, 1))
        user = rng.randint(1, USERS)
        if open_ids and rng.random() < 0.3:
            victim, owner = open_ids.pop(rng.randrange(len(open_ids)))
            request = CancelOrder(request_id="", user_id=owner, symbol=spec.name, order_id=victim)
        else:
            side = rng.choice((Side.BUY, Side.SELL))
            price = mid + rng.randint(-20, 20) * (1 if side is Side.BUY else -1)
            request = PlaceOrder(
                request_id=f"p{oid}",
                order_id=oid,
                user_id=user,
                symbol=spec.name,
                side=side,
                order_type=OrderType.LIMIT,
                qty=rng.randint(1, 50),
                price=price,
            )
            open_ids.append((oid, user))
        for command in apply(request, "orders.requests"):
            if isinstance(command, (PlaceOrder, CancelOrder)):
                book_offset += 1
                for event in book.process_batch([(book_offset, command)]):
                    apply(event, "matcher.events")
    return inputs


def in_process() -> str:
    inputs = record_inputs()
    checks = sum(isinstance(m, PlaceOrder) for _, m in inputs)
    best, entries = float("inf"), 0
    for _ in range(ROUNDS):
        core = WalletCore()
        gc.collect()
        gc.disable()
        start = time.perf_counter()
        for cause, message in inputs:
            core.apply(cause, message)
        elapsed = time.perf_counter() - start
        gc.enable()
        best, entries = min(best, elapsed), core.ledger.entry_id
    return (
        f"| in process | {len(inputs):,} inputs ({checks:,} pre-trade checks, {entries:,} "
        f"ledger entries) | {len(inputs) / best:,.0f} inputs/s | {entries / best:,.0f} "
        f"entries/s, {checks / best:,.0f} checks/s |"
    )


def through_kafka(bootstrap: str, n: int = KAFKA_REQUESTS) -> str:
    from libs.bus import JournalLoop, Outgoing
    from libs.bus.kafka import KafkaBus
    from libs.topics import Topics, exchange_topics, user_partition
    from services.wallet.service import WalletService

    prefix = f"bench{uuid.uuid4().hex[:8]}."
    bus = KafkaBus(bootstrap)
    for topic in exchange_topics():
        bus.create_topic(prefix + topic.name, topic.partitions, topic.config)
    topics = Topics(prefix)
    producer = bus.producer()
    users = 64
    for user in range(users):
        deposit = Deposit(request_id="", user_id=user, amount=10**6 * CASH_ONE)
        producer.produce(Outgoing(topics.requests, encode(deposit), None, user_partition(user)))
    for oid in range(1, n - users + 1):
        user = oid % users
        order = PlaceOrder(
            request_id=f"p{oid}",
            order_id=oid,
            user_id=user,
            symbol="BTC-PERP",
            side=Side.BUY,
            order_type=OrderType.LIMIT,
            qty=1,
            price=400_000 + oid % 1000,
        )
        producer.produce(Outgoing(topics.requests, encode(order), None, user_partition(user)))
    producer.flush()
    service = WalletService(bus, topics, snapshot_every=5000)
    loop = JournalLoop(
        bus,
        service,
        group_id=f"{prefix}wallet",
        transactional_id=f"{prefix}wallet-0",
        partitions=service.inputs,
        max_batch=1000,
    )
    done, start = 0, time.perf_counter()
    deadline = start + 300
    while done < n and time.perf_counter() < deadline:
        done += loop.run_once()
    elapsed = time.perf_counter() - start
    loop.close()
    return (
        f"| through Kafka | {done:,} requests, turns of up to 1,000, snapshot every "
        f"5,000 | {done / elapsed:,.0f} requests/s | {loop.stats.turns:,} journaled turns, "
        f"{loop.stats.commits:,} commits in {elapsed:.1f} s |"
    )


def run() -> str:
    rows = [in_process()]
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    rows.append(
        through_kafka(bootstrap)
        if bootstrap
        else "| through Kafka | skipped: KAFKA_BOOTSTRAP_SERVERS not set | | |"
    )
    return "\n".join(
        [
            "## Wallet",
            "",
            "`bench/wallet.py`: the wallet core re-applying a recorded flow (deposits, limit "
            f"orders around a drifting mid, cancels; {USERS:,} users; best of {ROUNDS}), and the "
            "wallet service running requests through Kafka (JournalLoop: each turn's journal "
            "entry rides in its outputs' headers).",
            "",
            "| pass | work | throughput | detail |",
            "| --- | --- | --- | --- |",
            *rows,
            "",
        ]
    )


if __name__ == "__main__":
    print(run())
