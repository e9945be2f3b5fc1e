"""The wallet, matching and position cores wired as the topics wire them, with Kafka's freedoms.

Every topic partition is an append-only log and every consumer reads each partition it follows
in order, at its own pace: which consumer moves next, and how many commands the matcher takes as
one batch, is up to a random scheduler. That is all Kafka promises (order inside a partition,
nothing across partitions), so whatever holds here for every schedule holds for the services.

- the wallet reads ``orders.requests``, ``matcher.events`` and ``positions.events``;
- one matching core per symbol reads its ``orders.commands`` partition, in random batch cuts;
- the position engine reads ``matcher.events``, ``wallet.events`` and ``index.prices``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from libs.messages import (
    Cause,
    IndexPriceTick,
    MatcherCommand,
    MatcherEvent,
    Message,
    PositionEvent,
    WalletEvent,
)
from libs.topics import symbol_partition, user_partition
from services.matcher.core import MatchingCore
from services.positions.core import PositionsCore
from services.wallet.core import WalletCore
from services.wallet.core.engine import _user_of

REQUESTS, COMMANDS = "orders.requests", "orders.commands"
MATCHER, WALLET, POSITIONS, INDEX = (
    "matcher.events",
    "wallet.events",
    "positions.events",
    "index.prices",
)
MAX_BATCH = 12  # small enough that a step sees several cuts, big enough to mix users


@dataclass
class Consumer:
    """One service instance: the partitions it follows and how far it has read each."""

    name: str
    topics: tuple[str, ...]
    partition: int | None = None  # a matcher follows its symbol's partition only
    read: dict[tuple[str, int], int] = field(default_factory=dict)


class Network:
    """The exchange's cores and topics in one process, driven by a seeded scheduler."""

    def __init__(self, rng: random.Random, *, funding_interval_seconds: int = 10) -> None:
        self.rng = rng
        self.wallet = WalletCore()
        self.specs = self.wallet.symbols
        self.books = {name: MatchingCore(spec) for name, spec in self.specs.items()}
        self.positions = PositionsCore(
            self.specs, funding_interval_seconds=funding_interval_seconds
        )
        self.logs: dict[tuple[str, int], list[Message]] = {}
        self.consumers = [Consumer("wallet", (REQUESTS, MATCHER, POSITIONS))]
        self.consumers += [
            Consumer(f"matcher:{name}", (COMMANDS,), spec.index)
            for name, spec in self.specs.items()
        ]
        self.consumers.append(Consumer("positions", (MATCHER, WALLET, INDEX)))
        self.batches: dict[str, list[list[int]]] = {name: [] for name in self.specs}

    # -- producing ---------------------------------------------------------------------------
    def append(self, topic: str, partition: int, message: Message) -> int:
        log = self.logs.setdefault((topic, partition), [])
        log.append(message)
        for consumer in self.consumers:
            if topic in consumer.topics and consumer.partition in (None, partition):
                consumer.read.setdefault((topic, partition), 0)
        return len(log) - 1

    def request(self, message: Message) -> None:
        self.append(REQUESTS, user_partition(message.user_id), message)  # type: ignore[attr-defined]

    def index(self, symbol: str, price: int, ts: int) -> None:
        self.append(
            INDEX, symbol_partition(symbol), IndexPriceTick(symbol=symbol, price=price, ts=ts)
        )

    def _route(self, messages: list[Message]) -> None:
        for m in messages:
            if isinstance(m, MatcherCommand):
                self.append(COMMANDS, symbol_partition(m.symbol), m)  # type: ignore[attr-defined]
            elif isinstance(m, WalletEvent):
                self.append(WALLET, user_partition(_user_of(m)), m)
            else:
                raise AssertionError(f"the wallet produced {m!r}")

    def _route_positions(self, outs: list) -> None:
        for out in outs:
            m = out.message
            if isinstance(m, MatcherCommand):
                self.append(COMMANDS, out.partition, m)
            elif isinstance(m, PositionEvent):
                self.append(POSITIONS, out.partition, m)
            else:
                raise AssertionError(f"the position engine produced {m!r}")

    # -- consuming ---------------------------------------------------------------------------
    def _pending(self, consumer: Consumer) -> list[tuple[str, int]]:
        return [tp for tp, read in consumer.read.items() if read < len(self.logs.get(tp, ()))]

    def settle(self, max_moves: int = 200_000) -> None:
        """Deliver everything produced, in a random schedule, until nothing is left to read."""
        for _ in range(max_moves):
            ready = [(c, tp) for c in self.consumers for tp in self._pending(c)]
            if not ready:
                return
            consumer, tp = self.rng.choice(ready)
            self._deliver(consumer, tp)
        raise AssertionError("the exchange did not settle: a feedback loop between engines?")

    def _deliver(self, consumer: Consumer, tp: tuple[str, int]) -> None:
        topic, partition = tp
        log, start = self.logs[tp], consumer.read[tp]
        if consumer.name.startswith("matcher:"):
            size = self.rng.randint(1, min(MAX_BATCH, len(log) - start))
            batch = [(offset, log[offset]) for offset in range(start, start + size)]
            consumer.read[tp] = start + size
            symbol = consumer.name.split(":", 1)[1]
            self.batches[symbol].append([offset for offset, _ in batch])
            for event in self.books[symbol].process_batch(batch):  # type: ignore[arg-type]
                self.append(MATCHER, partition, event)
            return
        consumer.read[tp] = start + 1
        message, cause = log[start], Cause(topic, partition, start)
        if consumer.name == "wallet":
            self._route(self.wallet.apply(cause, message))
        elif topic == MATCHER:
            self._route_positions(self.positions.apply_matcher(message, cause))  # type: ignore[arg-type]
        elif topic == WALLET:
            self._route_positions(self.positions.apply_wallet(message, cause))  # type: ignore[arg-type]
        else:
            self._route_positions(self.positions.apply_index(message, cause))  # type: ignore[arg-type]

    # -- reading the logs --------------------------------------------------------------------
    def log(self, topic: str, partition: int) -> list[Message]:
        return self.logs.get((topic, partition), [])

    def commands(self, symbol: str) -> list[Message]:
        return self.log(COMMANDS, symbol_partition(symbol))

    def matcher_events(self, symbol: str) -> list[MatcherEvent]:
        return self.log(MATCHER, symbol_partition(symbol))  # type: ignore[return-value]

    def topic(self, topic: str) -> list[Message]:
        return [m for (t, _), log in sorted(self.logs.items()) if t == topic for m in log]
