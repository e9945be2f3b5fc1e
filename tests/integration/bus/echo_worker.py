"""A journaled echo worker for the crash test: ``python -m ... BOOTSTRAP NAME PARTITIONS``.

Each input record becomes its outputs (``tests.integration.bus.echo``), applied slowly so that
a SIGKILL lands anywhere: between a turn's journal record and its outputs, among its outputs,
or in an open transaction.
"""

from __future__ import annotations

import sys
import threading

from libs.bus import JournalLoop
from libs.bus.kafka import KafkaBus
from tests.integration.bus.echo import Echo


def main(bootstrap: str, name: str, partitions: int) -> None:
    bus = KafkaBus(bootstrap, producer_config={"transaction.timeout.ms": 5000})
    echo = Echo(bus, name, partitions, delay=0.002, snapshot_every=400)
    loop = JournalLoop(
        bus,
        echo,
        group_id=f"{name}-g",
        transactional_id=f"{name}-tx",
        partitions=echo.inputs,
        max_batch=50,
        commit_seconds=0.5,
    )
    print("worker ready", flush=True)
    loop.run(threading.Event())


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
