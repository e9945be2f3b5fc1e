"""A progress bar on stderr for long replays: the bus a rebuild reads through reports them.

Only replays with at least ``LONG`` records to go get a bar (a rebuild of a small log stays
silent); rich draws nothing but the final state when stderr is not a terminal.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from libs.bus import Record
from libs.bus.kafka import KafkaBus

LONG = 5000


class Bars:
    """The bars of one command (a context manager). Nothing is drawn, not even a blank line,
    until a long replay starts; with ``enabled`` off, never."""

    def __init__(self, *, enabled: bool = True) -> None:
        self.enabled = enabled
        self._progress: Progress | None = None

    def __enter__(self) -> Bars:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def _started(self) -> Progress:
        if self._progress is None:
            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self._progress.start()
        return self._progress

    def track(self, name: str, records: Iterator[Record], total: int) -> Iterator[Record]:
        """Yield ``records``, advancing a bar named ``name`` when ``total`` is long."""
        if not self.enabled or total < LONG:
            yield from records
            return
        progress = self._started()
        task = progress.add_task(name, total=total)
        try:
            for record in records:
                progress.advance(task)
                yield record
        finally:  # a reader stopping early closes the replay's consumer now, not at GC
            progress.remove_task(task)
            close = getattr(records, "close", None)
            if close is not None:
                close()


class ProgressBus(KafkaBus):
    """A KafkaBus whose replays advance ``bars``."""

    def __init__(self, bootstrap_servers: str, bars: Bars, client_id: str) -> None:
        super().__init__(bootstrap_servers, client_id=client_id)
        self.bars = bars

    def replay(self, topic: str, partition: int, start: int = 0) -> Iterator[Record]:
        end = self.end_offsets(topic).get(partition, 0)
        records = super().replay(topic, partition, start)
        return self.bars.track(f"replay {topic}[{partition}]", records, end - start)
