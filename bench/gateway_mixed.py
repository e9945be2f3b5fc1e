"""A mixed order flow through the gateway, on the whole stack, at fixed offered rates.

What a venue sees more than crossing pairs (bench/gateway.py): USERS users, each with a
deposit, send GTC limits within 0.5% of the mark (half of them crossing it), IOC limits,
market orders and cancels of their own resting orders, from ADDRESSES client addresses (the
gateway counts a rate limit per IP and per user in Redis). The same lean open-loop client
(bench/http_load.py): latency from when a request was due to its reply. An index feed, as
`make up` runs one, gives the mark. Then the CPU each process spends per order at CPU_RATE,
the idle stack's CPU, and the plain three-hop Kafka floor (bench/kafka_floor.py), all in the
same run.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import threading
import time
from collections import deque
from dataclasses import dataclass

from bench.http_load import (
    CONNECTION_ERROR,
    P99_BUDGET_MS,
    WARMUP_RATE,
    WARMUP_SECONDS,
    OpenLoop,
    Request,
    log,
    passes,
    saturated,
    signup,
    start_stack,
    step,
)
from bench.kafka_floor import measure as three_hop_floor
from bench.stack_cpu import (
    CpuProbe,
    RequestProbe,
    percent_of_core,
    request_table,
    table,
    total,
    verdict,
)
from libs import codes
from libs.bus import Outgoing
from libs.bus.kafka import KafkaBus
from libs.messages import OrderStatus, encode
from libs.symbols import SymbolSpec, default_symbols
from libs.topics import Topics, symbol_partition
from services.index_feed.sources import default_simulation

SYMBOL = "BTC-PERP"
USERS = 200
DEPOSIT = "100000"  # USDT each: 200 users stay well inside MAX_INSIDE
ADDRESSES = 50  # client IPs, USERS / ADDRESSES users behind each
CONNECTIONS_PER_ADDRESS = 4
MIX = (("limit", 70), ("ioc", 15), ("market", 5), ("cancel", 10))  # percent of the requests
BAND_BPS = 50  # limit and IOC prices within 0.5% of the mark
RESTING_KEPT = 32  # order ids a user remembers as resting (the newest; older ones fill)
RATES = (25, 50, 100, 200, 300, 400, 500, 750, 1000, 1500, 2000)
STEP_SECONDS = 8
SETTLE_SECONDS = 10  # after a step, the engines and the projector drain what it left behind
IDLE_SECONDS = 10
# The idle stack is measured in windows of IDLE_SECONDS until the broker's JIT compiler uses
# under IDLE_JIT_QUIET_PERCENT of a core in one (a stack idle for a while has compiled its hot
# paths; right after the warm-up it is still compiling), at most IDLE_WINDOWS of them.
IDLE_JIT_QUIET_PERCENT = 1.0
IDLE_WINDOWS = 4
CPU_RATE = 100  # the step whose CPU is shown process by process; also the latency targets'
TARGET_P50_MS, TARGET_P99_MS = 10.0, 50.0  # at CPU_RATE (issue 12)
BROKER_RATE, BROKER_BUDGET_MS = 200, 1.0  # broker CPU per order at that rate (issue 12)
FEED_INTERVAL = 1.0  # seconds between index rounds, as `make up`'s feed


# --- the flow (pure: a seeded RNG and what the replies said; no I/O, no clock) ------------


@dataclass(frozen=True)
class Order:
    kind: str  # one of MIX
    user: int
    path: str
    body: dict
    crossing: bool = False  # priced through the mark (a limit or IOC)


class MixedFlow:
    """The next request of the mixed flow, from a seeded RNG and the orders known to rest.

    A cancel names the newest order its user was told rests (``New`` or ``PartiallyFilled``)
    and not cancelled yet; when no user has one, a limit goes instead.
    """

    def __init__(self, users: int, spec: SymbolSpec, seed: int = 7) -> None:
        self.users, self.spec = users, spec
        self.rng = random.Random(seed)
        self.resting: list[deque[int]] = [deque(maxlen=RESTING_KEPT) for _ in range(users)]
        self.holders: set[int] = set()

    def next(self, mark: int) -> Order:
        """The next request, with ``mark`` the mark price in ticks."""
        draw, kind = self.rng.randrange(100), MIX[-1][0]
        for name, percent in MIX:
            if draw < percent:
                kind = name
                break
            draw -= percent
        if kind == "cancel":
            if self.holders:
                return self._cancel()
            kind = "limit"
        user = self.rng.randrange(self.users)
        side = self.rng.choice(("Buy", "Sell"))
        body = {
            "symbol": self.spec.name,
            "side": side,
            "order_type": "Market" if kind == "market" else "Limit",
            "quantity": self.spec.lots_to_qty(self._lots(mark)),
            "leverage": "10",
        }
        if kind == "market":
            return Order(kind, user, "/place_order", body)
        crossing = kind == "ioc" or self.rng.random() < 0.5
        offset = self.rng.randint(1, max(1, mark * BAND_BPS // 10_000))
        through = offset if crossing else -offset  # a buy through the mark pays more
        price = mark + through if side == "Buy" else mark - through
        body |= {"price": self.spec.ticks_to_price(price)}
        body |= {"time_in_force": "IOC" if kind == "ioc" else "GTC"}
        return Order(kind, user, "/place_order", body, crossing)

    def _lots(self, mark: int) -> int:
        lowest = mark - mark * BAND_BPS // 10_000
        least = -(-self.spec.min_notional // self.spec.notional(lowest, 1))  # ceiling
        return self.rng.randint(least, 3 * least)

    def _cancel(self) -> Order:
        user = self.rng.choice(sorted(self.holders))
        order_id = self.resting[user].pop()
        if not self.resting[user]:
            self.holders.discard(user)
        body = {"symbol": self.spec.name, "order_id": order_id}
        return Order("cancel", user, "/cancel", body)

    def answered(self, order: Order, status: str, order_id: int | None) -> None:
        """Learn from a reply: a limit that rests can be cancelled later."""
        if (
            order.kind == "limit"
            and status in (OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED)
            and order_id
        ):
            self.resting[order.user].append(order_id)
            self.holders.add(order.user)


def label(kind: str, status: int, reply: dict) -> str:
    """Name an outcome: the request's kind, the HTTP status, the order status and/or code."""
    parts = [kind, str(status)]
    parts += [str(reply[k]) for k in ("status", "code") if k in reply]
    return " ".join(parts)


