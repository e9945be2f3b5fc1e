"""Shared-memory ring throughput between two processes: single pushes and batches."""

from __future__ import annotations

import multiprocessing
import time

from services.matcher.ring import Ring

FORK = multiprocessing.get_context("fork")
COUNT = 1_000_000
RECORD = b"x" * 64  # about the size of an encoded command


def _produce(ring: Ring, batch: int) -> None:
    if batch == 1:
        for _ in range(COUNT):
            ring.push(RECORD)
    else:
        records = [RECORD] * batch
        for _ in range(COUNT // batch):
            ring.push_batch(records)


def _sent(batch: int) -> int:
    return COUNT // batch * batch


def _measure(batch: int) -> float:
    ring = Ring(1 << 20)
    producer = FORK.Process(target=_produce, args=(ring, batch))
    start = time.perf_counter()
    producer.start()
    received = 0
    while received < _sent(batch):
        records = ring.pop_batch(256, timeout=10)
        if not records:
            raise RuntimeError(f"ring bench stalled after {received} records")
        received += len(records)
    elapsed = time.perf_counter() - start
    producer.join()
    ring.close()
    return received / elapsed


def run() -> str:
    rows = [f"| {batch} | {_measure(batch):,.0f} |" for batch in (1, 16, 256)]
    return "\n".join(
        [
            "## Shared-memory ring (two processes, 64-byte records, 1 MiB ring)",
            "",
            f"{COUNT:,} records from a producer process to a consumer process that pops batches "
            "of up to 256.",
            "",
            "| records per push | records/s |",
            "| ---: | ---: |",
            *rows,
        ]
    )


if __name__ == "__main__":
    print(run())
