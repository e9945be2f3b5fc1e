"""The progress bars of long replays: records pass through unchanged, short ones draw nothing."""

from __future__ import annotations

from collections.abc import Iterator

from exchange.progress import LONG, Bars
from libs.bus import Record


class Replay:
    """A replay's records, remembering whether its reader was closed."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.closed = False

    def __iter__(self) -> Iterator[Record]:
        try:
            for offset in range(self.n):
                yield Record("t", 0, offset, None, b"v")
        finally:
            self.closed = True


def test_a_short_replay_passes_through_and_draws_nothing() -> None:
    with Bars() as bars:
        records = list(bars.track("replay t[0]", iter(Replay(3)), 3))
        assert bars._progress is None
    assert [r.offset for r in records] == [0, 1, 2]


def test_a_long_replay_gets_a_bar_that_ends_with_it() -> None:
    with Bars() as bars:
        records = list(bars.track("replay t[0]", iter(Replay(LONG)), LONG))
        assert bars._progress is not None and not bars._progress.tasks  # removed when done
    assert len(records) == LONG and bars._progress is None


def test_a_reader_stopping_early_closes_the_replay_at_once() -> None:
    replay = Replay(LONG * 2)
    with Bars() as bars:
        for record in bars.track("replay t[0]", iter(replay), LONG * 2):
            if record.offset == 10:
                break
    assert replay.closed


def test_bars_that_are_off_draw_nothing_however_long() -> None:
    with Bars(enabled=False) as bars:
        assert len(list(bars.track("x", iter(Replay(LONG)), LONG))) == LONG
        assert bars._progress is None
