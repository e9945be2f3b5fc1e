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
    IndexPriceTick,
    MatcherCommand,
    MatcherEvent,
    Message,
    OrderRequest,
    PositionEvent,
    WalletEvent,
    concrete_kinds,
)
from libs.topics import exchange_topics

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


def _union(kinds: object) -> Codec[Message]:
    return Codec(*kinds.__args__)  # type: ignore[attr-defined]


DECODERS: dict[str, Decoder] = {
    "orders.requests": _message_decoder(_union(OrderRequest)),
    "orders.commands": _message_decoder(_union(MatcherCommand)),
    "matcher.events": _message_decoder(Codec(*concrete_kinds(MatcherEvent))),
    "index.prices": _message_decoder(Codec(IndexPriceTick)),
    "positions.events": _message_decoder(Codec(*concrete_kinds(PositionEvent))),
    "wallet.events": _message_decoder(Codec(*concrete_kinds(WalletEvent))),
    "matcher.snapshots": _snapshot_decoder,
    "wallet.snapshots": _snapshot_decoder,
    "positions.snapshots": _snapshot_decoder,
    "wallet.journal": _journal_decoder,
    "positions.journal": _journal_decoder,
}
"""The table's topics (``libs.topics.exchange_topics``), each with what it carries."""

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
