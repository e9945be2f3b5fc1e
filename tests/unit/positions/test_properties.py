"""Property tests: the PnL of a closed system sums to zero; money is conserved across the wallet
and the position engine; funding nets to zero; nobody is left bust; snapshots."""

from __future__ import annotations

from hypothesis import event, given, settings
from hypothesis import strategies as st

from libs import perpetual as f
from libs.messages import (
    Deposit,
    FundingPaid,
    LedgerAccountKind,
    LiquidationTriggered,
    OrderType,
    PlaceOrder,
    PositionChanged,
    Side,
)
from services.positions.core import PositionsCore
from tests.unit.positions.exchange import Exchange
from tests.unit.positions.kit import BTC, NS, SPECS, Feed, messages, usdt

fills = st.lists(
    st.tuples(
        st.integers(1, 6),  # buyer
        st.integers(1, 6),  # seller
        st.integers(400_000, 600_000),  # price, ticks
        st.integers(1, 3_000),  # qty, lots
        st.booleans(),  # buyer is the taker
    ),
    min_size=1,
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(fills, st.integers(300_000, 700_000))
def test_realised_plus_unrealised_pnl_of_all_positions_sums_to_zero(trades, mark):
    feed = Feed()
    for buyer, seller, price, qty, buyer_takes in trades:
        feed.fill(buyer, seller, price, qty, taker="buy" if buyer_takes else "sell")
    changes = [m for m in (o.message for o in feed.out) if type(m) is PositionChanged]
    realised = sum(m.realised_pnl for m in changes)
    fees = sum(m.fee for m in changes)
    core = feed.core
    core.markets["BTC-PERP"].mark = mark
    unrealised = sum(
        core.upnl("BTC-PERP", p) for a in core.accounts.values() for p in a.positions.values()
    )
    assert realised + unrealised == 0
    assert fees == sum(
        BTC.fee(BTC.notional(p, q), maker=False) + BTC.fee(BTC.notional(p, q), maker=True)
        for _, _, p, q, _ in trades
    )
    sizes = [p.size for a in core.accounts.values() for p in a.positions.values()]
    assert sum(sizes) == 0
    assert core.markets["BTC-PERP"].open_interest == sum(s for s in sizes if s > 0)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(200, 20_000), min_size=5, max_size=5),  # deposits, USDT
    st.lists(
        st.tuples(
            st.integers(1, 5),  # user
            st.booleans(),  # buys
            st.integers(-20, 20),  # price: the index + 10 USDT x this
            st.integers(1, 2_000),  # lots
            st.integers(-5, 5),  # then the index moves by 100 USDT x this (0: no tick)
        ),
        min_size=10,
        max_size=40,
    ),
)
def test_money_is_conserved_across_the_wallet_and_the_position_engine(deposits, flow):
    """Deposits and crossing orders through the wallet, matching and position cores, with marks,
    funding every 10 s and liquidations: what the users gained or lost, plus what the FEES,
    INSURANCE and FUNDING accounts hold, plus the open positions' uPnL at the mark, is zero."""
    x = Exchange(funding_interval_seconds=10)
    for user, cash in enumerate(deposits, start=1):
        x.request(Deposit(request_id=f"d{user}", user_id=user, amount=usdt(str(cash))))
    index = 500_000
    for oid, (user, buys, offset, qty, move) in enumerate(flow, start=1):
        x.request(
            PlaceOrder(
                request_id=f"p{oid}",
                order_id=oid,
                user_id=user,
                symbol="BTC-PERP",
                side=Side.BUY if buys else Side.SELL,
                order_type=OrderType.LIMIT,
                qty=qty,
                price=index + 100 * offset,
            )
        )
        if move:
            index += 1_000 * move
            x.index("BTC-PERP", index, oid * 3 * NS)
    assert x.money_made(sum(usdt(str(cash)) for cash in deposits)) == 0
    # the fees the wallet booked from the matcher are the ones the position engine reported
    fees = x.wallet.ledger.balance(LedgerAccountKind.FEES)
    assert fees == sum(m.fee for m in x.events(PositionChanged))
    event(f"funding paid: {bool(x.events(FundingPaid))}")


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.integers(-5_000, 5_000).filter(bool), min_size=1, max_size=20),
    st.integers(-300_000, 300_000),
    st.integers(1, 2_000_000),
)
def test_funding_payments_of_an_interval_leave_the_exchange_under_a_unit_a_position(
    sizes, rate, mark
):
    balancing = -sum(sizes)
    book = dict(enumerate(sizes + ([balancing] if balancing else []), start=1))
    paid = f.funding_payments(BTC, rate, mark, book)
    assert -len(book) <= sum(paid.values()) <= 0  # what is not paid out is the rounding
    for user, amount in paid.items():
        exact = BTC.notional(mark, abs(book[user])) * abs(rate)
        if amount < 0:  # a payer pays its exact amount rounded up, never less
            assert -amount * 10**8 >= exact > (-amount - 1) * 10**8
        else:  # a receiver its exact amount rounded down, never more
            assert amount * 10**8 <= exact < (amount + 1) * 10**8