EXPECTED_MISS = f"cancel 400 {codes.UNKNOWN_ORDER}"  # the order filled before its cancel arrived


def tally(outcomes: dict[str, int]) -> dict[str, int]:
    """Replies that were 202 (Pending), errors (4xx, 5xx, a connection lost; a cancel that
    found its order filled is not one), and such cancels."""
    counts = {"pending": 0, "errors": 0, "cancel_missed": 0}
    for name, n in outcomes.items():
        status = name.split()[1] if name != CONNECTION_ERROR else "error"
        if name == EXPECTED_MISS:
            counts["cancel_missed"] += n
        elif status == "202":
            counts["pending"] += n
        elif not (status.isdigit() and int(status) < 400):
            counts["errors"] += n
    return counts


# --- the I/O around it ---------------------------------------------------------------------


def address(user: int) -> str:
    """The loopback client address user ``user`` sends from."""
    n = user % ADDRESSES
    return f"127.77.{n // 250}.{n % 250 + 1}"


@dataclass(frozen=True)
class FlowRequest(Request):
    order: Order | None = None


class IndexFeed(threading.Thread):
    """The stack's index feed (as services.index_feed --source sim, on the stack's topic
    prefix): a round of ticks every FEED_INTERVAL; keeps the latest price of SYMBOL."""

    def __init__(self, bootstrap: str, prefix: str) -> None:
        super().__init__(daemon=True)
        specs = default_symbols()
        self.topic = Topics(prefix).index_prices
        self.ticks = default_simulation(specs).ticks(time.time_ns(), int(FEED_INTERVAL * 1e9))
        self.per_round = len(specs)
        self.producer = KafkaBus(bootstrap, client_id="bench-index-feed").producer()
        self.mark = 0
        self.stopped = threading.Event()
        self._round()

    def _round(self) -> None:
        for _ in range(self.per_round):
            tick = next(self.ticks)
            key = tick.symbol.encode()
            partition = symbol_partition(tick.symbol)
            self.producer.produce(Outgoing(self.topic, encode(tick), key, partition))
            if tick.symbol == SYMBOL:
                self.mark = tick.price
        self.producer.flush()

    def run(self) -> None:
        while not self.stopped.wait(FEED_INTERVAL):
            self._round()

    def stop(self) -> None:
        self.stopped.set()
        self.join(10)
        self.producer.close()


