"""Order ids: unique across gateway instances, increasing with time (snowflake layout).

    bits 60..22  milliseconds since 2026-01-01 (39 bits: until 2043)
    bits 21..12  gateway instance (10 bits: 1024 gateways)
    bits 11..0   sequence inside the millisecond (4096 ids per ms per gateway)

Ids stay below 2**61: bit 62 belongs to the position engine's liquidation orders
(services/positions/core/engine.py), so the two never collide; bit 61 is kept free. (Trade ids,
ADL trades' included, come from each book's trade counter: another space.)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

EPOCH_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
INSTANCE_BITS = 10
SEQUENCE_BITS = 12
MAX_INSTANCE = (1 << INSTANCE_BITS) - 1
MAX_SEQUENCE = (1 << SEQUENCE_BITS) - 1


class OrderIds:
    """Hand out ids for one gateway instance; thread-safe."""

    def __init__(self, instance: int, clock_ms: Callable[[], int] | None = None) -> None:
        if not 0 <= instance <= MAX_INSTANCE:
            raise ValueError(f"gateway instance must be in 0..{MAX_INSTANCE}, got {instance}")
        self._instance = instance
        self._clock_ms = clock_ms or (lambda: time.time_ns() // 1_000_000)
        self._lock = threading.Lock()
        self._last_ms = 0
        self._sequence = 0

    def next(self) -> int:
        with self._lock:
            now = max(self._clock_ms() - EPOCH_MS, self._last_ms)  # a clock step back waits
            if now == self._last_ms:
                self._sequence += 1
                if self._sequence > MAX_SEQUENCE:  # 4096 ids this ms: borrow the next one
                    now += 1
                    self._sequence = 0
            else:
                self._sequence = 0
            self._last_ms = now
            return (
                (now << (INSTANCE_BITS + SEQUENCE_BITS))
                | (self._instance << SEQUENCE_BITS)
                | self._sequence
            )
