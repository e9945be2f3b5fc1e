"""Property tests: the core against a simple reference book; invariants; snapshot/restore."""

from hypothesis import given, settings
from hypothesis import strategies as st

from libs.messages import OrderType, SelfTradePrevention, TimeInForce, TriggerBy
from services.matcher.core import MatchingCore
from tests.unit.matcher.kit import (
    BUY,
    MID,
    SELL,
    SPEC,
    Harness,
    amend,
    cancel,
    cancel_all,
    deleverage,
    liquidation,
    mark,
    place,
)
from tests.unit.matcher.reference_book import ReferenceBook

USERS = st.integers(1, 4)
PRICES = st.integers(MID - 6, MID + 6)
QTYS = st.integers(3, 40)  # 3 lots at 49,999.4 clears the 100 USDT min notional
TIFS = st.sampled_from(["GTC", "GTC", "IOC", "FOK", "GTX"])

place_op = st.tuples(st.just("place"), USERS, st.booleans(), PRICES, QTYS, TIFS)
market_op = st.tuples(st.just("market"), USERS, st.booleans(), st.just(None), QTYS, st.just("IOC"))
cancel_op = st.tuples(st.just("cancel"), USERS, st.integers(0, 60))
FLOWS = st.lists(st.one_of(place_op, place_op, market_op, cancel_op), max_size=60)


def book_of(core: MatchingCore):
    out = []
    for side in (core.bids, core.asks):
        levels = []
        for key in reversed(side.keys):
            price = key * side.sign
            levels.append((price, [(o.order_id, o.remaining) for o in side.levels[price]]))
        out.append(levels)
    return tuple(out)


def to_command(op, oid):
    if op[0] == "cancel":
        return cancel(op[2], op[1])
    _, user, is_buy, price, qty, tif = op
    return place(oid, user, BUY if is_buy else SELL, price, qty, tif=TimeInForce(tif))


@settings(max_examples=300, deadline=None)
@given(FLOWS)
def test_the_core_matches_a_simple_reference_book_on_any_flow(flow):
    h = Harness()  # checks the invariants after every command
    ref = ReferenceBook()
    for oid, op in enumerate(flow, 1):
        h.send(to_command(op, oid))
        if op[0] == "cancel":
            ref.cancel(op[2], op[1])
        else:
            _, user, is_buy, price, qty, tif = op
            ref.place(oid, user, is_buy, price, qty, tif)
        assert h.fills() == ref.fills
        assert book_of(h.core) == ref.book()


RICH_OPS = st.one_of(
    place_op.map(lambda op: ("place", *op[1:])),
    market_op,
    cancel_op,
    st.tuples(st.just("cancel_all"), USERS),
    st.tuples(st.just("mark"), PRICES),
    st.tuples(
        st.just("stop"),
        USERS,
        st.booleans(),
        PRICES,
        QTYS,
        st.sampled_from(list(SelfTradePrevention)),
    ),
    st.tuples(
        st.just("stp"),
        USERS,
        st.booleans(),
        PRICES,
        QTYS,
        st.sampled_from(list(SelfTradePrevention)),
    ),
    st.tuples(st.just("trail"), USERS, st.booleans(), st.integers(10_000, 2_000_000)),
    st.tuples(st.just("amend"), USERS, st.integers(0, 60), PRICES, QTYS),
    st.tuples(st.just("liq"), USERS, st.booleans(), PRICES, QTYS),
    st.tuples(st.just("adl"), USERS, st.booleans(), PRICES, QTYS, st.lists(USERS, max_size=4)),
)


def rich_command(op, oid):
    kind = op[0]
    if kind in ("place", "market", "cancel"):
        return to_command(op, oid)
    if kind == "cancel_all":
        return cancel_all(op[1])
    if kind == "mark":
        return mark(op[1])
    if kind == "trail":
        _, user, is_buy, rate = op
        return place(
            oid,
            user,
            BUY if is_buy else SELL,
            None,
            5,
            kind=OrderType.TRAILING_STOP,
            callback_rate=rate,
            trigger_by=TriggerBy.MARK,
        )
    if kind == "amend":
        _, user, target, price, qty = op
        return amend(target, user, price=price, qty=qty)
    if kind == "liq":
        _, user, is_buy, price, qty = op
        return liquidation(oid, user, BUY if is_buy else SELL, price, qty)
    if kind == "adl":
        _, user, is_buy, price, qty, counterparties = op
        return deleverage(user, BUY if is_buy else SELL, price, qty, counterparties, oid)
    _, user, is_buy, price, qty, stp = op
    side = BUY if is_buy else SELL
    if kind == "stop":
        return place(oid, user, side, price, qty, kind=OrderType.STOP_LIMIT, stop_price=price)
    return place(oid, user, side, price, qty, stp=stp, reduce_only=oid % 5 == 0)


@settings(max_examples=150, deadline=None)
@given(st.lists(RICH_OPS, max_size=50), st.data())
def test_snapshot_restore_and_continue_equals_an_uninterrupted_run(flow, data):
    commands = [rich_command(op, oid) for oid, op in enumerate(flow, 1)]
    cut = data.draw(st.integers(0, len(commands)))
    straight = Harness()
    for cmd in commands:
        straight.send(cmd)
    first = Harness()
    for cmd in commands[:cut]:
        first.send(cmd)
    snapshot = first.core.snapshot()
    restored = MatchingCore.restore(SPEC, snapshot)
    assert restored.digest() == first.core.digest()
    assert restored.snapshot() == snapshot
    second = Harness(restored)
    for cmd in commands[cut:]:
        second.send(cmd)
    assert first.events + second.events == straight.events
    assert second.core.digest() == straight.core.digest()


@settings(max_examples=100, deadline=None)
@given(st.lists(RICH_OPS, max_size=40), st.integers(1, 8))
def test_invariants_hold_positions_net_to_zero_and_seq_is_gapless_for_any_batching(flow, size):
    h = Harness()
    commands = [rich_command(op, oid) for oid, op in enumerate(flow, 1)]
    for i in range(0, len(commands), size):
        h.send(*commands[i : i + size])
        assert sum(h.core.positions.values()) == 0  # fills and deleverages move lots, not make
    assert [e.seq for e in h.events] == list(range(1, len(h.events) + 1))
