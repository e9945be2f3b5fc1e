#!/usr/bin/env python3
"""CPU of a running stack's processes while it idles: % of one core per process and in total.

    scripts/idle_cpu.py [--run-dir .run] [--seconds 30] [--runs 3]

Reads the pid files that scripts/supervise.py writes (``<run_dir>/<name>.pid``: `make up`
writes them under .run/), adds every descendant (the matcher's core process, Postgres's
backends), and samples utime+stime from /proc/<pid>/stat at the start and the end of each
window. Run it with no orders flowing: what it reports is the cost of an idle exchange
(consumers polling, the index feed's ticks and what they cause). Standard library only.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            try:
                todo += [int(child) for child in task.read_text().split()]
            except OSError:
                continue
    return found


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0  # gone: counts nothing from here on
    return (int(fields[11]) + int(fields[12])) / TICK


def processes(run_dir: Path) -> dict[str, list[int]]:
    table = {}
    for pidfile in sorted(run_dir.glob("*.pid")):
        if pidfile.stem == "supervisor":
            continue
        try:
            pid = int(pidfile.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue
        if Path(f"/proc/{pid}").exists():
            table[pidfile.stem] = descendants(pid)
    return table


def window(table: dict[str, list[int]], seconds: float) -> dict[str, float]:
    """% of one core each entry used over ``seconds``."""
    before = {name: sum(map(cpu_seconds, pids)) for name, pids in table.items()}
    started = time.monotonic()
    time.sleep(seconds)
    elapsed = time.monotonic() - started
    after = {name: sum(map(cpu_seconds, pids)) for name, pids in table.items()}
    return {name: 100 * (after[name] - before[name]) / elapsed for name in table}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run-dir", type=Path, default=Path(".run"))
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    table = processes(args.run_dir)
    if not table:
        raise SystemExit(f"no live processes under {args.run_dir}/*.pid")
    results = [window(table, args.seconds) for _ in range(args.runs)]
    names = sorted(table, key=lambda n: -sum(r[n] for r in results))
    print(f"% of one core over {args.seconds:g} s windows ({os.cpu_count()} cores here)")
    print(f"{'process':12s} " + " ".join(f"run {i + 1:>2d}" for i in range(args.runs)))
    for name in names:
        print(f"{name:12s} " + " ".join(f"{r[name]:6.1f}" for r in results))
    print(f"{'total':12s} " + " ".join(f"{sum(r.values()):6.1f}" for r in results))


if __name__ == "__main__":
    main()
