"""Rebuild a symbol's book from the topics: its latest snapshot, then the commands after it,
replayed in the batches the live matcher formed (read back from its BatchCompleted events),
so the replay reproduces the original state exactly."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from libs.bus import Bus, Snapshot, load_snapshot
from libs.bus.snapshots import offsets_key
from libs.messages import BatchCompleted, Codec, DecodeError

BATCH_EVENTS = Codec(BatchCompleted)


@dataclass(frozen=True)
class Plan:
    """What to load and replay for one symbol."""

    symbol: str
    partition: int
    snapshot: Snapshot | None
    next_offset: int  # first command offset after the snapshot
    events_from: int  # matcher.events offset from which the later batches are recorded


def plan(
    bus: Bus,
    symbol: str,
    partition: int,
    *,
    commands_topic: str,
    events_topic: str,
    snapshots_topic: str,
) -> Plan:
    snapshot = load_snapshot(bus, snapshots_topic, symbol)
    if snapshot is None:
        return Plan(symbol, partition, None, 0, 0)
    return Plan(
        symbol,
        partition,
        snapshot,
        snapshot.offsets.get(offsets_key(commands_topic, partition), 0),
        snapshot.offsets.get(offsets_key(events_topic, partition), 0),
    )


def recorded_batches(
    bus: Bus, events_topic: str, partition: int, events_from: int, after_offset: int
) -> list[tuple[int, int]]:
    """Return the (first, last) command offsets of every batch recorded after ``after_offset``."""
    ranges = []
    for record in bus.replay(events_topic, partition, events_from):
        value = record.value or b""
        if b"BatchCompleted" not in value:  # cheap filter before decoding
            continue
        try:
            event = BATCH_EVENTS.decode(value)
        except DecodeError:
            continue
        if event.cmd_offset >= after_offset:
            ranges.append((event.first_offset, event.cmd_offset))
    return ranges


def replay_batches(
    bus: Bus,
    commands_topic: str,
    partition: int,
    start: int,
    ranges: list[tuple[int, int]],
    end: int,
) -> Iterator[list[list]]:
    """Yield [[offset, command bytes], ...] batches for the commands in [start, end).

    A command inside a recorded range joins that range's batch; a command outside every
    range (one that never decoded, so it formed no batch) is yielded alone.
    """
    if start >= end:
        return
    bounds = iter(sorted(ranges))
    current = next(bounds, None)
    batch: list[list] = []
    for record in bus.replay(commands_topic, partition, start):
        offset = record.offset
        if offset >= end:
            break
        while current is not None and offset > current[1]:
            if batch:
                yield batch
                batch = []
            current = next(bounds, None)
        if current is not None and current[0] <= offset <= current[1]:
            batch.append([offset, record.value or b""])
        else:
            if batch:
                yield batch
                batch = []
            yield [[offset, record.value or b""]]
    if batch:
        yield batch
