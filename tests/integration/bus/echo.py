"""A small journaled state machine for the bus tests: each input becomes two outputs on its
partition, ``b"<partition>:<offset>"`` and ``b"#<n>"``, n counting every input applied so far.
The count is state, so a recovery that repeated a turn differently or twice would show."""

from __future__ import annotations

import time

from libs.bus import Bus, JournaledHandler, Outgoing, Record


def echo_topics(name: str) -> dict[str, str]:
    return {
        "in": f"{name}-in",
        "out": f"{name}-out",
        "journal": f"{name}-journal",
        "snapshots": f"{name}-snapshots",
    }


def create_echo_topics(bus: Bus, name: str, partitions: int) -> None:
    topics = echo_topics(name)
    bus.create_topic(topics["in"], partitions)
    bus.create_topic(topics["out"], partitions)
    bus.create_topic(topics["journal"], 1)
    bus.create_topic(topics["snapshots"], 1)


class Echo(JournaledHandler[list[int], tuple[int, bytes]]):
    snapshot_key = "echo"

    def __init__(
        self, bus: Bus, name: str, partitions: int, *, delay: float = 0.0, snapshot_every: int = 100
    ) -> None:
        topics = echo_topics(name)
        self.sink = topics["out"]
        self.delay = delay
        super().__init__(
            bus,
            [(topics["in"], p) for p in range(partitions)],
            topics["snapshots"],
            journal_topic=topics["journal"],
            outputs=[self.sink],
            snapshot_every=snapshot_every,
        )

    def new_core(self) -> list[int]:
        return [0]

    def dump_core(self, core: list[int]) -> bytes:
        return str(core[0]).encode()

    def load_core(self, state: bytes) -> list[int]:
        return [int(state)]

    def apply_record(self, record: Record) -> list[tuple[int, bytes]]:
        if self.delay:
            time.sleep(self.delay)  # work in progress: the window a crash can hit
        self.core[0] += 1
        p = record.partition
        return [(p, b"%d:%d" % (p, record.offset)), (p, b"#%d" % self.core[0])]

    def outgoing(self, produced: list[tuple[int, bytes]]) -> list[Outgoing]:
        return [Outgoing(self.sink, value, partition=p) for p, value in produced]


def echoed(bus: Bus, name: str, partitions: int) -> tuple[dict[int, list[bytes]], list[int]]:
    """Return the ``p:o`` outputs per partition and every ``#n`` in the output, sorted."""
    sink = echo_topics(name)["out"]
    echoes: dict[int, list[bytes]] = {}
    numbers: list[int] = []
    for p in range(partitions):
        values = [r.value or b"" for r in bus.replay(sink, p)]
        echoes[p] = [v for v in values if not v.startswith(b"#")]
        numbers += [int(v[1:]) for v in values if v.startswith(b"#")]
    return echoes, sorted(numbers)
