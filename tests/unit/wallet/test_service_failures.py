"""The wallet service skips an input its core cannot apply, atomically, and a rebuild skips it
the same way (the journal's guard around the core, over the in-memory bus)."""

from __future__ import annotations

from libs.bus.journal import journaled
from libs.messages import Cause, Deposit, PositionChanged, SetLeverage
from libs.money import INT64_MAX, LEDGER_LIMIT
from libs.topics import user_partition
from services.wallet.service import FAILED, WalletService
from tests.unit.wallet.kit import USDT
from tests.unit.wallet.test_service import TOPICS, drain, send, setup


def changed(symbol: str, size: int, entry: int, pnl: int = 0) -> PositionChanged:
    return PositionChanged(
        seq=1,
        cause=Cause("positions.events", 0, 0),
        user_id=1,
        symbol=symbol,
        trade_id=1,
        size=size,
        entry_notional=entry,
        realised_pnl=pnl,
        fee=0,
    )


def failed() -> float:
    return FAILED.labels("positions.events")._value.get()


def test_an_input_that_raises_half_way_is_undone_skipped_counted_and_skipped_again_on_rebuild():
    bus, service, loop = setup(snapshot_every=3)
    send(bus, Deposit(request_id="d1", user_id=1, amount=3000 * USDT))
    send(bus, Deposit(request_id="d2", user_id=2, amount=1000 * USDT))
    send(bus, Deposit(request_id="d3", user_id=2, amount=1000 * USDT))
    drain(loop)  # three inputs: a snapshot, the base a failure is undone to
    before = failed()
    # the core records the position, then the ledger refuses the profit: past LEDGER_LIMIT
    send(bus, changed("BTC-PERP", 5, 500 * USDT, pnl=LEDGER_LIMIT), TOPICS.positions_events)
    send(bus, Deposit(request_id="d4", user_id=1, amount=7 * USDT))
    drain(loop)
    assert failed() == before + 1
    assert service.core.positions == {}  # the half-applied position is gone
    assert service.core.balance(1) == 3007 * USDT  # and the wallet went on
    outputs = {(t, p): 0 for t in service.output_topics for p in bus.end_offsets(t)}
    turns = journaled(bus, service.source, (TOPICS.wallet_journal, 0, 0), outputs, 0)[0]
    index = service.inputs.index((TOPICS.positions_events, user_partition(1)))
    assert [s for t in turns for s in t.skipped] == [(index, 0)]
    rebuilt = WalletService(bus, TOPICS, snapshot_every=3)
    rebuilt.rewind(loop.consumer.committed())
    assert failed() == before + 1  # the rebuild skips it by the log, without trying again
    assert rebuilt.digest_json() == service.digest_json()


def test_an_input_whose_events_cannot_be_encoded_is_skipped_and_leaves_no_trace():
    bus, service, loop = setup()
    send(bus, Deposit(request_id="d", user_id=1, amount=3000 * USDT))
    for symbol in ("BTC-PERP", "ETH-PERP"):
        send(bus, SetLeverage(request_id=f"l{symbol}", user_id=1, symbol=symbol, leverage=1))
    drain(loop)
    before = failed()
    # each position's margin is INT64_MAX: with both, "available" no longer fits 64 bits
    send(bus, changed("BTC-PERP", 1, INT64_MAX), TOPICS.positions_events)
    send(bus, changed("ETH-PERP", 1, INT64_MAX), TOPICS.positions_events)
    drain(loop)
    assert failed() == before + 1
    assert list(service.core.positions[1]) == ["BTC-PERP"]
    send(bus, Deposit(request_id="d2", user_id=1, amount=5 * USDT))
    drain(loop)
    assert service.core.balance(1) == 3005 * USDT
    rebuilt = WalletService(bus, TOPICS)
    rebuilt.rewind(loop.consumer.committed())
    assert rebuilt.digest_json() == service.digest_json()
