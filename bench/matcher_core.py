"""Matching core throughput and latency, next to pyorderbook and liquibook on the same flows.

``python -m bench.matcher_core`` prints the Markdown section; ``run()`` returns it.
Two seeded flows in the flow tool's format (``services.matcher.flow``): a mixed flow (limit
orders around a drifting mid, market orders, cancels, about 1,000 resting orders) and a
limit-only flow. Every engine gets the same flow, pre-built into its own order objects before
timing; each command is timed alone (``perf_counter_ns``) in a second pass.
"""

from __future__ import annotations

import gc
import random
import time
from collections.abc import Callable

from libs.messages import CancelOrder, OrderType, PlaceOrder, Side, TimeInForce
from libs.symbols import SymbolSpec, get_symbol
from services.matcher.core import MatchingCore
from services.matcher.flow import percentile

SEED = 20261125
MIXED_COMMANDS = 100_000
LIMIT_COMMANDS = 100_000
RESTING = 1_000
ROUNDS = 3  # throughput passes per engine, interleaved; the best one is reported
USERS = 200


def _place(spec, oid, user, side, price, qty, kind=OrderType.LIMIT, tif=TimeInForce.GTC):
    return PlaceOrder(
        request_id="",
        order_id=oid,
        user_id=user,
        symbol=spec.name,
        side=side,
        order_type=kind,
        qty=qty,
        price=price,
        tif=tif,
    )


