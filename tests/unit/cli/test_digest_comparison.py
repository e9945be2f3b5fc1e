"""Live against rebuilt: compared only at the same offsets, asked again until they meet."""

from __future__ import annotations

import itertools
from typing import Any

from exchange.verify import Check, Engine, Verdict, compare, line, verify, verify_one

WALLET: dict[str, Any] = {
    "digest": "aa" * 32,
    "offsets": {"orders.requests:0": 5, "matcher.events:0": 9},
}
BOOK: dict[str, Any] = {"symbol": "BTC-PERP", "digest": "cc" * 32, "offset": 41}


def test_equal_digests_at_equal_offsets_agree() -> None:
    assert compare("wallet", WALLET, dict(WALLET)).verdict is Verdict.AGREE
    assert compare("matcher/BTC-PERP", BOOK, dict(BOOK)).ok


def test_a_different_digest_at_the_same_offsets_differs() -> None:
    check = compare("wallet", WALLET, {**WALLET, "digest": "bb" * 32})
    assert check.verdict is Verdict.DIFFER and not check.ok
    assert line(check).startswith("wallet") and "DIFFERS" in line(check)
    assert "aaaaaaaa" in line(check) and "bbbbbbbb" in line(check)


def test_different_offsets_are_not_compared() -> None:
    later = {**WALLET, "offsets": {**WALLET["offsets"], "matcher.events:0": 10}}
    assert compare("wallet", WALLET, later).verdict is Verdict.APART
    assert compare("matcher/BTC-PERP", BOOK, {**BOOK, "offset": 40}).verdict is Verdict.APART
    assert "matcher.events:0=10" in line(compare("wallet", WALLET, later))


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_a_live_engine_is_asked_again_until_it_reaches_the_rebuilds_offsets() -> None:
    lives = iter([{**BOOK, "offset": 39}, {**BOOK, "offset": 40}, BOOK, BOOK])
    clock = Clock()
    engine = Engine("matcher/BTC-PERP", lambda: next(lives), lambda _: BOOK)
    check = verify_one(engine, 10.0, clock=clock, sleep=clock.sleep)
    assert check.ok and clock.now == 0.5


def test_an_engine_that_never_reaches_the_same_offsets_fails_at_the_deadline() -> None:
    clock = Clock()
    counter = itertools.count()
    engine = Engine("matcher/BTC-PERP", lambda: {**BOOK, "offset": next(counter)}, lambda _: BOOK)
    check = verify_one(engine, 0.0, clock=clock, sleep=clock.sleep)
    assert check.verdict is Verdict.APART
    assert "NOT SETTLED" in line(check)


def test_a_difference_is_reported_at_once() -> None:
    clock = Clock()
    engine = Engine("wallet", lambda: WALLET, lambda _: {**WALLET, "digest": "bb" * 32})
    assert verify_one(engine, 60.0, clock=clock, sleep=clock.sleep).verdict is Verdict.DIFFER
    assert clock.now == 0.0


def test_an_engine_that_cannot_be_asked_is_unreachable_with_the_reason() -> None:
    def refused() -> dict:
        raise ConnectionRefusedError("connection refused")

    clock = Clock()
    check = verify_one(Engine("positions", refused, dict), 1.0, clock=clock, sleep=clock.sleep)
    assert check.verdict is Verdict.UNREACHABLE
    assert line(check).split() == [
        "positions",
        "UNREACHABLE",
        "ConnectionRefusedError:",
        "connection",
        "refused",
    ]


def test_a_rebuild_is_told_the_live_digest_it_will_be_compared_with() -> None:
    def at(live: dict[str, Any]) -> dict[str, Any]:
        return {**WALLET, "offsets": live["offsets"]}  # an engine that can stop there

    moving = iter([{**WALLET, "offsets": {"orders.requests:0": n}} for n in (6, 7)])
    check = verify_one(Engine("projector", lambda: next(moving), at), 0.0)
    assert check.ok and check.live == {**WALLET, "offsets": {"orders.requests:0": 6}}


def test_an_engine_that_cannot_be_asked_is_given_up_on_before_the_deadline() -> None:
    def refused() -> dict[str, Any]:
        raise ConnectionRefusedError("connection refused")

    clock = Clock()
    check = verify_one(Engine("wallet", refused, dict), 600.0, clock=clock, sleep=clock.sleep)
    assert check.verdict is Verdict.UNREACHABLE and clock.now == 5.0


def test_every_engine_is_reported_in_turn() -> None:
    seen: list[Check] = []
    engines = [
        Engine("wallet", lambda: WALLET, lambda _: WALLET),
        Engine("matcher/BTC-PERP", lambda: BOOK, lambda _: {**BOOK, "digest": "dd"}),
    ]
    checks = verify(engines, 1.0, report=seen.append, sleep=lambda _: None)
    assert [c.verdict for c in checks] == [Verdict.AGREE, Verdict.DIFFER]
    assert seen == checks
