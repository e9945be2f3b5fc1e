"""The matcher bench's latency rounds: the p99 and how a round is named (pure)."""

from bench.matcher_service import Round, _round


def test_a_round_s_p99_is_the_99th_percentile_of_its_sorted_latencies():
    latencies = [i * 1_000_000 for i in range(1, 101)]  # 1 ms .. 100 ms
    assert Round(latencies, 5_000.0, None, 0.0).p99_ms() == 99.0  # nearest rank


def test_a_round_is_named_by_its_p99_its_stolen_share_and_its_compiler_when_known():
    latencies = [2_000_000] * 100
    assert _round(Round(latencies, 5_000.0, 1.25, 3.4)) == "2.00 ms (3% stolen, JIT 1.2%)"
    assert _round(Round(latencies, 5_000.0, None, 0.0)) == "2.00 ms (0% stolen)"
