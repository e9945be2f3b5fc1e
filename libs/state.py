"""One snapshot convention for every pure core (matcher, wallet, positions).

A core turns its whole state into a typed, versioned value (``to_state``) and is rebuilt from
one (``from_state``); a ``StateCodec`` turns that value into canonical bytes and back, checks
the version (upgrading an older one where the core says how) and computes the digest. Equal
histories give equal states, equal bytes and equal digests, so a replay is checked by its
digest. The bytes are MessagePack arrays (``array_like`` structs), ``version`` first.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

import msgspec


class State(msgspec.Struct, array_like=True, frozen=True):
    """Base of a core's snapshot state: every subclass starts with its ``version``."""

    version: int


S = TypeVar("S", bound=State)

Upgrade = Callable[[list[Any]], list[Any]]
"""Turns the raw array of an older version into the array of the next one."""


class StateVersionError(ValueError):
    """A snapshot of a version this code cannot read (newer, or older with no upgrade)."""


class StateCodec(Generic[S]):
    """Canonical bytes of one core's state, the version check, and the digest."""

    def __init__(
        self, kind: type[S], version: int, upgrades: Mapping[int, Upgrade] | None = None
    ) -> None:
        self.kind = kind
        self.version = version
        self.upgrades = dict(upgrades or {})
        self._encoder = msgspec.msgpack.Encoder()
        self._decoder = msgspec.msgpack.Decoder(kind)

    def encode(self, state: S) -> bytes:
        if state.version != self.version:
            raise StateVersionError(
                f"{self.kind.__name__} v{state.version} written as v{self.version}"
            )
        return self._encoder.encode(state)

    def decode(self, data: bytes) -> S:
        """Return the state in ``data``, upgraded to this version."""
        try:  # the current version decodes straight into its struct (a large book: seconds)
            state = self._decoder.decode(data)
            if state.version == self.version:
                return state
        except (msgspec.DecodeError, msgspec.ValidationError):
            pass  # another version's layout: read it raw, then upgrade it
        raw = msgspec.msgpack.decode(data)
        if not isinstance(raw, list) or not raw or not isinstance(raw[0], int):
            raise StateVersionError(f"not a versioned {self.kind.__name__}")
        while raw[0] != self.version:
            upgrade = self.upgrades.get(raw[0])
            if upgrade is None:
                raise StateVersionError(
                    f"{self.kind.__name__} v{raw[0]}: this code reads v{self.version}"
                    + (f" and upgrades v{sorted(self.upgrades)}" if self.upgrades else "")
                )
            raw = upgrade(raw)
        return msgspec.convert(raw, self.kind)

    def digest(self, state: S) -> str:
        """Return the SHA-256 of the state's canonical bytes, in hex."""
        return hashlib.sha256(self.encode(state)).hexdigest()
