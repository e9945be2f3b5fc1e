"""place_order through one gateway process, on the whole stack: latency at fixed rates.

Starts every service as its own process (tests/e2e/stack.py) on private topics, signs up
pairs of users, and sends open-loop load: request i is due at ``i / rate`` seconds, and its
latency runs from when it was due (so a stalled server is not hidden by a stalled client).
The orders of a pair cross each other at one price, so the book stays small. The client is a
minimal keep-alive HTTP/1.1 client on asyncio (bench/http_load.py), in this process;
everything shares 2 cores.
"""

from __future__ import annotations

import asyncio
import json
import os

from bench.http_load import (
    P99_BUDGET_MS,
    WARMUP_RATE,
    WARMUP_SECONDS,
    OpenLoop,
    Request,
    passes,
    saturated,
    signup,
    start_stack,
    step,
)
from bench.stack_cpu import CpuProbe, table, verdict
from libs.messages import OrderStatus

PAIRS = 20
CONNECTIONS = 64
STEP_SECONDS = 8
CPU_RATE = 200  # the step whose CPU is shown process by process
TARGET_RATE, TARGET_P50_MS, TARGET_P99_MS = 100, 10.0, 50.0  # issue 12, as the mixed flow's
# up to issue 12's aim of 2,000/s, as the mixed flow's: the 1,500/s step of 2026-12-04 passed
RATES = (10, 25, 50, 75, 100, 150, 200, 300, 400, 500, 600, 800, 1000, 1500, 2000)
SETTLE_SECONDS = 10  # after a step, the engines and the projector drain what it left behind


class Load:
    def __init__(self, url: str, tokens: list[str]) -> None:
        self.loop = OpenLoop(url, CONNECTIONS)
        self.tokens = tokens

    def body(self, i: int) -> tuple[str, bytes]:
        pair = (i // 2) % (len(self.tokens) // 2)
        side = "Sell" if i % 2 == 0 else "Buy"
        token = self.tokens[2 * pair + (i % 2)]
        order = {
            "symbol": "BTC-PERP",
            "side": side,
            "order_type": "Limit",
            "price": "50000.0",
            "quantity": "0.003",
            "leverage": "10",
        }
        return token, json.dumps(order).encode()

    def request(self, i: int) -> Request:
        return Request("/place_order", *self.body(i))

    async def run(self, rate: float, seconds: float) -> dict:
        return await self.loop.run(rate, seconds, self.request)


def row(result: dict) -> str:
    pending = result["statuses"].get(OrderStatus.PENDING, 0)
    expected = (OrderStatus.NEW, OrderStatus.FILLED, OrderStatus.PENDING)
    other = sum(v for k, v in result["statuses"].items() if k not in expected)
    return (
        f"| {result['rate']:,.0f} | {result['achieved']:,.0f} | {result['p50']:.1f} | "
        f"{result['p99']:.1f} | {result['max']:.1f} | {pending} | {other} | "
        f"{result['steal']:.0f}% |"
    )


async def measure(url: str, tokens: list[str], probe: CpuProbe) -> list[dict]:
    """The rates from low to high until past saturation (never stopping before CPU_RATE). A
    step that misses does not end it: on this VM one step can lose a fifth of the machine."""
    load = Load(url, tokens)
    await load.run(WARMUP_RATE, WARMUP_SECONDS)
    await asyncio.sleep(SETTLE_SECONDS)
    steps = []
    for rate in RATES:
        steps.append(await step(load, url, probe, rate, STEP_SECONDS, SETTLE_SECONDS))
        if rate >= CPU_RATE and saturated(steps[-1]):
            break
    return steps


def run() -> str:
    stack = start_stack()
    try:
        # 1,000,000 USDT x 2 * PAIRS users: inside MAX_INSIDE
        tokens = asyncio.run(signup(stack, 2 * PAIRS, deposit="1000000"))
        import uvloop

        steps = uvloop.run(measure(stack.url, tokens, CpuProbe.of_stack(stack)))
    finally:
        stack.stop()
    passing = [r for r in steps if passes(r)]
    best = max((r["rate"] for r in passing), default=0)
    shown = passing[-1] if passing else steps[0]
    breakdown = shown["breakdown"]
    at = next(r for r in steps if r["rate"] == CPU_RATE)
    target = next(r for r in steps if r["rate"] == TARGET_RATE)
    header = [
        "| target orders/s | achieved | p50 ms | p99 ms | max ms | Pending | rejected | stolen |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    return "\n".join(
        [
            "## Gateway",
            "",
            "`POST /place_order` through one gateway process with every service running "
            "(matcher with its pinned core, wallet, positions, projector, Kafka, Postgres, "
            "Redis, and the load client: all on this machine's cores). Open-loop load from "
            f"{CONNECTIONS} keep-alive connections, {2 * PAIRS} users whose limit orders cross "
            f"in pairs; {STEP_SECONDS} s per rate; latency from when each request was due to "
            "its reply, which comes after the matcher's batch (HTTP -> Kafka -> wallet -> "
            "Kafka -> matcher -> Kafka -> gateway). `bench/gateway.py`.",
            "",
            *header,
            *(row(r) for r in steps),
            "",
            f"Highest sustained rate (p99 <= {P99_BUDGET_MS:.0f} ms, at least 95% of the "
            f"offered rate achieved): **{best:,} orders/s** (issue 12: at least 500; rates "
            f"tried from low to high, {SETTLE_SECONDS} s apart, until past saturation).",
            f"At {TARGET_RATE} orders/s: p50 {target['p50']:.1f} ms "
            f"({verdict(target['p50'] <= TARGET_P50_MS)} <= {TARGET_P50_MS:.0f} ms), p99 "
            f"{target['p99']:.1f} ms ({verdict(target['p99'] <= TARGET_P99_MS)} <= "
            f"{TARGET_P99_MS:.0f} ms).",
            "",
            f"Where the time goes at {shown['rate']:,.0f} orders/s (means, from the gateway's "
            f"own histograms): whole request {breakdown['http']:.1f} ms = produce to "
            f"`orders.requests` and wait for the broker's acknowledgement "
            f"{breakdown['produce']:.1f} ms + from there to the matcher's answer "
            f"{breakdown['answer']:.1f} ms (the wallet's turn, its outputs acknowledged, the "
            "matcher's turn, three read_uncommitted fetches) + the rest "
            "(HTTP, auth, validation). The original design's < 5 ms target was an in-process "
            "channel to the engine; here every hop is a durable, exactly-once Kafka hop.",
            "",
            *(
                line
                for result in ([at, shown] if shown["rate"] != at["rate"] else [at])
                for line in _cpu_block(result)
            ),
        ]
    )


def _cpu_block(result: dict) -> list[str]:
    return [
        f"CPU per order at {result['rate']:,.0f} orders/s (achieved "
        f"{result['achieved']:,.0f}/s), by process, in ms of CPU time on this "
        f"{os.cpu_count()}-core machine; idle work (consumers polling, the index feed's marks) "
        "is spread over the orders:",
        "",
        *table(result["cpu"], "CPU ms per order"),
        "",
    ]


if __name__ == "__main__":
    print(run())
