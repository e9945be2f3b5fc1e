"""Golden scenarios (our own versions of exchange-core and liquibook classics) in flow format.

Each ``golden/*.json`` holds a ``flow`` (flow-tool lines, plus ``amend`` and stop fields where
needed), the expected ``fills``, final ``book`` and ``triggered`` order ids. Scenarios that use
only flow-tool features also run through ``python -m services.matcher.flow``.
"""

import json
from pathlib import Path

import pytest

from libs.messages import AmendOrder, OrderTriggered, OrderType, TimeInForce
from services.matcher import flow as flow_tool
from tests.unit.matcher.kit import SPEC, Harness, place

GOLDEN = sorted((Path(__file__).parent / "golden").glob("*.json"))


def command(row):
    if row["op"] == "amend":
        price = row.get("price")
        qty = row.get("qty")
        return AmendOrder(
            request_id="",
            user_id=row["user"],
            symbol=SPEC.name,
            order_id=row["id"],
            price=SPEC.price_to_ticks(price) if price else None,
            qty=SPEC.qty_to_lots(qty) if qty else None,
        )
    if row["op"] == "place" and "stop_price" in row:
        price = row.get("price")
        return place(
            row["id"],
            row["user"],
            row["side"],
            SPEC.price_to_ticks(price) if price else None,
            SPEC.qty_to_lots(row["qty"]),
            kind=OrderType(row["type"]),
            tif=TimeInForce(row["tif"]),
            stop_price=SPEC.price_to_ticks(row["stop_price"]),
        )
    [parsed] = flow_tool.parse_flow([json.dumps(row)], SPEC)
    return parsed


def flow_tool_only(scenario) -> bool:
    return all(
        row["op"] in ("place", "cancel") and "stop_price" not in row for row in scenario["flow"]
    )


@pytest.mark.parametrize("path", GOLDEN, ids=[p.stem for p in GOLDEN])
def test_golden_scenario_produces_the_expected_fills_book_and_triggers(path):
    scenario = json.loads(path.read_text())
    h = Harness()
    for row in scenario["flow"]:
        h.send(command(row))
    fills = [
        {"taker": t, "maker": m, "price": SPEC.ticks_to_price(p), "qty": SPEC.lots_to_qty(q)}
        for t, m, p, q in h.fills()
    ]
    assert fills == scenario["fills"]
    bids, asks = h.book()
    book = {
        "bids": [[SPEC.ticks_to_price(p), SPEC.lots_to_qty(q)] for p, q in bids],
        "asks": [[SPEC.ticks_to_price(p), SPEC.lots_to_qty(q)] for p, q in asks],
    }
    assert book == scenario["book"]
    triggered = [e.order_id for e in h.events if type(e) is OrderTriggered]
    assert triggered == scenario["triggered"]


@pytest.mark.parametrize(
    "path",
    [p for p in GOLDEN if flow_tool_only(json.loads(p.read_text()))],
    ids=lambda p: p.stem,
)
def test_the_flow_tool_reproduces_the_golden_fills_and_book(path, tmp_path, capsys):
    scenario = json.loads(path.read_text())
    flow_file = tmp_path / "flow.jsonl"
    flow_file.write_text("".join(json.dumps(row) + "\n" for row in scenario["flow"]))
    fills_file, book_file = tmp_path / "fills.jsonl", tmp_path / "book.json"
    args = [str(flow_file), "--fills", str(fills_file), "--book", str(book_file)]
    assert flow_tool.main(args) == 0
    summary = json.loads(capsys.readouterr().out)
    fills = [json.loads(line) for line in fills_file.read_text().splitlines()]
    assert fills == scenario["fills"]
    assert json.loads(book_file.read_text()) == scenario["book"]
    assert summary["commands"] == len(scenario["flow"]) and summary["fills"] == len(fills)
