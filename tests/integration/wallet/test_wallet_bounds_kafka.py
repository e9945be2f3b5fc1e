"""The wallet process on a real broker: deposits past the bounds are rejected, an input its core
cannot apply is skipped and counted, and after kill -9 the restart skips it again."""

from __future__ import annotations

from libs.messages import Cause, Deposit, OrderRequestRejected, PositionChanged
from libs.money import LEDGER_LIMIT, MAX_TRANSFER
from tests.integration.wallet.conftest import Stack
from tests.unit.wallet.kit import SYMBOL, USDT


def test_bounded_deposits_and_a_poison_input_leave_a_working_wallet_after_kill_9(
    stack: Stack,
) -> None:
    stack.wallet.start()
    for n in range(11):  # the eleventh passes MAX_BALANCE
        stack.send(Deposit(request_id=f"d{n}", user_id=1, amount=MAX_TRANSFER))
    poison = PositionChanged(
        seq=1,
        cause=Cause("positions.events", 0, 0),
        user_id=2,
        symbol=SYMBOL,
        trade_id=1,
        size=5,
        entry_notional=100 * USDT,
        realised_pnl=LEDGER_LIMIT + 1,  # the ledger refuses it after the position was recorded
        fee=0,
    )
    stack.send(poison, stack.topics.positions_events)
    stack.send(Deposit(request_id="after", user_id=2, amount=7 * USDT))
    stack.flush()
    state = stack.quiet()
    refusals = [e for e in stack.wallet_events() if isinstance(e, OrderRequestRejected)]
    [refused] = refusals
    assert (refused.request_id, refused.code) == ("d10", -4095)
    assert stack.wallet.metric("wallet_failed_total", '{topic="positions.events"}') == 1
    assert state["users"] == 2  # user 2 has the deposit, not the position
    assert stack.wallet.rebuild()["digest"] == state["digest"]
    stack.wallet.kill()
    stack.wallet.start()
    restarted = stack.quiet()
    assert restarted["digest"] == state["digest"]
    assert stack.wallet.metric("wallet_failed_total", '{topic="positions.events"}') == 0
    stack.send(Deposit(request_id="later", user_id=2, amount=3 * USDT))
    stack.flush()
    assert stack.quiet()["entries"] == state["entries"] + 1
