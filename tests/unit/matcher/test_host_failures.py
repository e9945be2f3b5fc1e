"""A command the matching core cannot apply: the host undoes its batch, applies the others
one by one, skips it and reports it; a recovery skips it the same way."""

from __future__ import annotations

import pytest

from bench.matcher_core import mixed_flow
from libs.messages import BatchCompleted, CancelOrder
from libs.symbols import default_symbols, get_symbol
from services.matcher.core import MatchingCore
from services.matcher.link import InlineLink
from services.matcher.service import MatcherService
from tests.unit.matcher.test_service import (
    SYMBOLS,
    _bus_with_flow,
    _drain,
    _events,
    _matcher,
    _reference,
)

BTC = get_symbol("BTC-PERP")
POISON = 987_654_321  # the order id the patched core fails on
AT = 300  # the poison's offset


@pytest.fixture
def poisoned_core(monkeypatch):
    """Make MatchingCore fail on cancels of POISON after changing its state."""
    original = MatchingCore._cancel

    def cancel(self, offset, cmd):
        if cmd.order_id == POISON:
            self.seq += 1000  # half-way: a change the failure must not leave behind
            self.trade_id += 1000
            raise RuntimeError("a bug in the core")
        return original(self, offset, cmd)

    monkeypatch.setattr(MatchingCore, "_cancel", cancel)


def flow_with_poison() -> list:
    flow = mixed_flow(BTC, 600, seed=11)
    poison = CancelOrder(request_id="x", user_id=1, symbol=BTC.name, order_id=POISON)
    return [*flow[:AT], poison, *flow[AT:]]


@pytest.mark.parametrize("snapshot_every", [10**9, 250])
def test_a_failing_command_is_undone_skipped_counted_and_skipped_again_by_a_recovery(
    poisoned_core, snapshot_every
):
    flow = flow_with_poison()
    bus = _bus_with_flow(flow)
    live = _matcher(bus, snapshot_every=snapshot_every)
    _drain(live, len(flow))  # the matcher goes on past it
    assert live.metrics.failed.labels("BTC-PERP")._value.get() == 1
    events = _events(bus)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))  # no +1000 left
    batches = [e for e in events if isinstance(e, BatchCompleted)]
    assert sum(e.size for e in batches) == len(flow) - 1
    assert not any(e.first_offset <= AT <= e.cmd_offset for e in batches)
    assert any(e.size > 1 for e in batches)  # the poison did not make every batch small
    assert events == _reference(flow, events)  # the recorded batches, without the poison
    fresh = MatcherService(bus, InlineLink(default_symbols()), SYMBOLS)
    last_offset, seq, _ = fresh.load("BTC-PERP", 0)
    assert (last_offset, seq) == (len(flow) - 1, events[-1].seq)
    assert fresh.book_digest("BTC-PERP") == live.digest("BTC-PERP")
