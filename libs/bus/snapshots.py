"""Snapshots on a compacted topic: a service's state plus the input offsets it covers.

A snapshot is produced INSIDE the service's transaction, so it is visible exactly when
the outputs and offsets of the same turn are. On start a service loads its latest
snapshot, then replays its inputs from the offsets the snapshot names.
"""

from __future__ import annotations

import msgspec

from libs.bus.base import Bus, Outgoing


class Snapshot(msgspec.Struct, frozen=True, kw_only=True):
    key: str
    offsets: dict[str, int]  # "topic:partition" -> next offset to read
    seq: int  # last output sequence number covered
    state: bytes
    version: int = 1


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Snapshot)


def offsets_key(topic: str, partition: int) -> str:
    return f"{topic}:{partition}"


def snapshot_message(topic: str, snapshot: Snapshot) -> Outgoing:
    """Return the message that stores ``snapshot`` (key = snapshot key, so compaction keeps
    the latest per key). Every snapshot topic has one partition."""
    return Outgoing(topic, _encoder.encode(snapshot), key=snapshot.key.encode(), partition=0)


def latest_snapshots(bus: Bus, topic: str) -> dict[str, Snapshot]:
    """Return the newest committed snapshot of every key on a snapshot topic."""
    latest: dict[str, Snapshot] = {}
    for record in bus.replay(topic, 0):
        if record.value is None:
            continue
        try:
            snapshot = _decoder.decode(record.value)
        except (msgspec.DecodeError, msgspec.ValidationError):
            continue  # an unreadable snapshot only costs a longer replay
        latest[snapshot.key] = snapshot
    return latest


def load_snapshot(bus: Bus, topic: str, key: str) -> Snapshot | None:
    """Return the newest committed snapshot for ``key``, or None."""
    return latest_snapshots(bus, topic).get(key)
