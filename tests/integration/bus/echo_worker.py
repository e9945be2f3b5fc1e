"""A consume-transform-produce worker for the crash test: ``python -m ... BOOTSTRAP NAME``.

Each input record becomes one output carrying the input's partition and offset, produced
slowly so that a SIGKILL lands in the middle of a transaction.
"""

from __future__ import annotations

import sys
import threading
import time

from libs.bus import Outgoing, Record, TransactionalLoop
from libs.bus.kafka import KafkaBus


class SlowEcho:
    def __init__(self, sink: str) -> None:
        self.sink = sink

    def handle(self, records: list[Record]) -> list[Outgoing]:
        time.sleep(0.002 * len(records))  # work in progress: the window a crash can hit
        return [
            Outgoing(
                self.sink, b"%d:%d" % (r.partition, r.offset), key=r.key, partition=r.partition
            )
            for r in records
        ]

    def rewind(self, committed) -> None:
        return None  # stateless


def main(bootstrap: str, name: str) -> None:
    # A killed worker's open transaction blocks committed-offset reads (KIP-447) until the
    # successor aborts it or it times out: keep the timeout short so the test can poll.
    bus = KafkaBus(bootstrap, producer_config={"transaction.timeout.ms": 5000})
    loop = TransactionalLoop(
        bus,
        SlowEcho(f"{name}-out"),
        group_id=f"{name}-g",
        transactional_id=f"{name}-tx",
        topics=[f"{name}-in"],
        max_batch=50,
    )
    print("worker ready", flush=True)
    loop.run(threading.Event())


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
