"""Liquidation and ADL end to end through the wallet, matching and position cores in process:
orders cancelled, position closed, insurance accounting right, nobody's balance negative."""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from libs.messages import (
    AutoDeleveraged,
    CancelOrder,
    Deleveraged,
    Deposit,
    LiquidationSettled,
    LiquidationTriggered,
    OrderCancelled,
    OrderFilled,
    OrderRejected,
    OrderType,
    PlaceOrder,
    SetLeverage,
    Side,
    TimeInForce,
)
from tests.unit.positions.exchange import Exchange
from tests.unit.positions.kit import BTC, lots, ticks, usdt

SYMBOL = "BTC-PERP"
MAKER, LONG, SHORT2 = 100, 1, 2
_ids = iter(range(1, 1 << 40))


def place(x: Exchange, user: int, side: str, price: str, qty: str, **kw) -> int:
    oid = next(_ids)
    x.request(
        PlaceOrder(
            request_id=f"p{oid}",
            order_id=oid,
            user_id=user,
            symbol=SYMBOL,
            side=Side(side),
            order_type=OrderType.LIMIT,
            qty=lots(qty),
            price=ticks(price),
            **kw,
        )
    )
    return oid


def deposit(x: Exchange, user: int, amount: str) -> None:
    x.request(Deposit(request_id=f"d{next(_ids)}", user_id=user, amount=usdt(amount)))


def setup() -> tuple[Exchange, dict[str, int]]:
    """User 1 goes 20x long 1 BTC at 50000 from the market maker; user 2 shorts 0.5 more."""
    x = Exchange()
    deposit(x, MAKER, "1000000")
    deposit(x, LONG, "2900")
    deposit(x, SHORT2, "5000")
    deposit(x, 3, "100000")
    ids = {
        "ask": place(x, MAKER, "sell", "50000", "1"),
        "ask2": place(x, MAKER, "sell", "50000", "0.5"),
    }
    place(x, LONG, "buy", "50000", "1")
    place(x, SHORT2, "buy", "50000", "0.5")  # takes the maker's second ask: user 2 long 0.5..
    place(x, SHORT2, "sell", "50010", "1")  # ..then user 2 quotes; user 3 takes it: 2 net short
    place(x, 3, "buy", "50010", "1")
    ids["resting"] = place(x, LONG, "buy", "45000", "0.1")  # cancelled by the liquidation
    x.index(SYMBOL, ticks("50000"), 1)
    return x, ids


def requote(x: Exchange, bid: str, ask: str, qty: str = "0.4") -> None:
    """The market maker moves its quotes (the mid the mark price follows)."""
    for order in list(x.books[SYMBOL].user_orders.get(MAKER, ())):
        x.request(
            CancelOrder(request_id=f"c{next(_ids)}", user_id=MAKER, symbol=SYMBOL, order_id=order)
        )
    place(x, MAKER, "buy", bid, qty)
    place(x, MAKER, "sell", ask, qty)