@settings(max_examples=40, deadline=None)
@given(fills, st.integers(1, 59), st.lists(st.integers(450_000, 550_000), min_size=1, max_size=8))
def test_funding_through_the_engine_nets_to_the_rounding_every_interval(trades, step, marks):
    feed = Feed(funding_interval_seconds=10)
    for buyer, seller, price, qty, buyer_takes in trades:
        feed.fill(buyer, seller, price, qty, taker="buy" if buyer_takes else "sell")
    for i, mark in enumerate(marks):
        feed.index(mark - 7, (i * step + 1) * NS)
        feed.mark(mark, (i * step + 1) * NS)
    by_time: dict[int, int] = {}
    payments: dict[int, int] = {}
    for m in (o.message for o in feed.out):
        if type(m) is FundingPaid:
            by_time[m.funding_time] = by_time.get(m.funding_time, 0) + m.amount
            payments[m.funding_time] = payments.get(m.funding_time, 0) + 1
    # longs and shorts hold the same lots: paid and received differ by the rounding alone
    assert all(-payments[t] <= total <= 0 for t, total in by_time.items())


@settings(max_examples=60, deadline=None)
@given(fills, st.integers(0, 60), st.integers(300_000, 700_000))
def test_a_snapshot_cut_anywhere_continues_like_an_uninterrupted_run(trades, cut, mark):
    def run(cut_at: int | None) -> tuple[list, str]:
        feed = Feed(funding_interval_seconds=10)
        for user in range(1, 7):
            feed.balance(user, "500")
        feed.insurance("100")
        steps = []
        for i, (buyer, seller, price, qty, buyer_takes) in enumerate(trades):
            steps.append(
                lambda b=buyer, s=seller, p=price, q=qty, t=buyer_takes: feed.fill(
                    b, s, p, q, taker="buy" if t else "sell"
                )
            )
            steps.append(lambda i=i: feed.index(mark, (i + 1) * 3 * NS))
            steps.append(lambda i=i: feed.mark(mark + i * 50, (i + 1) * 3 * NS))
        outputs = []
        for n, step in enumerate(steps):
            if n == cut_at:
                feed.core = PositionsCore.restore(
                    SPECS, feed.core.snapshot(), funding_interval_seconds=10
                )
            outputs.append([o.message for o in step()])
        return outputs, feed.core.digest()

    assert run(cut) == run(None)


SYMBOL_PRICES = {"BTC-PERP": 500_000, "ETH-PERP": 300_000, "SOL-PERP": 15_000}  # ticks
LOT_SCALE = {"BTC-PERP": 1, "ETH-PERP": 16, "SOL-PERP": 33}  # ~50 USDT of each per unit
symbols = st.sampled_from(sorted(SYMBOL_PRICES))


def bust_and_unattended(core: PositionsCore, held: set[str]) -> list[int]:
    """Return the users holding one of ``held`` at ratio >= 100% with no liquidation started."""
    bust = []
    for account in core.accounts.values():
        if account.balance is None or account.liquidating or not held & account.positions.keys():
            continue
        upnl, _, maintenance = core.risk(account)
        if maintenance > 0 and maintenance >= account.balance + upnl:
            bust.append(account.user)
    return bust


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.integers(5, 100), min_size=6, max_size=6),  # balances, USDT
    st.lists(
        st.tuples(st.integers(1, 6), st.integers(1, 5), symbols, st.integers(1, 10)),
        min_size=2,
        max_size=20,
    ),
    st.lists(st.tuples(symbols, st.integers(-300, 300)), min_size=1, max_size=30),  # bp moves
)
def test_after_any_sequence_of_marks_no_account_is_bust_without_a_liquidation(
    balances, trades, moves
):
    feed = Feed(funding_interval_seconds=20)
    for user, cash in enumerate(balances, start=1):
        feed.balance(user, usdt(str(cash)))
    for symbol, price in SYMBOL_PRICES.items():
        feed.mark(price, 1, symbol=symbol)
    for buyer, offset, symbol, units in trades:
        seller = (buyer + offset - 1) % 6 + 1
        feed.fill(buyer, seller, SYMBOL_PRICES[symbol], units * LOT_SCALE[symbol], symbol=symbol)
    marks = dict(SYMBOL_PRICES)
    for i, (symbol, bp) in enumerate(moves):  # a random walk of the three marks
        marks[symbol] = marks[symbol] * (10_000 + bp) // 10_000
        feed.mark(marks[symbol], (i + 2) * NS, symbol)
        # every account holding the symbol just ticked is safe or being liquidated
        assert bust_and_unattended(feed.core, {symbol}) == []
    for symbol, price in marks.items():  # one more tick of each: nobody is left
        feed.mark(price, (len(moves) + 3) * NS, symbol=symbol)
    assert bust_and_unattended(feed.core, set(SYMBOL_PRICES)) == []
    event(f"liquidations: {len(messages(feed.out, LiquidationTriggered)) > 0}")
