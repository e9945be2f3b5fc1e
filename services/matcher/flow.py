"""Run an order flow through one BTC-PERP matching core and time it.

    python -m services.matcher.flow FLOW.jsonl [--fills FILLS.jsonl] [--book BOOK.json]

FLOW lines are ``{"op":"place","id":7,"user":3,"side":"buy","type":"limit","price":"50000.1",
"qty":"0.010","tif":"GTC"}`` or ``{"op":"cancel","id":7,"user":3}``. Every command is its own
batch, applied in file order. The flow is parsed before any timing; ``commands_per_sec`` comes
from an untimed-per-command pass, the percentiles from a second pass timing each command.
Prints one JSON line: commands, fills, seconds, commands_per_sec, p50_us, p99_us, p999_us.
Symbol filters apply (min/max qty, min notional, max open orders); no mark price is known,
so no price bands apply; no margin checks (the wallet does those upstream).
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from collections.abc import Iterable
from pathlib import Path

from libs.messages import (
    CancelOrder,
    MatcherCommand,
    OrderFilled,
    OrderType,
    PlaceOrder,
    Side,
    TimeInForce,
)
from libs.symbols import SymbolSpec, get_symbol
from services.matcher.core import MatchingCore

SYMBOL = "BTC-PERP"


def parse_flow(lines: Iterable[str], spec: SymbolSpec) -> list[MatcherCommand]:
    """Return the commands of a FLOW file's lines (blank lines skipped)."""
    commands: list[MatcherCommand] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        row = json.loads(line)
        op = row.get("op")
        if op == "place":
            kind = OrderType(row.get("type", "limit"))
            price = row.get("price")
            commands.append(
                PlaceOrder(
                    request_id="",
                    order_id=int(row["id"]),
                    user_id=int(row["user"]),
                    symbol=spec.name,
                    side=Side(row["side"]),
                    order_type=kind,
                    qty=spec.qty_to_lots(row["qty"]),
                    price=spec.price_to_ticks(price) if price is not None else None,
                    tif=TimeInForce(row.get("tif") or "GTC"),
                )
            )
        elif op == "cancel":
            commands.append(
                CancelOrder(
                    request_id="",
                    user_id=int(row["user"]),
                    symbol=spec.name,
                    order_id=int(row["id"]),
                )
            )
        else:
            raise ValueError(f"line {number}: unknown op {op!r}")
    return commands


def percentile(sorted_values: list[int], q: float) -> int:
    """Return the nearest-rank q-quantile of already sorted values."""
    if not sorted_values:
        return 0
    rank = max(1, -(-len(sorted_values) * q // 1))
    return sorted_values[min(len(sorted_values), int(rank)) - 1]


def run_throughput(spec: SymbolSpec, commands: list[MatcherCommand]):
    """Apply every command as a batch of one (events dropped); return (core, seconds)."""
    core = MatchingCore(spec)
    process = core.process_batch
    start = time.perf_counter()
    for offset, cmd in enumerate(commands):
        process([(offset, cmd)])
    seconds = time.perf_counter() - start
    return core, seconds


def run_latency(spec: SymbolSpec, commands: list[MatcherCommand]):
    """Apply every command as a batch of one; return (sorted ns per command, the fills).

    The fills are picked out of each command's events after its clock has stopped.
    """
    core = MatchingCore(spec)
    process = core.process_batch
    clock = time.perf_counter_ns
    latencies: list[int] = []
    keep = latencies.append
    fills: list[OrderFilled] = []
    for offset, cmd in enumerate(commands):
        start = clock()
        events = process([(offset, cmd)])
        keep(clock() - start)
        if len(events) > 2:
            fills += [e for e in events if type(e) is OrderFilled]
    latencies.sort()
    return latencies, fills


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.matcher.flow", description=__doc__)
    parser.add_argument("flow", type=Path)
    parser.add_argument("--fills", type=Path, help="write every fill as a JSON line")
    parser.add_argument("--book", type=Path, help="write the final aggregated book as JSON")
    args = parser.parse_args(argv)
    spec = get_symbol(SYMBOL)
    with args.flow.open() as file:
        commands = parse_flow(file, spec)
    gc.collect()
    core, seconds = run_throughput(spec, commands)
    gc.collect()
    latencies, fills = run_latency(spec, commands)
    n = len(commands)
    summary = {
        "commands": n,
        "fills": core.trade_id,  # one trade id per OrderFilled
        "seconds": round(seconds, 6),
        "commands_per_sec": round(n / seconds, 1) if seconds > 0 else 0.0,
        "p50_us": round(percentile(latencies, 0.50) / 1000, 3),
        "p99_us": round(percentile(latencies, 0.99) / 1000, 3),
        "p999_us": round(percentile(latencies, 0.999) / 1000, 3),
    }
    if args.fills:
        price, qty = spec.ticks_to_price, spec.lots_to_qty
        with args.fills.open("w") as file:
            for fill in fills:
                row = {
                    "taker": fill.taker_order_id,
                    "maker": fill.maker_order_id,
                    "price": price(fill.price),
                    "qty": qty(fill.qty),
                }
                file.write(json.dumps(row) + "\n")
    if args.book:
        _, bids, asks = core.depth(1 << 30)
        book = {
            "bids": [[spec.ticks_to_price(p), spec.lots_to_qty(q)] for p, q in bids],
            "asks": [[spec.ticks_to_price(p), spec.lots_to_qty(q)] for p, q in asks],
        }
        args.book.write_text(json.dumps(book) + "\n")
    sys.stdout.write(json.dumps(summary) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
