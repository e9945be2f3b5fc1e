"""The wallet bench's recorded flow is a real flow: orders held, filled, fees booked."""

from __future__ import annotations

from bench.wallet import record_inputs
from libs.messages import LedgerAccountKind, OrderFilled, PlaceOrder
from services.wallet.core import WalletCore


def test_the_recorded_flow_replays_into_the_same_ledger() -> None:
    inputs = record_inputs(n=3000)
    assert any(isinstance(m, OrderFilled) for _, m in inputs)
    assert any(isinstance(m, PlaceOrder) for _, m in inputs)
    core = WalletCore()
    for cause, message in inputs:
        core.apply(cause, message)
    assert core.ledger.entry_id > 1000
    assert core.ledger.total_inside() == -core.ledger.balance(LedgerAccountKind.OUTSIDE) > 0
