"""The position benchmark runs on small sizes and says what it measured."""

from __future__ import annotations

import bench.positions as bench


def test_the_position_bench_reports_fills_and_flat_mark_tick_costs(monkeypatch):
    monkeypatch.setattr(bench, "FILLS", 500)
    monkeypatch.setattr(bench, "FILL_USERS", 50)
    monkeypatch.setattr(bench, "TICKS", 50)
    monkeypatch.setattr(bench, "SIZES", (200, 2_000))
    section = bench.run()
    assert section.startswith("## Position engine")
    assert "fills/s" in section and "| 2,000 | 2,000 |" in section
