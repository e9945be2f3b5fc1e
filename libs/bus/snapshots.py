"""Snapshots on a compacted topic: a service's state plus the log positions it covers.

A snapshot names the next input offsets its state has not applied and, for a journaled
service, the next journal offset and the end of every output partition when it was taken
(every output of the turns it covers was durable by then). On start a service loads its latest
snapshot, then replays the journal (or its inputs) from there.
"""

from __future__ import annotations

import msgspec

from libs.bus.base import Bus, Outgoing


class Snapshot(msgspec.Struct, frozen=True, kw_only=True):
    key: str
    offsets: dict[str, int]  # "topic:partition" -> next offset to read
    seq: int  # last output sequence number covered (journaled handlers: the snapshot's number)
    state: bytes
    version: int = 1
    journal: int = 0  # the next journal offset the state does not reflect
    entries: int = 0  # the number of the last journal entry the state reflects
    outputs: dict[str, int] = {}  # "topic:partition" -> its end when the snapshot was taken


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
