"""The matcher's core side: the books of the owned symbols and the frames that drive them.

``CoreHost.handle(frame) -> frame`` is all the core process does between its two rings (or
the I/O process itself, inline, in tests). Frames are MessagePack arrays:

    in                                          out
    [BATCH, symbol, [[offset, cmd], ...], emit] [BATCH, symbol, [event, ...], last_offset, seq,
                                                 step_ns, malformed, [failed offset, ...],
                                                 events made (emitted or not)]
    [LOAD, symbol, snapshot_state | None]       [LOAD, symbol, last_offset, seq]
    [UNLOAD, symbol]                            [UNLOAD, symbol]
    [SNAPSHOT, symbol]                          [SNAPSHOT, symbol, state, last_offset, seq]
    [DIGEST, symbol]                            [DIGEST, symbol, digest, last_offset]

Commands and events inside frames stay in their wire encoding: the I/O process never
decodes a command or an event, it only moves bytes between Kafka and the rings.
A command that does not decode is skipped (and counted): it is the same bytes on every
replay, so skipping it is deterministic too.

A batch whose apply raises is undone: the host rebuilds the book from the state it last
loaded or snapshotted plus the batch frames applied since (kept until the next snapshot),
then applies the batch's commands one at a time, each its own batch, and skips (and reports)
any that raises again, its offset still read. The one-command batches are what
``BatchCompleted`` records, and a skipped command is in no recorded batch, so a replay, which
applies such a command alone, fails on it the same way and skips it too. Events are encoded
inside that guard even when not emitted, so a replay meets the same failures.
"""

from __future__ import annotations

import contextlib
import logging
import time

import msgspec

from libs.messages import Codec, DecodeError, MatcherCommand, encode
from libs.symbols import SymbolSpec
from services.matcher.core import MatchingCore

BATCH, LOAD, UNLOAD, SNAPSHOT, DIGEST = range(5)

pack = msgspec.msgpack.Encoder().encode
unpack = msgspec.msgpack.Decoder().decode

COMMANDS = Codec(*MatcherCommand.__args__)

log = logging.getLogger("matcher.core")

Batch = list[tuple[int, MatcherCommand]]


class CoreHost:
    """Own one MatchingCore per loaded symbol and answer frames."""

    def __init__(self, specs: dict[str, SymbolSpec]) -> None:
        self.specs = specs
        self.cores: dict[str, MatchingCore] = {}
        # per symbol: the state last loaded or snapshotted (None: empty) and what came since:
        # the BATCH frames applied (kept as they came: no copy, nothing for the GC to track)
        # and offsets only read (malformed or skipped commands)
        self._base: dict[str, bytes | None] = {}
        self._since: dict[str, list[bytes | int]] = {}

    def handle(self, frame: bytes) -> bytes:
        kind, symbol, *rest = unpack(frame)
        if kind == BATCH:
            # a BATCH frame's rest is (items, emit); mypy lets *rest of unknown length fill
            # every parameter and then counts `frame` as one too many
            return self._batch(symbol, *rest, frame)  # type: ignore[call-arg]
        if kind == LOAD:
            (state,) = rest
            spec = self.specs[symbol]
            core = MatchingCore.restore(spec, state) if state else MatchingCore(spec)
            self.cores[symbol] = core
            self._base[symbol], self._since[symbol] = state, []
            return pack([LOAD, symbol, core.last_offset, core.seq])
        if kind == UNLOAD:
            self.cores.pop(symbol, None)
            self._base.pop(symbol, None)
            self._since.pop(symbol, None)
            return pack([UNLOAD, symbol])
        core = self.cores[symbol]
        if kind == SNAPSHOT:
            state = core.snapshot()
            self._base[symbol], self._since[symbol] = state, []
            return pack([SNAPSHOT, symbol, state, core.last_offset, core.seq])
        if kind == DIGEST:
            return pack([DIGEST, symbol, core.digest(), core.last_offset])
        raise ValueError(f"unknown frame kind {kind!r}")

    def _batch(self, symbol: str, items: list, emit: bool, frame: bytes) -> bytes:
        core = self.cores[symbol]
        batch: Batch = []
        malformed = 0
        decode = COMMANDS.decode
        for offset, data in items:
            try:
                batch.append((offset, decode(data)))
            except DecodeError:
                malformed += 1
        failed: list[int] = []
        payload: list[bytes] = []
        started = time.perf_counter_ns()
        step_ns = 0
        if batch:
            try:
                events = core.process_batch(batch)
                step_ns = time.perf_counter_ns() - started
                payload = [encode(event) for event in events]
                self._since[symbol].append(frame)
            except Exception:
                log.exception(
                    "%s: a batch at offsets %d-%d raised", symbol, batch[0][0], batch[-1][0]
                )
                payload = self._one_by_one(symbol, batch, dict(items), failed)
                core = self.cores[symbol]
                step_ns = time.perf_counter_ns() - started
        elif items and items[-1][0] > core.last_offset:  # all malformed: still read
            core.last_offset = items[-1][0]
            self._since[symbol].append(core.last_offset)
        return pack(
            [
                BATCH,
                symbol,
                payload if emit else [],
                core.last_offset,
                core.seq,
                step_ns,
                malformed,
                failed,
                len(payload),
            ]
        )

    def _one_by_one(
        self, symbol: str, batch: Batch, wire: dict[int, bytes], failed: list[int]
    ) -> list[bytes]:
        """Undo a batch that raised, then apply its commands one per batch; skip any that
        raises (appended to ``failed``). Return the encoded events."""
        self._restore(symbol)
        payload: list[bytes] = []
        for item in batch:
            core = self.cores[symbol]
            if item[0] <= core.last_offset:
                continue
            try:
                encoded = [encode(event) for event in core.process_batch([item])]
            except Exception:
                log.exception("%s: the command at offset %d raised: skipped", symbol, item[0])
                self._restore(symbol).last_offset = item[0]
                self._since[symbol].append(item[0])
                failed.append(item[0])
                continue
            self._since[symbol].append(pack([BATCH, symbol, [[item[0], wire[item[0]]]], False]))
            payload += encoded
        return payload

    def _restore(self, symbol: str) -> MatchingCore:
        """Rebuild the book from its base state and the batches applied since (each of which
        applied cleanly, so it does again)."""
        spec, base = self.specs[symbol], self._base.get(symbol)
        core = MatchingCore.restore(spec, base) if base else MatchingCore(spec)
        decode = COMMANDS.decode
        for kept in self._since.setdefault(symbol, []):
            if isinstance(kept, int):
                core.last_offset = kept
                continue
            batch = []
            for offset, data in unpack(kept)[2]:
                with contextlib.suppress(DecodeError):  # malformed: skipped again
                    batch.append((offset, decode(data)))
            core.process_batch(batch)
        self.cores[symbol] = core
        return core
