"""Kafka wire format: MessagePack of tagged msgspec structs (the fastest we measured; see
docs/BENCHMARKS.md). JSON of the same structs is available for tools and logs."""

from __future__ import annotations

import logging
from types import ModuleType
from typing import TYPE_CHECKING, Any, Generic, TypeVar, Union

import msgspec

from libs.messages import commands, events
from libs.messages.base import Message

if TYPE_CHECKING:
    from libs.bus import Record

M = TypeVar("M", bound=Message)
# A codec only hands messages out: a Codec[OrderFilled] is a Codec[Message] too.
M_co = TypeVar("M_co", bound=Message, covariant=True)
log = logging.getLogger(__name__)


class DecodeError(ValueError):
    """Bytes that are not a well-formed message of the expected kinds."""


def _concrete_messages(module: ModuleType) -> tuple[type[Message], ...]:
    """Return the module's message classes that are not a base of another one."""
    classes = [
        value
        for value in vars(module).values()
        if isinstance(value, type)
        and issubclass(value, Message)
        and value.__module__ == module.__name__
    ]
    return tuple(c for c in classes if not any(o is not c and issubclass(o, c) for o in classes))


def concrete_kinds(base: type[M]) -> tuple[type[M], ...]:
    """Return the message classes derived from ``base`` that have no subclass of their own,
    e.g. every matcher event for ``MatcherEvent``: what a codec for that family accepts."""
    found: list[type[M]] = []
    todo = list(base.__subclasses__())
    while todo:
        kind = todo.pop(0)
        subclasses = kind.__subclasses__()
        if subclasses:
            todo.extend(subclasses)
        else:
            found.append(kind)
    return tuple(found)


ALL_MESSAGES: tuple[type[Message], ...] = _concrete_messages(commands) + _concrete_messages(events)

_encoder = msgspec.msgpack.Encoder()
_json_encoder = msgspec.json.Encoder()


def encode(message: Message) -> bytes:
    """Return the wire bytes of a message."""
    return _encoder.encode(message)


def encode_json(message: Message) -> bytes:
    return _json_encoder.encode(message)


class Codec(Generic[M_co]):
    """Decode the wire bytes of one topic's message kinds; anything else is a DecodeError."""

    def __init__(self, *kinds: type[M_co]) -> None:
        if not kinds:
            raise ValueError("a codec needs at least one message kind")
        self.kinds = kinds
        kind: Any = kinds[0] if len(kinds) == 1 else Union[kinds]  # noqa: UP007
        self._decoder = msgspec.msgpack.Decoder(kind)
        self._json_decoder = msgspec.json.Decoder(kind)

    encode = staticmethod(encode)

    def decode(self, data: bytes | None) -> M_co:
        if data is None:
            raise DecodeError("empty message (tombstone)")
        try:
            return self._decoder.decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError) as error:
            raise DecodeError(str(error)) from None

    def decode_input(self, record: Record) -> M_co | None:
        """Decode a consumed record; a malformed one is logged and gives None, for the caller
        to count and skip (a consumer never stops or guesses on bad input)."""
        try:
            return self.decode(record.value)
        except DecodeError as error:
            log.warning(
                "skipping malformed %s[%d]@%d: %s",
                record.topic,
                record.partition,
                record.offset,
                error,
            )
            return None

    def decode_json(self, data: bytes | str) -> M_co:
        try:
            return self._json_decoder.decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError) as error:
            raise DecodeError(str(error)) from None


ANY = Codec(*ALL_MESSAGES)
"""Decodes every message kind (tools, logs, tests)."""
