"""Each engine's live digest against its rebuild from the topics at the same offsets.

An engine serves ``/digest`` with what its state covers (``offsets``: the next input offset
per partition; the matcher's ``offset``: the last command applied). A rebuild reports the
same. The two are compared only where they cover the same offsets: a live engine still
applying inputs is asked again until they meet, up to a deadline. Same offsets, different
digest: the engines disagree with their own log, which is what this is for.

``compare`` and ``line`` are pure; ``verify`` takes the I/O as functions.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum


class Verdict(Enum):
    AGREE = "agrees"
    DIFFER = "DIFFERS"
    APART = "NOT SETTLED"  # never at the same offsets before the deadline
    UNREACHABLE = "UNREACHABLE"


@dataclass(frozen=True)
class Check:
    """The outcome for one engine (the matcher: one book)."""

    engine: str
    verdict: Verdict
    live: dict | None = None
    rebuilt: dict | None = None
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.verdict is Verdict.AGREE


@dataclass(frozen=True)
class Engine:
    """How to ask one engine: its live digest, and its rebuild from the topics (given the
    live digest it will be compared with, for an engine that can rebuild at its offsets)."""

    name: str
    live: Callable[[], dict]
    rebuild: Callable[[dict], dict]


def coverage(digest: dict) -> object:
    """Return what a digest covers: its input offsets (or the matcher's last offset)."""
    return digest.get("offsets", digest.get("offset"))


def compare(engine: str, live: dict, rebuilt: dict) -> Check:
    """Compare a live digest with a rebuilt one: equal coverage and equal digest agree."""
    if coverage(live) != coverage(rebuilt):
        return Check(engine, Verdict.APART, live, rebuilt)
    verdict = Verdict.AGREE if live.get("digest") == rebuilt.get("digest") else Verdict.DIFFER
    return Check(engine, verdict, live, rebuilt)


def line(check: Check) -> str:
    """Return the one line a check prints."""
    head = f"{check.engine:<20} {check.verdict.value:<11}"
    if check.verdict is Verdict.UNREACHABLE:
        return f"{head} {check.error}"
    live, rebuilt = check.live or {}, check.rebuilt or {}
    at = _short_coverage(coverage(live))
    if check.verdict is Verdict.AGREE:
        return f"{head} digest {_short(live.get('digest'))} at {at}"
    if check.verdict is Verdict.DIFFER:
        return (
            f"{head} live {_short(live.get('digest'))} != rebuilt "
            f"{_short(rebuilt.get('digest'))} at {at}"
        )
    return f"{head} live at {at}, rebuilt at {_short_coverage(coverage(rebuilt))}"


def _short(digest: object) -> str:
    return str(digest)[:16] if digest is not None else "-"


def _short_coverage(value: object) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={v}" for k, v in sorted(value.items())) + "}"
    return f"offset {value}"


REACH_SECONDS = 5.0
"""How long an engine that cannot be asked is asked again (one that answers, until the
deadline): a stack that is down fails in seconds, a service restarting is waited for."""


def verify_one(
    engine: Engine,
    deadline: float,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    reach_seconds: float = REACH_SECONDS,
) -> Check:
    """Ask ``engine`` until its live state and its rebuild cover the same offsets (then
    compare them once) or ``deadline`` (on ``clock``) passes; give up on an engine that
    cannot be asked after ``reach_seconds``."""
    unreachable_since: float | None = None
    while True:
        try:
            before = engine.live()
            rebuilt = engine.rebuild(before)
            after = engine.live()  # a live engine may have reached the rebuild meanwhile
        except Exception as error:  # any failure to ask is this engine's line, not a crash
            reason = f"{type(error).__name__}: {error}"
            check = Check(engine.name, Verdict.UNREACHABLE, error=reason)
            if unreachable_since is None:
                unreachable_since = clock()
            if clock() - unreachable_since >= reach_seconds:
                return check
        else:
            unreachable_since = None
            check = compare(engine.name, after, rebuilt)
            if check.verdict is Verdict.APART:
                check = compare(engine.name, before, rebuilt)
            if check.verdict is not Verdict.APART:
                return check
            check = compare(engine.name, after, rebuilt)
        if clock() >= deadline:
            return check
        sleep(0.5)


def verify(
    engines: Sequence[Engine],
    timeout: float,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    report: Callable[[Check], None] | None = None,
) -> list[Check]:
    """Verify every engine, each within ``timeout`` seconds; ``report`` each as it is done."""
    checks = []
    for engine in engines:
        check = verify_one(engine, clock() + timeout, clock=clock, sleep=sleep)
        if report is not None:
            report(check)
        checks.append(check)
    return checks
