"""Fixtures of the position engine's integration tests: private topics, a matcher pump and
``python -m services.positions`` as a real process (started, killed with -9, restarted)."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator

import pytest

from libs.bus import Outgoing
from libs.bus.kafka import KafkaBus
from libs.messages import (
    ANY,
    AccountUpdated,
    Cause,
    IndexPriceTick,
    OrderType,
    PlaceOrder,
    Side,
    TimeInForce,
    encode,
)
from libs.symbols import get_symbol
from libs.topics import Topics, exchange_topics, symbol_partition, user_partition
from tests.integration.wallet.matcher_pump import MatcherPump
from tests.processes import ServiceProcess, free_port

SYMBOL = "BTC-PERP"
SPEC = get_symbol(SYMBOL)
NS = 1_000_000_000


class EngineProcess(ServiceProcess):
    """``python -m services.positions`` on a private topic set."""

    def __init__(self, bootstrap: str, redis_url: str, prefix: str, **env: object) -> None:
        port = free_port()
        super().__init__(
            "positions",
            "services.positions",
            {
                **os.environ,
                "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
                "REDIS_URL": redis_url,
                "TOPIC_PREFIX": prefix,
                "METRICS_PORT": str(port),
                "POSITIONS_GROUP_ID": f"{prefix}positions",
                "POSITIONS_TRANSACTIONAL_ID": f"{prefix}positions-0",
                **{k.upper(): str(v) for k, v in env.items()},
            },
            port=port,
            ready_line=b"positions ready",
            log_name=f"{prefix}positions",
        )


class MatcherProcess(ServiceProcess):
    """``python -m services.matcher`` (core inline) owning every symbol of the private topics;
    started when made."""

    def __init__(self, bootstrap: str, prefix: str) -> None:
        port = free_port()
        super().__init__(
            "matcher",
            "services.matcher",
            {
                **os.environ,
                "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
                "TOPIC_PREFIX": prefix,
                "MATCHER_INSTANCE": f"{prefix}matcher-0",
                "MATCHER_GROUP_ID": f"{prefix}matcher",
                "MATCHER_SYMBOLS": "BTC-PERP,ETH-PERP,SOL-PERP",
                "METRICS_PORT": str(port),
                "MATCHER_INLINE": "true",
            },
            port=port,
            ready_url=f"http://127.0.0.1:{port}/metrics",
            log_name=f"{prefix}matcher",
        )
        self.start()


class Stack:
    """Private topics, a producer for the other engines' messages, a matcher (the in-test pump
    or the real matcher service) and the engine."""

    def __init__(
        self, bootstrap: str, redis_url: str, matcher: str = "pump", **env: object
    ) -> None:
        self.prefix = f"p{uuid.uuid4().hex[:10]}."
        self.topics = Topics(self.prefix)
        self.bus = KafkaBus(bootstrap)
        for topic in exchange_topics():
            self.bus.create_topic(self.prefix + topic.name, topic.partitions, topic.config)
        self.producer = self.bus.producer()
        self.pump: MatcherPump | None = None
        self.matcher: MatcherProcess | None = None
        if matcher == "pump":
            self.pump = MatcherPump(self.bus, self.topics.commands, self.topics.matcher_events)
        else:
            self.matcher = MatcherProcess(bootstrap, self.prefix)
        self.engine = EngineProcess(bootstrap, redis_url, self.prefix, **env)
        self.wallet_seq: dict[int, int] = {}
        self.redis_url = redis_url

    # -- what the other engines would produce ---------------------------------------------
    def order(
        self,
        oid: int,
        user: int,
        side: str,
        price: str,
        qty: str,
        tif: TimeInForce = TimeInForce.GTC,
    ) -> None:
        command = PlaceOrder(
            request_id=f"r{oid}",
            order_id=oid,
            user_id=user,
            symbol=SYMBOL,
            side=Side(side),
            order_type=OrderType.LIMIT,
            qty=SPEC.qty_to_lots(qty),
            price=SPEC.price_to_ticks(price),
            tif=tif,
        )
        self.producer.produce(
            Outgoing(
                self.topics.commands, encode(command), SYMBOL.encode(), symbol_partition(SYMBOL)
            )
        )

    def balance(self, user: int, cash: int) -> None:
        partition = user_partition(user)
        seq = self.wallet_seq[partition] = self.wallet_seq.get(partition, 0) + 1
        event = AccountUpdated(
            seq=seq,
            cause=Cause("orders.requests", 0, 0),
            user_id=user,
            balance=cash,
            holds=0,
            available=cash,
        )
        self.producer.produce(
            Outgoing(self.topics.wallet_events, encode(event), str(user).encode(), partition)
        )

    def index(self, price: str, ts: int) -> None:
        tick = IndexPriceTick(symbol=SYMBOL, price=SPEC.price_to_ticks(price), ts=ts)
        self.producer.produce(
            Outgoing(
                self.topics.index_prices, encode(tick), SYMBOL.encode(), symbol_partition(SYMBOL)
            )
        )

    def flush(self) -> None:
        self.producer.flush()

    # -- reading back ----------------------------------------------------------------------
    def read(self, topic: str) -> list:
        return [
            ANY.decode(r.value)
            for p in sorted(self.bus.end_offsets(topic))
            for r in self.bus.replay(topic, p)
        ]

    def matcher_events(self) -> list:
        """Every matcher event so far (from the pump's memory, or read back from the topic)."""
        if self.pump is not None:
            return list(self.pump.events)
        return self.read(self.topics.matcher_events)

    def _matcher_progress(self) -> int:
        if self.pump is not None:
            return len(self.pump.events)
        return sum(self.bus.end_offsets(self.topics.matcher_events).values())

    def events(self, kind: type | None = None) -> list:
        return [
            e for e in self.read(self.topics.positions_events) if kind is None or type(e) is kind
        ]

    def wait_for(self, predicate, timeout: float = 60, what: str = "condition") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}")

    def quiet(self, timeout: float = 90) -> dict:
        """Wait until the engine applied every input and the pump has nothing left."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ends = {}
            for topic in (
                self.topics.wallet_events,
                self.topics.matcher_events,
                self.topics.index_prices,
            ):
                for p, end in self.bus.end_offsets(topic).items():
                    ends[f"{topic}:{p}"] = end
            try:
                state = self.engine.digest()
            except OSError:
                time.sleep(0.5)
                continue
            # a transactional producer's commit marker takes an offset the engine never
            # applies: one offset short is caught up, if nothing moves for a while
            behind = {k: e for k, e in ends.items() if e > state["offsets"].get(k, 0) + 1}
            if not behind:
                events = self._matcher_progress()
                time.sleep(1.5)
                if self.engine.digest() == state and self._matcher_progress() == events:
                    return state
            time.sleep(0.3)
        raise AssertionError("the position engine did not catch up")

    def close(self) -> None:
        self.engine.stop()
        if self.pump is not None:
            self.pump.stop()
        if self.matcher is not None:
            self.matcher.stop()


@pytest.fixture
def make_stack(kafka_bootstrap: str, redis_url: str) -> Iterator:
    stacks: list[Stack] = []

    def make(matcher: str = "pump", **env: object) -> Stack:
        stack = Stack(kafka_bootstrap, redis_url, matcher, **env)
        if stack.pump is not None:
            stack.pump.start()
        stacks.append(stack)
        return stack

    yield make
    for stack in stacks:
        stack.close()
