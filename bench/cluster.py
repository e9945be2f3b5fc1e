"""The exchange on one broker and on a three-broker cluster, measured in one run (issue 16).

First on the broker of the bench's stack, then on the three-node cluster of
``infra/stack-cluster-test.toml`` (every topic three copies, two in sync; started here, stopped
after): the plain three-hop Kafka floor (``bench.kafka_floor``) and the mixed flow of
``bench.gateway_mixed`` through a gateway with every service running, at a few rates. One
instance of each service in both: what the cluster costs the order path, not what more
instances buy (docs/SCALING.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from bench.gateway_mixed import DEPOSIT, SETTLE_SECONDS, STEP_SECONDS, USERS, IndexFeed, MixedLoad
from bench.http_load import WARMUP_RATE, WARMUP_SECONDS, log, signup, step
from bench.kafka_floor import measure as three_hop_floor
from bench.stack_cpu import CpuProbe, find_infra
from tests.cluster.conftest import NODES, RUN_DIR, node_pid
from tests.e2e.stack import Stack

ROOT = Path(__file__).resolve().parent.parent
CLUSTER = ROOT / "infra" / "stack-cluster-test.toml"
RATES = (100, 500, 1000)
WARM_SECONDS = 30  # of the floor, unmeasured, before each phase: fresh brokers compile first


def run() -> str:
    single = dict(os.environ)
    one = phase(single, {"kafka broker": find_infra(single)["kafka broker"]})
    with cluster() as (env, brokers):
        three = phase(env, brokers)
    return render(one, three)


def phase(env: dict[str, str], brokers: dict[str, int | None]) -> dict:
    """The floor, then the mixed flow at RATES, on the broker(s) of ``env``."""
    bootstrap = env["KAFKA_BOOTSTRAP_SERVERS"]
    log(f"cluster bench on {bootstrap}")
    three_hop_floor(bootstrap, seconds=WARM_SECONDS)  # the brokers' JIT compilers, warmed
    floor = three_hop_floor(bootstrap)
    stack = Stack(bootstrap, env["DATABASE_URL"], env["REDIS_URL"])
    stack.start()
    feed = IndexFeed(bootstrap, stack.prefix)
    feed.start()
    try:
        tokens = asyncio.run(signup(stack, USERS, DEPOSIT))
        load = MixedLoad(stack.url, tokens, feed)
        pids = {n: s.proc.pid for n, s in stack.services.items()} | brokers
        probe = CpuProbe(pids | {"load client": os.getpid()})
        import uvloop

        steps = uvloop.run(_steps(stack.url, load, probe))
    finally:
        feed.stop()
        stack.stop()
    return {"floor": floor, "steps": steps, "brokers": list(brokers)}


async def _steps(url: str, load: MixedLoad, probe: CpuProbe) -> list[dict]:
    await load.run(WARMUP_RATE, WARMUP_SECONDS)
    await asyncio.sleep(SETTLE_SECONDS)
    return [await step(load, url, probe, r, STEP_SECONDS, SETTLE_SECONDS) for r in RATES]


@contextlib.contextmanager
def cluster() -> Iterator[tuple[dict[str, str], dict[str, int | None]]]:
    """The three-node stack, fresh, for the length of a ``with``: its environment and the
    pids of its brokers."""
    _supervise("down")
    shutil.rmtree(RUN_DIR, ignore_errors=True)
    try:
        _supervise("up")
        env = dict(os.environ)
        for line in _supervise("env").splitlines():
            name, _, value = line.removeprefix("export ").partition("=")
            env[name] = value
        brokers: dict[str, int | None] = {f"kafka broker {n}": node_pid(n) for n in NODES}
        yield env, brokers
    finally:
        _supervise("down")


def _supervise(action: str) -> str:
    done = subprocess.run(
        [sys.executable, "scripts/supervise.py", action, str(CLUSTER)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=action != "down",
        timeout=300,
    )
    return done.stdout


def _broker_ms(result: dict, brokers: list[str]) -> float:
    return sum(result["cpu"].get(name) or 0.0 for name in brokers)


def render(one: dict, three: dict) -> str:
    rows = [
        "| | one broker | three brokers (3 copies, 2 in sync) |",
        "| --- | ---: | ---: |",
        f"| three-hop floor at {one['floor']['rate']} records/s: p50 / p99 ms | "
        f"{one['floor']['p50']:.2f} / {one['floor']['p99']:.2f} | "
        f"{three['floor']['p50']:.2f} / {three['floor']['p99']:.2f} |",
    ]
    for a, b in zip(one["steps"], three["steps"], strict=True):
        rows += [
            f"| mixed flow {a['rate']}/s: achieved, p50 / p99 ms | "
            f"{a['achieved']:,.0f}/s, {a['p50']:.1f} / {a['p99']:.1f} | "
            f"{b['achieved']:,.0f}/s, {b['p50']:.1f} / {b['p99']:.1f} |",
            f"| mixed flow {a['rate']}/s: broker CPU ms per order (all brokers) | "
            f"{_broker_ms(a, one['brokers']):.2f} | {_broker_ms(b, three['brokers']):.2f} |",
        ]
    return "\n".join(
        [
            "## One broker and a three-broker cluster",
            "",
            "The same run, first on the bench's single broker, then on a three-node KRaft "
            "cluster on this same machine (`infra/stack-cluster-test.toml`: each node a broker "
            "and a controller, every topic three copies with `min.insync.replicas=2`, so every "
            "acks=all write waits for a follower too). The plain three-hop floor "
            f"(`bench/kafka_floor.py`, after {WARM_SECONDS} s of it unmeasured: fresh brokers "
            "compile first), then the mixed flow of `bench/gateway_mixed.py` through a "
            f"gateway with one instance of each service, {STEP_SECONDS} s per rate after its "
            "warm-up. `bench/cluster.py`.",
            "",
            *rows,
            "",
        ]
    )
