"""How the I/O process talks to the core: frames in, the same number of frames back, in order.

``RingLink`` crosses to the pinned core process through two shared-memory rings;
``InlineLink`` calls a CoreHost in this process (tests, and the rebuild CLI).
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Sequence
from typing import Protocol

from libs.symbols import SymbolSpec
from services.matcher.core_process import STOP, run_core
from services.matcher.host import CoreHost
from services.matcher.ring import Ring

MAX_IN_FLIGHT = 32  # frames pushed before their replies are drained: bounds the out ring's load


class CoreDied(RuntimeError):
    """The core process is gone: the service must exit and recover on restart."""


class CoreLink(Protocol):
    def call(self, frames: Sequence[bytes]) -> list[bytes]:
        """Send frames to the core; return its replies, one per frame, in order."""

    def occupancy(self) -> tuple[int, int]:
        """Bytes waiting in the (inbound, outbound) rings."""

    def close(self) -> None: ...


class InlineLink:
    def __init__(self, specs: dict[str, SymbolSpec]) -> None:
        self.host = CoreHost(specs)

    def call(self, frames: Sequence[bytes]) -> list[bytes]:
        return [self.host.handle(frame) for frame in frames]

    def occupancy(self) -> tuple[int, int]:
        return 0, 0

    def close(self) -> None:
        return None


class RingLink:
    """Start the core process (fork) and exchange frames with it over two rings.

    Create it before any Kafka client: librdkafka's threads do not survive a fork.
    """

    def __init__(
        self,
        specs: dict[str, SymbolSpec],
        *,
        in_bytes: int,
        out_bytes: int,
        cpu: int | None,
        sched_fifo: bool,
    ) -> None:
        self.inbound = Ring(in_bytes)
        self.outbound = Ring(out_bytes)
        context = multiprocessing.get_context("fork")
        self.process = context.Process(
            target=run_core,
            name="matcher-core",
            args=(self.inbound, self.outbound, specs, cpu, sched_fifo),
            daemon=True,
        )
        self.process.start()

    def call(self, frames: Sequence[bytes]) -> list[bytes]:
        replies: list[bytes] = []
        for sent, frame in enumerate(frames):
            while sent - len(replies) >= MAX_IN_FLIGHT:
                replies += self._receive(len(frames) - len(replies))
            self._push(frame)
            replies += self.outbound.try_pop_batch(len(frames) - len(replies))
        while len(replies) < len(frames):
            replies += self._receive(len(frames) - len(replies))
        return replies

    def _push(self, frame: bytes) -> None:
        while True:
            try:
                self.inbound.push(frame, timeout=1.0)
                return
            except TimeoutError:
                if not self.process.is_alive():
                    exitcode = self.process.exitcode
                    raise CoreDied(f"matcher core process exited with {exitcode}") from None

    def _receive(self, wanted: int) -> list[bytes]:
        while True:
            replies = self.outbound.pop_batch(wanted, timeout=1.0)
            if replies:
                return replies
            if not self.process.is_alive():
                raise CoreDied(f"matcher core process exited with {self.process.exitcode}")

    def occupancy(self) -> tuple[int, int]:
        return self.inbound.occupancy(), self.outbound.occupancy()

    def close(self) -> None:
        if self.process.is_alive():
            self.inbound.push(STOP)
            self.process.join(5)
        if self.process.is_alive():
            self.process.kill()
        self.inbound.close()
        self.outbound.close()
