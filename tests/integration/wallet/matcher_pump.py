"""An in-test matcher: the integration tests run with it and with the real matcher service.

``MatcherPump`` reads ``orders.commands`` from any ``libs.bus.Bus``, applies each poll's
commands to one ``services.matcher.core.MatchingCore`` per symbol (one batch per partition and
poll) and produces the events to ``matcher.events`` (partition = symbol). It keeps its books in
memory and commits nothing, so it must outlive the test's flow; it is never the one killed.
"""

from __future__ import annotations

import threading
import uuid

from libs.bus import Bus, Outgoing
from libs.messages import ANY, MatcherEvent, encode
from libs.symbols import default_symbols
from services.matcher.core import MatchingCore


class MatcherPump:
    def __init__(
        self, bus: Bus, commands_topic: str, events_topic: str, *, batch_size: int = 1
    ) -> None:
        self.bus = bus
        self.batch_size = batch_size  # 1: fills depend on the command order alone
        self.events_topic = events_topic
        specs = list(default_symbols().values())
        self.books = {spec.index: MatchingCore(spec) for spec in specs}
        self.consumer = bus.consumer(
            f"matcher-pump-{uuid.uuid4().hex[:8]}",
            partitions=[(commands_topic, spec.index) for spec in specs],
        )
        self.producer = bus.producer()
        self.events: list[MatcherEvent] = []
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def pump_once(self, timeout: float = 0.0) -> int:
        """Apply what ``orders.commands`` holds now; return the number of commands applied."""
        records = self.consumer.poll_batch(500, timeout)
        by_partition: dict[int, list] = {}
        for record in records:
            by_partition.setdefault(record.partition, []).append(
                (record.offset, ANY.decode(record.value))
            )
        for partition, commands in by_partition.items():
            events = []
            size = self.batch_size
            for start in range(0, len(commands), size):
                events += self.books[partition].process_batch(commands[start : start + size])
            for event in events:
                self.events.append(event)
                self.producer.produce(
                    Outgoing(self.events_topic, encode(event), event.symbol.encode(), partition)
                )
        if records:
            self.producer.flush()
        return len(records)

    def progress(self) -> int:
        """How many events it has produced: unchanged for a while means it is quiet."""
        return len(self.events)

    def start(self) -> None:
        """Pump on a background thread until ``stop()``."""

        def loop() -> None:
            while not self._stop.is_set():
                self.pump_once(0.05)

        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        self.consumer.close()
