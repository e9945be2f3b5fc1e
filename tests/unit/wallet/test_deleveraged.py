"""The wallet takes the matcher's ``Deleveraged`` in its stride: no money moves for it (the
realised PnL comes as the position engine's ``PositionChanged``), its seq counts as applied."""

from __future__ import annotations

from libs.messages import Deleverage, Deleveraged
from tests.unit.wallet.kit import BUY, LOT, PRICE, SELL, SYMBOL, USDT, Exchange, deposit, place


def test_a_deleveraged_moves_no_money_and_is_applied_once():
    x = Exchange()
    for user in (1, 2):
        x.request(deposit(user, 100_000 * USDT))
    x.request(place(1, 2, SELL, PRICE, LOT))
    x.request(place(2, 1, BUY, PRICE, LOT))
    balances = (x.wallet.balance(1), x.wallet.balance(2))
    produced = x.command(
        Deleverage(
            liquidation_id=(1 << 62) | 5,
            user_id=1,
            symbol=SYMBOL,
            side=SELL,
            qty=LOT,
            price=PRICE - 1000,
            counterparties=(2,),
        )
    )
    (event,) = [m for m in produced if type(m) is Deleveraged]
    assert event.qty == LOT
    assert (x.wallet.balance(1), x.wallet.balance(2)) == balances
    assert x.wallet.matcher_seq[SYMBOL] == event.seq + 1  # its BatchCompleted came after it
    assert x.event(event, "matcher.events") == []  # a replay: dropped