def test_a_falling_mark_liquidates_the_long_through_the_book_and_deleverages_the_rest():
    x, ids = setup()
    assert x.positions.accounts[LONG].positions[SYMBOL].size == lots("1")
    requote(x, "47600", "47700")
    x.index(SYMBOL, ticks("47650"), 2)  # mark 47650: equity 2875 - 2350 = 525 > MM 190.6
    assert not x.events(LiquidationTriggered)
    requote(x, "47150", "47250")
    x.index(SYMBOL, ticks("47200"), 3)  # mark 47200: equity 75 < MM 188.8: bust
    (trigger,) = x.events(LiquidationTriggered)
    assert (trigger.user_id, trigger.bankruptcy_price) == (LONG, ticks("47125"))
    cancelled = x.events(OrderCancelled)
    assert [(e.order_id, e.reason) for e in cancelled if e.user_id == LONG] == [
        (ids["resting"], "cancel_all")
    ]
    # the insurance fund is empty: the order is bounded at 47148.6 (pays its own fee); the
    # maker's 0.4 bid at 47150 absorbs part, the rest is deleveraged at bankruptcy
    fills = [e for e in x.events(OrderFilled) if e.liquidation]
    assert [(f.price, f.qty) for f in fills] == [(ticks("47150"), lots("0.4"))]
    adl = [e for e in x.events(AutoDeleveraged) if e.user_id != LONG]
    assert sum(e.qty for e in adl) == lots("0.6")
    assert all(e.price == ticks("47125") for e in adl)
    (settled,) = x.events(LiquidationSettled)
    fee = BTC.fee(BTC.notional(ticks("47150"), lots("0.4")), maker=False)
    assert settled.insurance_delta == BTC.notional(ticks("25"), lots("0.4")) - fee
    assert settled.insurance_delta >= 0
    # closed, balances never negative, the fund got exactly the delta
    assert SYMBOL not in x.positions.accounts[LONG].positions
    assert not x.wallet.positions.get(LONG)
    assert x.balance(LONG) >= 0
    assert x.insurance() == settled.insurance_delta
    for user in (MAKER, SHORT2, 3):
        assert x.balance(user) >= 0
    sizes = [p.size for m in x.positions.markets.values() for p in m.holders.values()]
    assert sum(sizes) == 0


def test_a_short_closed_to_flat_by_adl_cannot_open_a_long_with_close_position():
    x, _ = setup()
    requote(x, "47600", "47700")
    x.index(SYMBOL, ticks("47650"), 2)
    requote(x, "47150", "47250")
    x.index(SYMBOL, ticks("47200"), 3)  # user 1 bust; ADL closes user 2's whole 0.5 short
    adl = [(e.user_id, e.qty) for e in x.events(AutoDeleveraged) if e.counterparty_user_id == LONG]
    assert adl == [(SHORT2, lots("0.5")), (MAKER, lots("0.1"))]
    assert SYMBOL not in x.positions.accounts[SHORT2].positions
    book = x.books[SYMBOL]
    assert book.user_orders.get(MAKER)  # the maker's 0.4 ask a close-position buy would take
    # the bot closes "its" short: the book knows it is flat
    before = len(x.log)
    oid = next(_ids)
    x.request(
        PlaceOrder(
            request_id=f"p{oid}",
            order_id=oid,
            user_id=SHORT2,
            symbol=SYMBOL,
            side=Side.BUY,
            order_type=OrderType.MARKET,
            qty=0,
            close_position=True,
        )
    )
    reduce_only = place(x, SHORT2, "buy", "47250", "0.4", reduce_only=True)
    rejected = [e for e in x.events(OrderRejected) if e.order_id in (oid, reduce_only)]
    assert [e.code for e in rejected] == [-2022, -2022]
    assert not [
        e
        for e in x.log[before:]
        if type(e) is OrderFilled and SHORT2 in (e.taker_user_id, e.maker_user_id)
    ]
    assert book.positions.get(SHORT2, 0) == 0
    assert SYMBOL not in x.positions.accounts[SHORT2].positions
    assert not x.wallet.positions.get(SHORT2)
    # the book did the deleveraging, and said so once
    (event,) = x.events(Deleveraged)
    assert [(m.user_id, m.qty) for m in event.matches] == adl
    # the book and the engine agree on every position
    engine = {
        u: a.positions[SYMBOL].size
        for u, a in x.positions.accounts.items()
        if SYMBOL in a.positions
    }
    assert {u: p for u, p in book.positions.items() if p} == engine


def test_adl_ranks_the_most_profitable_most_leveraged_short_first():
    x, _ = setup()
    requote(x, "47150", "47250", qty="0.001")  # nearly no book: ADL takes almost everything
    x.index(SYMBOL, ticks("47200"), 3)
    ranked = [e.user_id for e in x.events(AutoDeleveraged) if e.counterparty_user_id == LONG]
    # user 2 is short 0.5 on 5000 USDT, the maker 1 BTC on a million: user 2 goes first
    assert ranked[0] == SHORT2