class MixedLoad:
    def __init__(self, url: str, tokens: list[str], feed: IndexFeed) -> None:
        self.loop = OpenLoop(url, CONNECTIONS_PER_ADDRESS)
        self.tokens, self.feed = tokens, feed
        self.flow = MixedFlow(len(tokens), default_symbols()[SYMBOL])

    def request(self, _i: int) -> FlowRequest:
        order = self.flow.next(self.feed.mark)
        body = json.dumps(order.body).encode()
        return FlowRequest(order.path, self.tokens[order.user], body, address(order.user), order)

    def classify(self, request: FlowRequest, status: int, body: bytes) -> str:
        assert request.order is not None
        try:
            reply = json.loads(body)
        except ValueError:
            reply = {}
        reply = reply if isinstance(reply, dict) else {}
        self.flow.answered(request.order, str(reply.get("status")), reply.get("order_id"))
        return label(request.order.kind, status, reply)

    async def run(self, rate: float, seconds: float) -> dict:
        return await self.loop.run(rate, seconds, self.request, self.classify)


@dataclass(frozen=True)
class Idle:
    """The idle stack's CPU by process and its broker's JIT compiler's (% of a core) over the
    last of ``windows`` windows of IDLE_SECONDS."""

    cpu: dict
    jit: float | None
    windows: int


async def idle_stack(probe: CpuProbe) -> Idle:
    """The stack's CPU with no orders, once the broker has stopped compiling (see IDLE_WINDOWS)."""
    for window in range(1, IDLE_WINDOWS + 1):
        before, compiled = probe.read(), probe.compiling()
        await asyncio.sleep(IDLE_SECONDS)
        cpu = percent_of_core(before, probe.read(), IDLE_SECONDS)
        jit = percent_of_core(compiled, probe.compiling(), IDLE_SECONDS)["kafka broker"]
        log(f"idle stack, window {window}: {total(cpu):.1f}% of one core, JIT {_percent(jit)}")
        if jit is None or jit < IDLE_JIT_QUIET_PERCENT or window == IDLE_WINDOWS:
            return Idle(cpu, jit, window)
    raise AssertionError("unreachable: the last window returns")


async def measure(
    url: str, load: MixedLoad, probe: CpuProbe, requests: RequestProbe
) -> tuple[Idle, list[dict]]:
    """The idle stack, then the rates from low to high until past saturation (never stopping
    before CPU_RATE)."""
    await load.run(WARMUP_RATE, WARMUP_SECONDS)
    await asyncio.sleep(SETTLE_SECONDS)
    idle = await idle_stack(probe)
    steps = []
    for rate in RATES:
        steps.append(await step(load, url, probe, rate, STEP_SECONDS, SETTLE_SECONDS, requests))
        steps[-1] |= tally(steps[-1]["statuses"])
        if rate >= CPU_RATE and saturated(steps[-1]):
            break
    return idle, steps


