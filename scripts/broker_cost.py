"""What a bare broker spends per record relayed through three plain Kafka hops, and where.

    .venv/bin/python scripts/broker_cost.py [NAME='JVM OPTIONS|key=value;key=value[|CPUS]' ...]

Each variant starts a broker of its own (``scripts/kafka.sh start`` on ports 29092/29093,
data under .run/broker-cost/NAME) with the stack's properties and the variant's on top, warms
it for 60 s at 500 records/s, then runs three 20 s rounds at 200 records/s of
``bench.kafka_floor`` (six requests per record: a produce and a fetch per hop). Per round: the
broker's CPU per record, the share of it in the kernel and its threads' context switches per
record. CPUS (a ``taskset -c`` list) pins the broker to those CPUs. Without arguments it
compares the garbage collectors, the thread counts and pinning the broker to one CPU.
Findings: ADR 0001 point 7. Needs the Kafka jars (``make venv`` and ``scripts/kafka.sh
fetch``); run it on a quiet machine, not beside a stack.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.kafka_floor import WARMUP_SECONDS, measure  # noqa: E402
from bench.stack_cpu import machine_seconds, stat_times, stolen_percent  # noqa: E402

PORT, CONTROLLER_PORT = 29092, 29093
HEAP = "-Xms512m -Xmx1g"
VARIANTS = {
    "g1 (the stack's)": f"{HEAP} -XX:+UseG1GC -XX:MaxGCPauseMillis=20|",
    "serial gc": f"{HEAP} -XX:+UseSerialGC|",
    "parallel gc": f"{HEAP} -XX:+UseParallelGC|",
    "1 network + 1 I/O thread": f"{HEAP} -XX:+UseG1GC -XX:MaxGCPauseMillis=20|"
    "num.network.threads=1;num.io.threads=1",
    "pinned to CPU 0": f"{HEAP} -XX:+UseG1GC -XX:MaxGCPauseMillis=20||0",
}
WARM_SECONDS, ROUNDS, RATE, SECONDS = 60, 3, 200, 20


def _times(pid: int) -> tuple[float, float, int]:
    """The broker's user and kernel CPU seconds and its threads' context switches so far."""
    user, kernel = stat_times(Path(f"/proc/{pid}/stat").read_text())
    switches = 0
    for status in Path(f"/proc/{pid}/task").glob("*/status"):
        try:
            lines = status.read_text().splitlines()
        except OSError:
            continue  # the thread ended
        switches += sum(int(line.split()[1]) for line in lines if "ctxt_switches" in line)
    return user, kernel, switches


def run(name: str, spec: str) -> list[str]:
    jvm, _, rest = spec.partition("|")
    properties, _, cpus = rest.partition("|")
    data = ROOT / ".run" / "broker-cost" / re.sub(r"[^A-Za-z0-9]+", "-", name)  # no comma
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    env = os.environ | {
        "KAFKA_JVM_OPTS": jvm,
        "KAFKA_EXTRA_PROPERTIES": "\n".join(p for p in properties.split(";") if p),
    }
    kafka = str(ROOT / "scripts" / "kafka.sh")
    with open(data / "broker.log", "w") as log:
        broker = subprocess.Popen(
            [
                *(["taskset", "-c", cpus] if cpus else []),
                kafka,
                "start",
                str(data),
                str(PORT),
                str(CONTROLLER_PORT),
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    bootstrap = f"127.0.0.1:{PORT}"
    rows = []
    try:
        subprocess.run([kafka, "wait", bootstrap, "90"], check=True)
        measure(bootstrap, 500, WARM_SECONDS)  # the JIT compiles the hot paths
        for round_ in range(1, ROUNDS + 1):
            machine, before = machine_seconds(), _times(broker.pid)
            result = measure(bootstrap, RATE, SECONDS)
            after, stolen = _times(broker.pid), stolen_percent(machine, machine_seconds())
            # the split covers the whole call: the floor's warm-up records count here too
            n = result["records"] + int(RATE * WARMUP_SECONDS)
            user, kernel, switches = (b - a for a, b in zip(before, after, strict=True))
            rows.append(
                f"| {name} | {round_} | {result['cpu']['kafka broker']:.2f} | "
                f"{100 * kernel / (user + kernel):.0f}% | {switches / n:.1f} | "
                f"{result['p50']:.2f} | {result['p99']:.2f} | {stolen:.0f}% |"
            )
            print(rows[-1], flush=True)
    finally:
        broker.terminate()
        broker.wait(30)
    return rows


def main(argv: list[str]) -> None:
    variants = dict(arg.split("=", 1) for arg in argv) if argv else VARIANTS
    os.chdir(ROOT)  # the floor's relays run as ``python -m bench.kafka_floor``
    os.environ["KAFKA_BOOTSTRAP_SERVERS"] = f"127.0.0.1:{PORT}"  # kafka_floor finds the broker
    header = [
        f"Three plain hops at {RATE} records/s, {SECONDS} s rounds, a bare broker per variant:",
        "",
        "| variant | round | broker CPU ms/record | of it in the kernel | context switches/record "
        "| p50 ms | p99 ms | stolen |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    rows = [row for name, spec in variants.items() for row in run(name, spec)]
    print("\n".join(header + rows))


if __name__ == "__main__":
    main(sys.argv[1:])
