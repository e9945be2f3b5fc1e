"""Each user's income rows (``income:{user}``) and realised PnL per trade (``realised_pnl:{user}``)
from the position engine's events, timed by the matcher batch of the fill that caused them."""

from __future__ import annotations

import json

from libs.messages import (
    Cause,
    FundingPaid,
    LiquidationSettled,
    OrderFilled,
    PositionChanged,
)
from libs.read_model import keys
from services.projector.income import tran_id
from services.projector.projection import Input, Projection
from tests.unit.matcher.kit import BUY, MID, SELL, SYMBOL, place
from tests.unit.projector.test_projection import (
    NOW_MS,
    SPECS,
    TOPICS,
    Exchange,
    FakeRedis,
    cause,
    restore_from,
)

ELSEWHERE = Cause("index.prices", 0, 0)  # a cause the projector does not read


def changed(by: Input | Cause, user: int, trade_id: int, pnl: int, fee: int) -> PositionChanged:
    return PositionChanged(
        seq=0,
        cause=cause(by) if isinstance(by, Input) else by,
        user_id=user,
        symbol=SYMBOL,
        trade_id=trade_id,
        size=0,
        entry_notional=0,
        realised_pnl=pnl,
        fee=fee,
    )


def a_trade(ex: Exchange, at_ms: int = NOW_MS) -> Input:
    """User 1 sells 4 lots to user 2 in a batch timed ``at_ms`` (plus 0.999 ms); the fill."""
    ex.send(place(1, 1, SELL, MID, 4))
    ex.send(place(2, 2, BUY, MID, 4, ts=at_ms * 1_000_000 + 999_999))
    return next(i for i in ex.inputs if isinstance(i.message, OrderFilled))


def income(ex: Exchange, user: int) -> list[dict]:
    members = ex.redis.data.get(keys.income_key(user), {})
    assert all(json.loads(m)["time"] == at for m, at in members.items())  # scored by its time
    return [json.loads(m) for m in sorted(members, key=lambda m: (members[m], m))]


def test_a_fill_gives_each_side_its_commission_and_realised_pnl_at_the_fills_time():
    ex = Exchange()
    fill = a_trade(ex)
    ex.record(TOPICS.positions_events, changed(fill, 1, 1, 0, 300))
    ex.record(TOPICS.positions_events, changed(fill, 2, 1, -25 * 10**8, 500), partition=1)
    ex.flush()
    assert income(ex, 1) == [
        {
            "symbol": SYMBOL,
            "incomeType": "COMMISSION",
            "income": -300,
            "time": NOW_MS,
            "tranId": tran_id("COMMISSION", 1, SYMBOL, 1),
            "tradeId": "1",
        }
    ]
    assert [(r["incomeType"], r["income"], r["time"], r["tradeId"]) for r in income(ex, 2)] == [
        ("COMMISSION", -500, NOW_MS, "1"),
        ("REALIZED_PNL", -25 * 10**8, NOW_MS, "1"),
    ]
    (fill_of_2,) = ex.redis.data[keys.fills_key(2)]
    assert json.loads(fill_of_2)["ts"] == NOW_MS  # the same time as the fill userTrades shows
    assert ex.redis.data[keys.realised_pnl_key(2)] == {
        json.dumps([SYMBOL, 1, -25 * 10**8], separators=(",", ":")): NOW_MS
    }
    assert keys.realised_pnl_key(1) not in ex.redis.data  # nothing realised: no entry


def test_funding_and_a_liquidations_clearance_are_rows_too():
    ex = Exchange()
    fill = a_trade(ex)
    funding_time = (NOW_MS + 5_000) * 1_000_000
    for event in (
        FundingPaid(
            seq=0,
            cause=ELSEWHERE,
            user_id=2,
            symbol=SYMBOL,
            amount=-1234,
            rate=100,
            funding_time=funding_time,
        ),
        LiquidationSettled(seq=0, cause=cause(fill), user_id=2, symbol=SYMBOL, insurance_delta=70),
        FundingPaid(
            seq=0, cause=ELSEWHERE, user_id=2, symbol=SYMBOL, amount=0, rate=0, funding_time=1
        ),
    ):
        ex.record(TOPICS.positions_events, event)
    ex.flush()
    rows = income(ex, 2)
    assert [(r["incomeType"], r["income"], r["time"], r["tradeId"]) for r in rows] == [
        ("INSURANCE_CLEAR", -70, NOW_MS, ""),  # what went from the user to the fund
        ("FUNDING_FEE", -1234, NOW_MS + 5_000, ""),
    ]
    assert rows[1]["tranId"] == tran_id("FUNDING_FEE", 2, SYMBOL, funding_time)
    assert len({r["tranId"] for r in rows}) == 2


def test_the_newest_1000_rows_and_500_realised_pnls_are_kept():
    ex = Exchange()
    for i in range(1, 1_101):
        at = (NOW_MS + i) * 1_000_000
        funding = FundingPaid(
            seq=i, cause=ELSEWHERE, user_id=3, symbol=SYMBOL, amount=i, rate=1, funding_time=at
        )
        ex.record(TOPICS.positions_events, funding)
        ex.record(TOPICS.positions_events, changed(ELSEWHERE, 4, i, i, 0))
    ex.flush()
    rows = income(ex, 3)
    assert len(rows) == keys.INCOME_KEPT
    assert (rows[0]["income"], rows[-1]["income"]) == (101, 1_100)
    assert len(ex.redis.data[keys.realised_pnl_key(4)]) == keys.FILLS_KEPT


def test_the_same_records_flushed_in_other_batches_or_after_a_restart_write_the_same():
    ex = Exchange()
    fill = a_trade(ex)
    ex.flush()
    restarted = Exchange(restore_from(ex.redis))  # a restart between the fill and its events
    restarted.redis = ex.redis
    restarted.next_offset = ex.next_offset
    for item in (
        changed(fill, 1, 1, 7, 300),
        changed(fill, 2, 1, -7, 500),
        LiquidationSettled(seq=0, cause=cause(fill), user_id=2, symbol=SYMBOL, insurance_delta=-9),
    ):
        restarted.record(TOPICS.positions_events, item)
    restarted.flush()

    rebuilt, redis = Projection(TOPICS, SPECS), FakeRedis()
    for item in ex.inputs + restarted.inputs:  # one record per flush, twice over
        rebuilt.apply(item)
        redis.run(rebuilt.flush())
        rebuilt.apply(item)
        redis.run(rebuilt.flush())
    owned = ("income:", "realised_pnl:", keys.RECORD_TIMES_KEY)
    assert {k: v for k, v in redis.data.items() if k.startswith(owned)} == {
        k: v for k, v in ex.redis.data.items() if k.startswith(owned)
    }
    assert [r["time"] for r in income(restarted, 2)] == [NOW_MS] * 3