def run() -> str:
    bootstrap = os.environ["KAFKA_BOOTSTRAP_SERVERS"]
    stack = start_stack()
    feed = IndexFeed(bootstrap, stack.prefix)
    feed.start()
    try:
        tokens = asyncio.run(signup(stack, USERS, DEPOSIT))
        import uvloop

        load = MixedLoad(stack.url, tokens, feed)
        probes = CpuProbe.of_stack(stack), RequestProbe.of_stack(stack)
        idle, steps = uvloop.run(measure(stack.url, load, *probes))
    finally:
        feed.stop()
        stack.stop()
    floor = three_hop_floor(bootstrap)
    return render(idle, steps, floor, three_hop_floor(bootstrap, rate=BROKER_RATE))


def render(idle: Idle, steps: list[dict], floor: dict, broker_floor: dict | None = None) -> str:
    """The section; ``floor``: the three plain hops at their usual rate, ``broker_floor``: at
    BROKER_RATE (what the broker spends per record there with no services at all)."""
    best = max((r["rate"] for r in steps if passes(r)), default=0)
    at = next((r for r in steps if r["rate"] == CPU_RATE), None)
    outcomes: dict[str, int] = {}
    for result in steps:
        for name, n in result["statuses"].items():
            outcomes[name] = outcomes.get(name, 0) + n
    header = [
        "| offered/s | achieved/s | p50 ms | p90 ms | p99 ms | max ms | 202 | errors | "
        "CPU ms/order | broker CPU ms/order | stolen |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    lines = [
        "## Gateway, mixed workload",
        "",
        f"{USERS} users, each with a deposit, from {ADDRESSES} client addresses "
        f"({CONNECTIONS_PER_ADDRESS} keep-alive connections at most each), every service "
        "running on this machine (tests/e2e/stack.py, plus an index feed for the mark) and "
        "the load client too. The flow: "
        + ", ".join(f"{p}% {k}" for k, p in MIX)
        + f" (limits GTC within {BAND_BPS / 100:.1f}% of the mark, half of them crossing; "
        "IOC limits crossing; cancels of the user's own resting orders). Open loop, "
        f"{STEP_SECONDS} s per rate, {SETTLE_SECONDS} s apart, from low rates up until past "
        "saturation; latency from when each request was due to its reply. CPU: each "
        "process's CPU time over the step's orders. Stolen: the share of the machine's CPU "
        "time the hypervisor gave to others during the step (/proc/stat; a step that lost "
        "a fifth ran on a smaller machine). `bench/gateway_mixed.py`.",
        "",
        *header,
        *(row(r) for r in steps),
        "",
        f"Highest sustained rate (p99 <= {P99_BUDGET_MS:.0f} ms, at least 95% of the offered "
        f"rate achieved): **{best:,} orders/s** (issue 12: at least 500).",
    ]
    if at is not None:
        lines += [
            f"At {CPU_RATE} orders/s: p50 {at['p50']:.1f} ms "
            f"({verdict(at['p50'] <= TARGET_P50_MS)} <= {TARGET_P50_MS:.0f} ms), "
            f"p99 {at['p99']:.1f} ms "
            f"({verdict(at['p99'] <= TARGET_P99_MS)} <= {TARGET_P99_MS:.0f} ms); "
            f"p50 {at['p50'] / floor['p50']:.1f}x the three-hop Kafka floor below.",
        ]
    broker = next((r["cpu"].get("kafka broker") for r in steps if r["rate"] == BROKER_RATE), None)
    if broker is not None:
        jit = next(r["broker_jit"] for r in steps if r["rate"] == BROKER_RATE)
        lines += [
            f"Broker CPU per order at {BROKER_RATE} orders/s: {broker:.2f} ms "
            f"({verdict(broker <= BROKER_BUDGET_MS)} <= {BROKER_BUDGET_MS:.0f} ms), of which "
            f"its JIT compiler {_ms(jit)} ms."
            + (
                ""
                if broker_floor is None
                else f" The three plain Kafka hops of the floor below, at {broker_floor['rate']}"
                f" records/s in the same run: {_ms(broker_floor['cpu'].get('kafka broker'))} ms "
                "of broker CPU per record."
            ),
        ]
    lines += [
        "",
        "Outcomes over every step (request kind, HTTP status, order status or error code): "
        + ", ".join(f"{name} {n:,}" for name, n in sorted(outcomes.items()))
        + ". A cancel answered -2011 found its order filled meanwhile (not an error).",
        "",
    ]
    shown = [r for r in steps if r["rate"] in (CPU_RATE, best)]
    for result in shown:
        lines += _cpu_block(result)
    lines += [
        f"The idle stack (no orders, the index feed running; {IDLE_SECONDS} s windows after "
        f"the warm-up until the broker's JIT compiler used under {IDLE_JIT_QUIET_PERCENT:.0f}% "
        f"of a core, at most {IDLE_WINDOWS}; window {idle.windows} shown): "
        f"**{total(idle.cpu):.1f}% of one core** in all (issue 12: at most 10%), of which the "
        f"broker's JIT compiler {_percent(idle.jit)}.",
        "",
        *table(idle.cpu, "% of one core", digits=1),
        "",
        f"The plain Kafka floor, measured in the same run (`bench/kafka_floor.py`): a record "
        f"relayed through three hops (idempotent producers, acks=all, one process per hop, "
        f"linger.ms 0), {floor['rate']} records/s for {floor['records'] // floor['rate']} s: "
        f"p50 **{floor['p50']:.2f} ms**, p90 {floor['p90']:.2f} ms, p99 {floor['p99']:.2f} ms"
        f" ({floor['lost']} lost); broker CPU {_ms(floor['cpu'].get('kafka broker'))} ms "
        f"per record, {total(floor['cpu']):.2f} ms in all.",
    ]
    return "\n".join(lines)


