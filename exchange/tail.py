"""Records of a topic as JSON lines, each decoded by the codec of what its topic carries.

A record that does not decode prints an ``error`` line instead; nothing a topic holds stops
the command.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

import msgspec

from libs.bus import Bus, Record
from libs.bus.journal import ENTRY_HEADER, decode_entry
from libs.bus.snapshots import Snapshot
from libs.messages import (
    Codec,
    DecodeError,
    Message,
)
from libs.topics import (
    MATCHER_SNAPSHOTS,
    POSITIONS_JOURNAL,
    POSITIONS_SNAPSHOTS,
    WALLET_JOURNAL,
    WALLET_SNAPSHOTS,
    exchange_topics,
)

Decoder = Callable[[bytes | None], object]

_snapshot = msgspec.msgpack.Decoder(Snapshot)


def _message_decoder(codec: Codec[Message]) -> Decoder:
    def decode(value: bytes | None) -> object:
        message = codec.decode(value)
        return {"kind": type(message).__name__, **msgspec.to_builtins(message)}

    return decode


def _snapshot_decoder(value: bytes | None) -> object:
    if value is None:
        return {"kind": "tombstone"}
    try:
        snapshot = _snapshot.decode(value)
    except (msgspec.DecodeError, msgspec.ValidationError) as error:
        raise DecodeError(str(error)) from None
    shown = msgspec.to_builtins(snapshot)
    shown["state"] = f"<{len(snapshot.state)} bytes>"
    return {"kind": "Snapshot", **shown}


def _journal_decoder(value: bytes | None) -> object:
    if value is None:
        raise DecodeError("empty journal record")
    try:
        return {"kind": "JournalEntry", **msgspec.to_builtins(decode_entry(value))}
    except (msgspec.DecodeError, msgspec.ValidationError) as error:
        raise DecodeError(str(error)) from None


DECODERS: dict[str, Decoder] = {
    **{t.name: _message_decoder(t.codec) for t in exchange_topics() if t.kinds},
    MATCHER_SNAPSHOTS: _snapshot_decoder,
    WALLET_SNAPSHOTS: _snapshot_decoder,
    POSITIONS_SNAPSHOTS: _snapshot_decoder,
    WALLET_JOURNAL: _journal_decoder,
    POSITIONS_JOURNAL: _journal_decoder,
}
"""The table's topics (``libs.topics``): message topics by their codec, the others by what
their records are."""

TOPICS = [t.name for t in exchange_topics()]


def decode_record(record: Record, topic: str) -> dict:
    """Return one record as a JSON-ready dict: where it is, its key, and the message (or
    ``error`` when it does not decode). ``topic`` is the record's topic in the table."""
    shown: dict = {
        "topic": topic,
        "partition": record.partition,
        "offset": record.offset,
        "key": record.key.decode(errors="replace") if record.key is not None else None,
    }
    headers = {}
    for name, value in record.headers:
        if name == ENTRY_HEADER:
            try:
                headers[name] = msgspec.to_builtins(decode_entry(value))
            except (msgspec.DecodeError, msgspec.ValidationError):
                headers[name] = f"<{len(value)} unreadable bytes>"
        else:
            headers[name] = value.decode(errors="replace")
    if record.source is not None:
        headers["src"] = record.source.decode(errors="replace")
    if headers:
        shown["headers"] = headers
    try:
        shown["message"] = DECODERS[topic](record.value)
    except DecodeError as error:
        size = len(record.value) if record.value is not None else 0
        shown["error"] = f"does not decode as {topic}: {error} ({size} bytes)"
    return shown


def json_line(shown: dict) -> str:
    """Return a record's dict as one line of JSON."""
    return msgspec.json.encode(shown).decode()


def read(bus: Bus, physical: str, *, count: int | None, from_beginning: bool) -> Iterator[Record]:
    """Yield the records of every partition of ``physical``: the last ``count`` of each (all
    with ``from_beginning``, or its first ``count``)."""
    for partition, end in sorted(bus.end_offsets(physical).items()):
        last = count if count is not None else 10
        start = 0 if from_beginning else max(end - last, 0)
        records = bus.replay(physical, partition, start)
        if from_beginning and count is not None:
            records = itertools.islice(records, count)
        yield from records