def mixed_flow(spec: SymbolSpec, n: int = MIXED_COMMANDS, seed: int = SEED) -> list:
    """Return a seeded flow: ~1,000 resting limits around a drifting mid, markets and cancels.

    The flow is generated against a scratch core, so cancels name orders that are still open
    and the book holds about ``RESTING`` orders throughout.
    """
    rng = random.Random(seed)
    scratch = MatchingCore(spec)
    mid = 500_000  # 50,000.0 in ticks of 0.1
    commands: list = []
    oid = 0
    while len(commands) < n:
        mid += rng.choice((-1, 0, 0, 1))
        roll = rng.random()
        live = len(scratch.orders)
        if (live > RESTING and roll < 0.35) or (live > RESTING // 2 and roll < 0.25):
            victim = scratch.orders[rng.choice(list(scratch.orders))] if live < 64 else None
            if victim is None:
                # sample without building the whole key list: walk from a random best level
                side = scratch.bids if rng.random() < 0.5 else scratch.asks
                if not side.keys:
                    continue
                key = side.keys[-1 - rng.randrange(min(len(side.keys), 40))]
                level = side.levels[key * side.sign]
                victim = level[rng.randrange(len(level))]
            cmd = CancelOrder(
                request_id="",
                user_id=victim.user_id,
                symbol=spec.name,
                order_id=victim.order_id,
            )
        elif roll < 0.33 and live > RESTING // 2:
            oid += 1
            side = Side.BUY if rng.random() < 0.5 else Side.SELL
            cmd = _place(
                spec,
                oid,
                rng.randrange(USERS),
                side,
                None,
                rng.randint(3, 30),
                OrderType.MARKET,
                TimeInForce.IOC,
            )
        else:
            oid += 1
            side = Side.BUY if rng.random() < 0.5 else Side.SELL
            offset = rng.randint(-3, 60)  # mostly passive, sometimes crossing
            price = mid - offset if side is Side.BUY else mid + offset
            tif = TimeInForce.IOC if rng.random() < 0.05 else TimeInForce.GTC
            cmd = _place(spec, oid, rng.randrange(USERS), side, price, rng.randint(3, 100), tif=tif)
        scratch.process_batch([(len(commands), cmd)])
        commands.append(cmd)
    return commands


def limit_flow(spec: SymbolSpec, n: int = LIMIT_COMMANDS, seed: int = SEED + 1) -> list:
    """Return a seeded flow of GTC limit orders around a drifting mid (about half cross)."""
    rng = random.Random(seed)
    mid = 500_000
    commands = []
    for oid in range(1, n + 1):
        mid += rng.choice((-1, 0, 0, 1))
        side = Side.BUY if rng.random() < 0.5 else Side.SELL
        offset = rng.randint(-8, 40)
        price = mid - offset if side is Side.BUY else mid + offset
        commands.append(
            _place(spec, oid, rng.randrange(USERS * 10), side, price, rng.randint(3, 100))
        )
    return commands


# --- engines: each returns (run_all, run_one) built over pre-built orders ----------------------


def ours(spec: SymbolSpec, commands: list):
    core = MatchingCore(spec)
    process = core.process_batch
    batches = [[(i, cmd)] for i, cmd in enumerate(commands)]

    def run_all() -> None:
        for batch in batches:
            process(batch)

    def run_one(i: int) -> None:
        process(batches[i])

    return run_all, run_one, lambda: core.trade_id  # one trade id per OrderFilled


def pyorderbook_engine(spec: SymbolSpec, commands: list):
    import logging

    import pyorderbook

    logging.getLogger("pyorderbook.book").setLevel(logging.WARNING)
    book = pyorderbook.Book()
    tick = spec.prices.step_units / 10**spec.prices.decimals
    by_id: dict[int, pyorderbook.Order] = {}
    steps: list[Callable[[], int]] = []
    far = {Side.BUY: 10**9, Side.SELL: 1}
    for cmd in commands:
        if type(cmd) is CancelOrder:
            steps.append(_pyob_cancel(book, by_id, cmd.order_id))
            continue
        side = pyorderbook.Side.BID if cmd.side is Side.BUY else pyorderbook.Side.ASK
        # pyorderbook has no market or IOC orders: take at a price that crosses everything,
        # then cancel what is left, inside the same timed step
        price = far[cmd.side] if cmd.price is None else cmd.price
        order = pyorderbook.Order(side, "BTC-PERP", round(price * tick, 1), cmd.qty)
        by_id[cmd.order_id] = order
        steps.append(_pyob_place(book, order, cmd.tif is not TimeInForce.GTC))
    return _stepper(steps)


def _pyob_place(book, order, ioc: bool):
    def step() -> int:
        trades = len(book.match(order).trades)
        if ioc and order.id in book.order_map:
            book.cancel(order)
        return trades

    return step


def _pyob_cancel(book, by_id, oid):
    def step() -> int:
        order = by_id.get(oid)
        if order is not None and order.id in book.order_map:
            book.cancel(order)
        return 0

    return step


def liquibook_engine(spec: SymbolSpec, commands: list):
    import liquibook

    class Fills(liquibook.OrderListener):
        def __init__(self) -> None:
            super().__init__()
            self.count = 0

        def on_fill(self, order, matched, qty, cost) -> None:
            self.count += 1

        def on_accept(self, order) -> None: ...
        def on_reject(self, order, reason) -> None: ...
        def on_cancel(self, order) -> None: ...
        def on_cancel_reject(self, order, reason) -> None: ...
        def on_replace(self, order, size_delta, new_price) -> None: ...
        def on_replace_reject(self, order, reason) -> None: ...
        def on_trigger_stop(self, order) -> None: ...

    book = liquibook.liquibook_book_OrderBook()
    listener = Fills()
    book.set_order_listener(listener)
    by_id = {}
    steps = []
    ioc = liquibook.oc_immediate_or_cancel
    for cmd in commands:
        if type(cmd) is CancelOrder:
            order = by_id.get(cmd.order_id)
            steps.append(lambda o=order: book.cancel(o) if o is not None else None)
            continue
        order = liquibook.SimpleOrder(cmd.side is Side.BUY, cmd.price or 0, cmd.qty)
        by_id[cmd.order_id] = order
        flags = 0 if cmd.tif is TimeInForce.GTC else ioc
        steps.append(lambda o=order, f=flags: book.add(o, f))
    run_all, run_one, _ = _stepper(steps)
    return run_all, run_one, lambda: listener.count


def _stepper(steps: list[Callable[[], object]]):
    fills = [0]

    def run_all() -> None:
        count = 0
        for step in steps:
            count += step() or 0
        fills[0] = count

    def run_one(i: int) -> None:
        steps[i]()

    return run_all, run_one, lambda: fills[0]


ENGINES = {"ours": ours, "pyorderbook": pyorderbook_engine, "liquibook": liquibook_engine}


def throughput(engine: str, spec: SymbolSpec, commands: list) -> tuple[float, int]:
    """Run ``commands`` through a fresh ``engine``; return (commands per second, fills)."""
    gc.collect()
    run_all, _, fills = ENGINES[engine](spec, commands)
    start = time.perf_counter()
    run_all()
    seconds = time.perf_counter() - start
    return len(commands) / seconds, fills()


def latencies(engine: str, spec: SymbolSpec, commands: list) -> list[int]:
    """Run ``commands`` through a fresh ``engine``, timing each; return sorted ns."""
    gc.collect()
    _, run_one, _ = ENGINES[engine](spec, commands)
    clock = time.perf_counter_ns
    out = []
    keep = out.append
    for i in range(len(commands)):
        t0 = clock()
        run_one(i)
        keep(clock() - t0)
    out.sort()
    return out


def measure(engine: str, spec: SymbolSpec, commands: list, rounds: int = 1) -> dict:
    """Return the best of ``rounds`` throughput passes and one latency pass of ``engine``."""
    per_sec, fills = max(throughput(engine, spec, commands) for _ in range(rounds))
    return _row(engine, commands, per_sec, fills, latencies(engine, spec, commands))


def _row(engine, commands, per_sec, fills, ns) -> dict:
    return {
        "engine": engine,
        "commands": len(commands),
        "fills": fills,
        "per_sec": per_sec,
        "p50": percentile(ns, 0.5) / 1000,
        "p99": percentile(ns, 0.99) / 1000,
        "p999": percentile(ns, 0.999) / 1000,
    }


def compare(spec: SymbolSpec, commands: list, rounds: int = ROUNDS) -> dict[str, dict]:
    """Measure every engine on ``commands``, interleaving their passes so that a busy moment
    of the machine hurts them alike; keep each engine's best throughput pass."""
    best: dict[str, tuple[float, int]] = {}
    for _ in range(rounds):
        for engine in ENGINES:
            result = throughput(engine, spec, commands)
            if engine not in best or result[0] > best[engine][0]:
                best[engine] = result
    return {
        engine: _row(engine, commands, *best[engine], latencies(engine, spec, commands))
        for engine in ENGINES
    }


def run(mixed_commands: int = MIXED_COMMANDS, limit_commands: int = LIMIT_COMMANDS) -> str:
    """Return the '## Matching core' Markdown section."""
    spec = get_symbol("BTC-PERP")
    flows = {
        "mixed": mixed_flow(spec, mixed_commands),
        "limit-only": limit_flow(spec, limit_commands),
    }
    lines = [
        "## Matching core",
        "",
        "One BTC-PERP book, every command a batch of one (`MatchingCore.process_batch`, all",
        "events built), next to `pyorderbook` (pure Python) and `liquibook` (C++ via SWIG) on the",
        "same seeded flows, in the same process. `bench/matcher_core.py`; flows: mixed = limits",
        "around a drifting mid, 5% IOC, market orders, cancels, ~1,000 resting orders;",
        "limit-only = GTC limits around a drifting mid, about half crossing. Throughput: the",
        "best of 3 whole-flow passes per engine, the engines' passes interleaved. Latency is per",
        "command, timed alone in one more pass; default GC settings throughout. pyorderbook has",
        "no market/IOC orders: they are sent as crossing limits whose remainder is cancelled in",
        "the same timed step.",
        "",
        "| flow | engine | commands | fills | commands/s | p50 µs | p99 µs | p99.9 µs |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    ratios, checks = [], []
    for name, commands in flows.items():
        results = compare(spec, commands)
        ours_row = results["ours"]
        checks.append(
            f"{name}: {ours_row['per_sec']:,.0f} commands/s "
            f"({'meets' if ours_row['per_sec'] > 207_000 else 'misses'} > 207,000), "
            f"p99 {ours_row['p99']:.1f} µs ({'meets' if ours_row['p99'] <= 20 else 'misses'}"
            " <= 20 µs)"
        )
        for r in results.values():
            lines.append(
                f"| {name} | {r['engine']} | {r['commands']:,} | {r['fills']:,} | "
                f"{r['per_sec']:,.0f} | {r['p50']:.1f} | {r['p99']:.1f} | {r['p999']:.1f} |"
            )
        ratio = ours_row["per_sec"] / results["pyorderbook"]["per_sec"]
        ratios.append(f"{name}: {ratio:.1f}x pyorderbook")
    lines += [
        "",
        "Our core's throughput relative to pyorderbook: "
        + "; ".join(ratios)
        + " (target: at least 2.5x on limit-only).",
        "",
        "Against the issue's targets: " + "; ".join(checks) + ".",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(run())