def test_two_accounts_bust_on_one_tick_have_their_orders_cancelled_before_either_is_liquidated():
    """The first bust account's liquidation order must not fill the second's resting bid: that
    would grow a position whose bankruptcy price is already fixed, and the ADL at that price
    would leave the second account with a loss beyond its balance (found by hypothesis)."""
    x = Exchange()
    first, second, short = 10, 12, 11
    for user in (first, second, short):
        deposit(x, user, "3000")
        x.request(SetLeverage(request_id=f"l{user}", user_id=user, symbol=SYMBOL, leverage=50))
    place(x, short, "sell", "50000", "1.6")
    place(x, first, "buy", "50000", "0.8")
    place(x, second, "buy", "50000", "0.8")
    bid = place(x, second, "buy", "50000", "0.1")  # rests: nobody sells any more
    x.index(SYMBOL, ticks("46400"), 2)  # no mid: the mark is the index; both longs are bust
    assert sorted(e.user_id for e in x.events(LiquidationTriggered)) == [first, second]
    assert [(e.order_id, e.reason) for e in x.events(OrderCancelled)] == [(bid, "cancel_all")]
    assert not [e for e in x.events(OrderFilled) if e.liquidation]
    for user in (first, second):
        assert SYMBOL not in x.positions.accounts[user].positions
        assert not x.wallet.positions.get(user)
        assert x.balance(user) >= 0, f"user {user}: {x.balance(user)}"
    assert x.balance(short) >= 0
    assert x.insurance() >= 0
    assert x.money_made(3 * usdt("3000")) == 0


@settings(max_examples=80, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 5),
            st.sampled_from(["buy", "sell"]),
            st.integers(-30, 30),
            st.integers(1, 100),
        ),
        min_size=5,
        max_size=40,
    ),
    st.lists(st.integers(-25, 25), min_size=1, max_size=10),
)
@example(  # user 10's liquidation order filled user 12's bid at 50000 before 12's cancel-all
    orders=[
        (0, "buy", 0, 1),
        (0, "buy", 0, 11),
        (0, "buy", 0, 24),
        (0, "buy", 0, 88),
        (0, "sell", 0, 1),
        (0, "sell", 0, 18),
        (0, "sell", 0, 26),
        (1, "sell", 0, 31),
        (1, "sell", 0, 50),
        (1, "sell", 0, 67),
        (2, "buy", 0, 38),
        (2, "buy", 0, 42),
    ],
    moves=[-12, -24],
)
def test_whatever_the_flow_nobody_ends_negative_money_is_kept_positions_agree_and_net_to_zero(
    orders, moves
):
    x = Exchange()
    users = [10, 11, 12, 13, 14, 15]
    for user in users:
        deposit(x, user, "3000")
        x.request(SetLeverage(request_id=f"l{user}", user_id=user, symbol=SYMBOL, leverage=50))
    deposit(x, MAKER, "1000000")
    base = 50_000
    for who, side, offset, tenths in orders:
        price = str(base + offset * 10)
        qty = f"{tenths / 100:.2f}"
        place(x, users[who], side, price, qty, tif=TimeInForce.GTC)
    for step, move in enumerate(moves):
        base += move * 100
        requote(x, str(base - 5), str(base + 5), qty="0.05")
        x.index(SYMBOL, ticks(str(base)), step + 2)
    for user in [*users, MAKER]:
        assert x.balance(user) >= 0, f"user {user}: {x.balance(user)}"
    assert x.insurance() >= 0
    assert x.money_made(usdt("3000") * len(users) + usdt("1000000")) == 0
    sizes = [p.size for m in x.positions.markets.values() for p in m.holders.values()]
    assert sum(sizes) == 0
    # the engine's positions are the wallet's, and the book's (what reduce-only decides on)
    for user, account in x.positions.accounts.items():
        mine = {s: (p.size, p.entry) for s, p in account.positions.items()}
        assert mine == x.wallet.positions.get(user, {})
    for name, book in x.books.items():
        engine = {u: p.size for u, p in x.positions.markets[name].holders.items()}
        assert {u: p for u, p in book.positions.items() if p} == engine
