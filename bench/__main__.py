"""Run every benchmark and write docs/BENCHMARKS.md: ``python -m bench [name ...]``.

Each module in ``SECTIONS`` exposes ``run() -> str`` returning a Markdown section. The
Kafka sections need ``KAFKA_BOOTSTRAP_SERVERS`` (``make bench`` starts a broker).

Every section runs in a process of its own, so that what one section leaves behind (a large
heap for the collector to walk, client threads still polling) cannot skew the latencies the
next one measures in-process.
"""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
import sys
from pathlib import Path

SECTIONS = [
    "bench.wire",
    "bench.kafka_throughput",
    "bench.ring",
    "bench.matcher_core",
    "bench.matcher_service",
    "bench.matcher_rebalance",
    "bench.wallet",
    "bench.positions",
    "bench.gateway",
    "bench.gateway_mixed",
    "bench.cluster",
]
OUTPUT = Path(__file__).resolve().parent.parent / "docs" / "BENCHMARKS.md"


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f", {kib / 1024 / 1024:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores{memory}; {platform.system()} {platform.release()}; "
        f"Python {platform.python_version()}"
    )


def run_alone(name: str) -> str:
    """Return ``name.run()`` computed in a fresh interpreter (its stderr passes through)."""
    done = subprocess.run(
        [sys.executable, "-c", f"import {name}; print({name}.run(), end='')"],
        stdout=subprocess.PIPE,
        text=True,
        check=True,
    )
    return done.stdout


def main(argv: list[str]) -> int:
    wanted = [f"bench.{name}" for name in argv] or SECTIONS
    parts = [
        "# Benchmarks",
        "",
        "Written by `make bench` (`python -m bench`); numbers from one run, on one machine.",
        "",
        f"- Machine: {machine()}",
        f"- Date: {datetime.date.today().isoformat()}",
        "- Command: `make bench` (starts a throw-away single-node Kafka on the same machine)",
        "",
    ]
    for name in wanted:
        print(f"bench: running {name}", file=sys.stderr, flush=True)
        section = run_alone(name)
        print(section, flush=True)
        parts += [section.rstrip(), ""]
    if argv:
        return 0  # a partial run prints but does not overwrite the full report
    OUTPUT.write_text("\n".join(parts))
    print(f"bench: wrote {OUTPUT}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