def _cpu_block(result: dict) -> list[str]:
    b = result["breakdown"]
    rate = f"{result['rate']:,.0f} orders/s"
    return [
        f"CPU per order at {rate} (achieved {result['achieved']:,.0f}/s), by process, in ms "
        f"of CPU time on this {os.cpu_count()}-core machine; idle work (consumers polling, "
        "the index feed) is spread over the orders. The load client holds the index feed (a "
        "few ticks a second).",
        "",
        *table(result["cpu"], "CPU ms per order"),
        "",
        f"Of the broker's, its JIT compiler threads (still compiling hot paths after the "
        f"warm-up): {_ms(result.get('broker_jit'))} ms per order.",
        "",
        f"Where the time of a `/place_order` goes at {rate} (means, from the gateway's own "
        f"histograms): whole request {b['http']:.1f} ms, of which produce to "
        f"`orders.requests` until acknowledged {b['produce']:.1f} ms and from there to the "
        f"matcher's answer {b['answer']:.1f} ms.",
        "",
        f"Kafka requests per order at {rate}, by the process that sent them (librdkafka's "
        "own counts, `kafka_client_requests_total` on each service's `/metrics`; from the "
        f"step's start to {SETTLE_SECONDS} s after it, so the drain and some idle traffic "
        "count too). The broker's CPU goes by the request: fetches are the consumers waking "
        "for new records, one response per consumer per batch a topic receives.",
        "",
        *request_table(result.get("requests", {})),
        "",
    ]


def _percent(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.1f}%"


def _ms(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.2f}"


def row(result: dict) -> str:
    broker = result["cpu"].get("kafka broker")
    return (
        f"| {result['rate']:,.0f} | {result['achieved']:,.0f} | {result['p50']:.1f} | "
        f"{result['p90']:.1f} | {result['p99']:.1f} | {result['max']:.1f} | "
        f"{result['pending']} | {result['errors']} | {total(result['cpu']):.2f} | "
        f"{_ms(broker)} | {result['steal']:.0f}% |"
    )


if __name__ == "__main__":
    print(run())
