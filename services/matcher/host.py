"""The matcher's core side: the books of the owned symbols and the frames that drive them.

``CoreHost.handle(frame) -> frame`` is all the core process does between its two rings (or
the I/O process itself, inline, in tests). Frames are MessagePack arrays:

    in                                          out
    [BATCH, symbol, [[offset, cmd], ...], emit] [BATCH, symbol, [event, ...], last_offset, seq,
                                                 step_ns, malformed]
    [LOAD, symbol, snapshot_state | None]       [LOAD, symbol, last_offset, seq]
    [UNLOAD, symbol]                            [UNLOAD, symbol]
    [SNAPSHOT, symbol]                          [SNAPSHOT, symbol, state, last_offset, seq]
    [DIGEST, symbol]                            [DIGEST, symbol, digest, last_offset]

Commands and events inside frames stay in their wire encoding: the I/O process never
decodes a command or an event, it only moves bytes between Kafka and the rings.
A command that does not decode is skipped (and counted): it is the same bytes on every
replay, so skipping it is deterministic too.
"""

from __future__ import annotations

import time

import msgspec

from libs.messages import Codec, DecodeError, MatcherCommand, encode
from libs.symbols import SymbolSpec
from services.matcher.core import MatchingCore

BATCH, LOAD, UNLOAD, SNAPSHOT, DIGEST = range(5)

pack = msgspec.msgpack.Encoder().encode
unpack = msgspec.msgpack.Decoder().decode

COMMANDS = Codec(*MatcherCommand.__args__)


class CoreHost:
    """Own one MatchingCore per loaded symbol and answer frames."""

    def __init__(self, specs: dict[str, SymbolSpec]) -> None:
        self.specs = specs
        self.cores: dict[str, MatchingCore] = {}

    def handle(self, frame: bytes) -> bytes:
        kind, symbol, *rest = unpack(frame)
        if kind == BATCH:
            return self._batch(symbol, *rest)
        if kind == LOAD:
            (state,) = rest
            spec = self.specs[symbol]
            core = MatchingCore.restore(spec, state) if state else MatchingCore(spec)
            self.cores[symbol] = core
            return pack([LOAD, symbol, core.last_offset, core.seq])
        if kind == UNLOAD:
            self.cores.pop(symbol, None)
            return pack([UNLOAD, symbol])
        core = self.cores[symbol]
        if kind == SNAPSHOT:
            return pack([SNAPSHOT, symbol, core.snapshot(), core.last_offset, core.seq])
        if kind == DIGEST:
            return pack([DIGEST, symbol, core.digest(), core.last_offset])
        raise ValueError(f"unknown frame kind {kind!r}")

    def _batch(self, symbol: str, items: list, emit: bool) -> bytes:
        core = self.cores[symbol]
        batch = []
        malformed = 0
        decode = COMMANDS.decode
        for offset, data in items:
            try:
                batch.append((offset, decode(data)))
            except DecodeError:
                malformed += 1
        started = time.perf_counter_ns()
        events = core.process_batch(batch) if batch else []
        step_ns = time.perf_counter_ns() - started
        if not batch and items:
            core.last_offset = max(core.last_offset, items[-1][0])  # all malformed: still read
        payload = [encode(event) for event in events] if emit else []
        return pack([BATCH, symbol, payload, core.last_offset, core.seq, step_ns, malformed])
