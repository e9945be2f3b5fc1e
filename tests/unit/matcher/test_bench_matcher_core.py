"""The matching-core benchmark: same fills on every engine, a Markdown section."""

from bench.matcher_core import ENGINES, limit_flow, measure, mixed_flow, run
from tests.unit.matcher.kit import SPEC


def test_every_engine_makes_the_same_fills_on_the_benchmark_flows():
    for commands in (mixed_flow(SPEC, 3000), limit_flow(SPEC, 3000)):
        fills = {engine: measure(engine, SPEC, commands)["fills"] for engine in ENGINES}
        assert len(set(fills.values())) == 1 and fills["ours"] > 0, fills


def test_run_returns_the_matching_core_markdown_section():
    section = run(mixed_commands=1500, limit_commands=1500)
    assert section.startswith("## Matching core")
    assert section.count("| mixed |") == 3 and section.count("| limit-only |") == 3
