"""How long a matcher's symbols take to move to the surviving instance (issue 16).

Two matcher instances in one consumer group split eight symbols (tests/cluster/symbols-8.toml,
through SYMBOLS_FILE); each book gets a seeded flow of COMMANDS, half before and half after one
instance is killed -9 (its I/O and its core process). Measured from the kill: when the survivor
holds each moved book again (the group noticed the dead member, assigned its partitions, and the
survivor loaded the book's snapshot and replayed its tail), and when it has applied the whole
second half. The group notices a dead member after its session timeout (libs.bus.kafka: 10 s,
counted from its last heartbeat, sent every 3 s), so 7-10 s is the floor of every figure here;
a clean stop (SIGTERM) leaves the group at once.
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.matcher_core import mixed_flow
from libs.symbols import default_symbols

SYMBOLS_FILE = Path(__file__).resolve().parent.parent / "tests" / "cluster" / "symbols-8.toml"
COMMANDS = 4_000  # per symbol, half before the kill
SNAPSHOT_EVERY = 1_000  # the moved books load a snapshot and replay a tail shorter than this
SPLIT_STEADY_SECONDS = 3.0


@dataclass(frozen=True)
class Takeover:
    symbols: int
    moved: dict[str, float]  # symbol -> seconds from the kill until the survivor held its book
    applied_seconds: float  # from the kill until the survivor applied every command
    runs: tuple  # (survivor, killed) MatcherRun, for the caller's checks
    flows: dict[str, list]


def eight_symbols() -> None:
    """Make this process (and the matchers it starts) list the eight symbols."""
    os.environ["SYMBOLS_FILE"] = str(SYMBOLS_FILE)
    default_symbols.cache_clear()


def takeover(bootstrap: str, on_kill: Callable[[Any], None] | None = None) -> Takeover:
    """Run the scenario once; ``on_kill(survivor)`` runs right after the instance is killed
    (the cluster test kills a broker there too)."""
    from tests.integration.matcher.harness import MatcherRun

    specs = default_symbols()
    flows = {name: mixed_flow(spec, COMMANDS, seed=spec.index) for name, spec in specs.items()}
    half = COMMANDS // 2
    first = MatcherRun(bootstrap, symbols=None, instance="a", snapshot_every=SNAPSHOT_EVERY)
    second = dataclasses.replace(first, instance="b", process=None)
    first.start()
    second.start()
    try:
        owners = _steady_split(specs, first, second)
        first.produce([c for flow in flows.values() for c in flow[:half]])
        for spec in specs.values():
            first.wait_applied(half, partition=spec.index)
        moving = sorted(name for name, owner in owners.items() if owner == "b")
        second.kill("both")
        killed_at = time.monotonic()
        if on_kill is not None:
            on_kill(first)
        first.produce([c for flow in flows.values() for c in flow[half:]])
        moved: dict[str, float] = {}
        deadline = killed_at + 180
        while len(moved) < len(moving):
            assert time.monotonic() < deadline, f"not taken over: {set(moving) - set(moved)}"
            for name in moving:
                if name not in moved and first.serves(name):
                    moved[name] = time.monotonic() - killed_at
            time.sleep(0.05)
        for spec in specs.values():
            first.wait_applied(COMMANDS, partition=spec.index, timeout=180)
        applied = time.monotonic() - killed_at
    finally:
        first.stop()
        second.stop()
    return Takeover(len(specs), moved, applied, (first, second), flows)


def _steady_split(specs: dict, *runs) -> dict[str, str]:
    """Wait until every symbol has one owner, both instances own some, and that held for
    SPLIT_STEADY_SECONDS (a cooperative rebalance can take more than one round)."""
    deadline = time.monotonic() + 90
    steady_since, owners = None, {}
    while steady_since is None or time.monotonic() - steady_since < SPLIT_STEADY_SECONDS:
        assert time.monotonic() < deadline, f"the group never split the symbols: {owners}"
        now = {name: [run.instance for run in runs if run.serves(name)] for name in specs}
        split = all(len(held) == 1 for held in now.values()) and {
            held[0] for held in now.values()
        } == {run.instance for run in runs}
        if not split or now != owners:
            steady_since = time.monotonic() if split else None
        owners = now
        time.sleep(0.5)
    return {name: held[0] for name, held in owners.items()}


def run() -> str:
    eight_symbols()
    bootstrap = os.environ["KAFKA_BOOTSTRAP_SERVERS"]
    results = [takeover(bootstrap) for _ in range(3)]
    rows = [
        f"| {i} | {len(r.moved)} of {r.symbols} | {min(r.moved.values()):.1f} | "
        f"{max(r.moved.values()):.1f} | {r.applied_seconds:.1f} |"
        for i, r in enumerate(results, 1)
    ]
    worst = [max(r.moved.values()) for r in results]
    return "\n".join(
        [
            "## Matcher rebalance",
            "",
            f"Two matcher instances in one consumer group split {results[0].symbols} symbols; "
            f"each book gets a seeded flow of {COMMANDS:,} commands (snapshots every "
            f"{SNAPSHOT_EVERY:,}), half before and half after one instance is killed -9. From "
            "the kill: when the survivor held each moved book again (the group noticed the "
            "dead member after its 10 s session timeout, counted from its last heartbeat, "
            "which it sent every 3 s, assigned its partitions, and the survivor loaded each "
            "book's snapshot and replayed its tail), and when it had applied every command. "
            "Three runs. `bench/matcher_rebalance.py`.",
            "",
            "| run | books moved | first held, s | last held, s | all applied, s |",
            "| ---: | ---: | ---: | ---: | ---: |",
            *rows,
            "",
            f"The books moved in {statistics.median(worst):.1f} s (median of the runs' last "
            "book), of which 7-10 s is the session timeout: loading a book and replaying its "
            "tail is the rest.",
            "",
        ]
    )
