"""The mixed flow of ``bench.gateway_mixed`` at a few rates, repeated, for comparing one change.

    scripts/with-test-stack.sh .venv/bin/python scripts/order_path_probe.py [RATE ...]

Starts the whole stack (as the bench does), warms it at the bench's warm-up rate and then a
step at 200/s (the broker's JIT compiler is still busy after the bench's own warm-up), and
runs each RATE (default 100 and 200) twice: per step the latency, each process's CPU per
order and the Kafka requests per order, one line each. Quicker than the whole bench (about
four minutes) and so fit for A/B runs of a setting; findings: ADR 0001 point 9.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import gateway_mixed as mixed
from bench.http_load import WARMUP_RATE, WARMUP_SECONDS, signup, start_stack, step
from bench.stack_cpu import CpuProbe, RequestProbe, total

REPEATS = 2
WARM_RATE, WARM_SECONDS = 200, 8


async def steps(url: str, load: mixed.MixedLoad, rates: list[int], *probes) -> None:
    await load.run(WARMUP_RATE, WARMUP_SECONDS)
    await load.run(WARM_RATE, WARM_SECONDS)
    await asyncio.sleep(mixed.SETTLE_SECONDS)
    for _ in range(REPEATS):
        for rate in rates:
            r = await step(
                load, url, probes[0], rate, mixed.STEP_SECONDS, mixed.SETTLE_SECONDS, probes[1]
            )
            requests = sum(sum(kinds.values()) for kinds in r["requests"].values())
            by_process = ", ".join(
                f"{name} {sum(kinds.values()):.2f}" for name, kinds in r["requests"].items()
            )
            print(
                f"{rate}/s: p50 {r['p50']:.1f} ms, p99 {r['p99']:.1f} ms; CPU per order "
                f"{total(r['cpu']):.2f} ms, broker {r['cpu']['kafka broker']:.2f} (JIT "
                f"{r['broker_jit']:.2f}); Kafka requests per order {requests:.2f} ({by_process}); "
                f"{r['steal']:.0f}% stolen",
                flush=True,
            )


def main(rates: list[int]) -> None:
    stack = start_stack()
    feed = mixed.IndexFeed(os.environ["KAFKA_BOOTSTRAP_SERVERS"], stack.prefix)
    feed.start()
    try:
        tokens = asyncio.run(signup(stack, mixed.USERS, mixed.DEPOSIT))
        import uvloop

        load = mixed.MixedLoad(stack.url, tokens, feed)
        uvloop.run(
            steps(stack.url, load, rates, CpuProbe.of_stack(stack), RequestProbe.of_stack(stack))
        )
    finally:
        feed.stop()
        stack.stop()


if __name__ == "__main__":
    main([int(rate) for rate in sys.argv[1:]] or [100, 200])
