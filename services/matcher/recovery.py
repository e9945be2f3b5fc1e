"""Rebuild a symbol's book from the topics: its latest snapshot, then the commands after it,
replayed in the batches the live matcher formed, so the replay reproduces the original state
exactly.

The batches are journaled in the output itself: the first event of every batch carries a
``cut`` header naming the batch's first and last command offsets. The partition has one
writer and the idempotent producer keeps its order, so whatever part of a batch reached the
log, its cut did first: a batch whose events only partly landed is still known.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

from libs.bus import Bus, Snapshot, load_snapshot
from libs.bus.snapshots import offsets_key

log = logging.getLogger("matcher")

CUT = "cut"  # header of a batch's first event: b"<first offset>,<last offset>"


def cut_header(first: int, last: int) -> tuple[str, bytes]:
    return CUT, f"{first},{last}".encode()


@dataclass(frozen=True)
class Plan:
    """What to load and replay for one symbol."""

    symbol: str
    partition: int
    snapshot: Snapshot | None
    next_offset: int  # first command offset after the snapshot
    events_from: int  # matcher.events offset from which the later batches are recorded


@dataclass(frozen=True)
class Landed:
    """What the symbol's events partition holds after the snapshot."""

    cuts: list[tuple[int, int]]  # (first, last) command offsets of every batch, in order
    events: int  # how many events


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


def landed(
    bus: Bus, events_topic: str, partition: int, events_from: int, after_offset: int
) -> Landed:
    """Read the events partition from ``events_from``: the batch cuts of commands at or after
    ``after_offset``, and the number of events (control records hold offsets but are no
    records, so the events are counted, not the offsets subtracted)."""
    cuts: list[tuple[int, int]] = []
    events = 0
    for record in bus.replay(events_topic, partition, events_from):
        events += 1
        for name, value in record.headers:
            if name != CUT:
                continue
            try:
                first, last = (int(part) for part in value.split(b","))
            except ValueError:
                log.error(
                    "%s[%d]@%d: unreadable cut %r", events_topic, partition, record.offset, value
                )
                continue
            if first >= after_offset:
                cuts.append((first, last))
    return Landed(cuts, events)


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
    range (in a batch of only malformed commands, which made no event and so no cut) is
    yielded alone.
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
