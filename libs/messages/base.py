"""The base of every message on the bus: frozen msgspec structs, tagged with name and version."""

from __future__ import annotations

import msgspec

WIRE_VERSION = 1


def _tag(class_name: str) -> str:
    # A message's tag carries its schema version; a v2 is a new class with its own tag,
    # and decoders accept both while producers migrate.
    return f"{class_name}.v{WIRE_VERSION}"


class Message(
    msgspec.Struct,
    frozen=True,
    kw_only=True,
    omit_defaults=True,
    tag_field="t",
    tag=_tag,
):
    """A command or an event on the bus."""


class Command(Message, frozen=True, kw_only=True):
    """An imperative: something a service is asked to do. May be refused."""


class Event(Message, frozen=True, kw_only=True):
    """A fact: something that happened. Never refused, only applied (once)."""
