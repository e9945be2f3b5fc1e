"""Several matcher instances in one consumer group split the symbols, and take over the
symbols of an instance that dies."""

from __future__ import annotations

import dataclasses
import time

from bench.matcher_core import mixed_flow
from libs.symbols import default_symbols

from .harness import MatcherRun, reference_events

PER_SYMBOL = 4_000


def _flows() -> dict[str, list]:
    return {
        name: mixed_flow(spec, 2 * PER_SYMBOL, seed=spec.index)
        for name, spec in default_symbols().items()
    }


def test_two_instances_split_the_symbols_and_one_takes_over_when_the_other_dies(
    kafka_bootstrap: str,
):
    flows = _flows()
    first = MatcherRun(kafka_bootstrap, symbols=None, instance="a")
    second = dataclasses.replace(first, instance="b", process=None)
    first.start()
    second.start()
    try:
        # the second member's join rebalances the group (a cooperative rebalance can take
        # more than one round): wait until the split has held for a few seconds
        deadline = time.monotonic() + 60
        steady_since, owners = None, {}
        while steady_since is None or time.monotonic() - steady_since < 3:
            assert time.monotonic() < deadline, f"the group never split the symbols: {owners}"
            now = _owners(flows, first, second)
            split = all(len(instances) == 1 for instances in now.values()) and {
                i for instances in now.values() for i in instances
            } == {"a", "b"}
            if not split or now != owners:
                steady_since = time.monotonic() if split else None
            owners = now
            time.sleep(0.5)
        first.produce([c for flow in flows.values() for c in flow[:PER_SYMBOL]])
        for spec in default_symbols().values():
            first.wait_applied(PER_SYMBOL, partition=spec.index)
        assert _owners(flows, first, second) == owners, "ownership moved without a failure"

        second.kill("both")  # the group moves its symbols to the first instance
        first.produce([c for flow in flows.values() for c in flow[PER_SYMBOL:]])
        for spec in default_symbols().values():
            first.wait_applied(2 * PER_SYMBOL, partition=spec.index, timeout=120)
            events = first.read_events(spec.index)
            assert [e.seq for e in events] == list(range(1, len(events) + 1))
            assert events == reference_events(flows[spec.name], events, spec)
            assert first.serves(spec.name)
    finally:
        first.stop()
        second.stop()


def _owners(flows: dict, *runs: MatcherRun) -> dict[str, list[str]]:
    return {symbol: [run.instance for run in runs if run.serves(symbol)] for symbol in flows}
