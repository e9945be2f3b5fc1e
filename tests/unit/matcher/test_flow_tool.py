"""The flow tool: one JSON line on stdout, FILLS and BOOK files, run as a module."""

import json
import subprocess
import sys
from pathlib import Path

from services.matcher.flow import main, parse_flow, percentile
from tests.unit.matcher.kit import SPEC

ROOT = Path(__file__).resolve().parents[3]
FLOW = [
    {
        "op": "place",
        "id": 1,
        "user": 1,
        "side": "sell",
        "type": "limit",
        "price": "50000.1",
        "qty": "0.010",
        "tif": "GTC",
    },
    {
        "op": "place",
        "id": 2,
        "user": 1,
        "side": "sell",
        "type": "limit",
        "price": "50000.5",
        "qty": "0.020",
        "tif": "GTC",
    },
    {
        "op": "place",
        "id": 3,
        "user": 2,
        "side": "buy",
        "type": "market",
        "price": None,
        "qty": "0.015",
        "tif": "IOC",
    },
    {
        "op": "place",
        "id": 4,
        "user": 3,
        "side": "buy",
        "type": "limit",
        "price": "49999.0",
        "qty": "0.010",
        "tif": "GTC",
    },
    {
        "op": "place",
        "id": 5,
        "user": 3,
        "side": "buy",
        "type": "limit",
        "price": "49998.0",
        "qty": "0.010",
        "tif": "GTC",
    },
    {"op": "cancel", "id": 5, "user": 3},
]
KEYS = ["commands", "fills", "seconds", "commands_per_sec", "p50_us", "p99_us", "p999_us"]


def write_flow(tmp_path) -> Path:
    path = tmp_path / "flow.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in FLOW))
    return path


def test_the_flow_tool_prints_one_json_line_with_the_fixed_keys(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "services.matcher.flow", str(write_flow(tmp_path))],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    [line] = result.stdout.splitlines()
    summary = json.loads(line)
    assert list(summary) == KEYS
    assert summary["commands"] == 6 and summary["fills"] == 2
    assert summary["commands_per_sec"] > 0 and summary["p50_us"] <= summary["p999_us"]


def test_the_flow_tool_writes_fills_in_order_and_the_aggregated_book(tmp_path, capsys):
    fills, book = tmp_path / "fills.jsonl", tmp_path / "book.json"
    main([str(write_flow(tmp_path)), "--fills", str(fills), "--book", str(book)])
    capsys.readouterr()
    assert [json.loads(x) for x in fills.read_text().splitlines()] == [
        {"taker": 3, "maker": 1, "price": "50000.1", "qty": "0.010"},
        {"taker": 3, "maker": 2, "price": "50000.5", "qty": "0.005"},
    ]
    assert json.loads(book.read_text()) == {
        "bids": [["49999.0", "0.010"]],
        "asks": [["50000.5", "0.015"]],
    }


def test_flow_lines_become_matcher_commands_in_ticks_and_lots():
    place, *_, cancel = parse_flow([json.dumps(row) for row in FLOW], SPEC)
    assert (place.order_id, place.user_id, place.price, place.qty) == (1, 1, 500001, 10)
    assert (cancel.order_id, cancel.user_id) == (5, 3)


def test_percentiles_are_nearest_rank():
    values = list(range(1, 1001))
    assert (percentile(values, 0.5), percentile(values, 0.99), percentile(values, 0.999)) == (
        500,
        990,
        999,
    )
