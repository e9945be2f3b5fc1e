"""The order inside a batch: classes across users, log order for each user's own commands.

A batch's cut depends on timing, so whatever it groups, a user's commands must mean what
they mean in the log: a cancel, cancel-all or amend never overtakes the user's own place.
"""

from __future__ import annotations

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from libs.messages import (
    AmendOrder,
    CancelAll,
    CancelOrder,
    EndReason,
    OrderCancelled,
    OrderRejected,
    PlaceOrder,
    TimeInForce,
)
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
    kinds,
    liquidation,
    mark,
    place,
)
from tests.unit.matcher.test_core_properties import RICH_OPS, rich_command


def offsets(events) -> list[int]:
    """Return the commands' offsets in the order they were applied."""
    return list(dict.fromkeys(e.cmd_offset for e in events))


def test_a_cancel_after_a_place_of_the_same_user_in_one_batch_cancels_it():
    h = Harness()
    events = h.send(place(7, 1, BUY, MID - 10, 5), cancel(7, 1))
    assert kinds(events) == ["OrderAccepted", "OrderCancelled"]
    assert 7 not in h.core.orders


def test_a_cancel_all_after_a_place_of_the_same_user_in_one_batch_cancels_it_too():
    h = Harness()
    h.send(place(1, 1, BUY, MID - 10, 5))
    events = h.send(place(2, 1, BUY, MID - 20, 5), cancel_all(1))
    cancelled = [(e.order_id, e.reason) for e in events if type(e) is OrderCancelled]
    assert cancelled == [(1, EndReason.CANCEL_ALL), (2, EndReason.CANCEL_ALL)]
    assert not h.core.user_orders.get(1)


def test_an_amend_after_a_place_of_the_same_user_in_one_batch_amends_it():
    h = Harness()
    events = h.send(place(7, 1, BUY, MID - 10, 5), amend(7, 1, price=MID - 20))
    assert kinds(events) == ["OrderAccepted", "OrderAmended"]
    assert h.core.orders[7].price == MID - 20


def test_a_cancel_by_client_order_id_after_its_place_in_one_batch_cancels_it():
    h = Harness()
    events = h.send(
        place(7, 1, BUY, MID - 10, 5, client_order_id="mine"),
        cancel(None, 1, client_order_id="mine"),
    )
    assert kinds(events) == ["OrderAccepted", "OrderCancelled"]


def test_a_cancel_after_a_market_order_of_the_same_user_follows_it():
    h = Harness()
    h.send(place(1, 2, SELL, MID, 5), place(2, 1, BUY, MID - 10, 5))
    events = h.send(place(3, 1, BUY, None, 5), cancel(2, 1))
    assert offsets(events) == [2, 3]
    assert h.fills(events) == [(3, 1, MID, 5)]


def test_across_users_cancels_still_go_before_markets_and_markets_before_limits():
    h = Harness()
    h.send(place(1, 1, SELL, MID, 5), place(2, 1, SELL, MID + 1, 5))
    events = h.send(
        place(3, 2, BUY, MID + 1, 5),  # a limit: last
        place(4, 3, BUY, None, 5),  # a market: before the limit, takes order 1
        cancel(2, 1),  # another user's cancel: first, so order 2 is not there to take
    )
    assert offsets(events) == [4, 3, 2]
    assert h.fills(events) == [(4, 1, MID, 5)]
    assert h.book()[0] == [(MID + 1, 5)]  # the limit rests: nothing left to take


def test_a_users_cancel_waits_behind_their_own_limit_not_behind_others():
    h = Harness()
    h.send(place(1, 1, SELL, MID, 5), place(5, 9, BUY, MID - 100, 5))
    events = h.send(
        place(2, 1, SELL, MID + 5, 5),  # user 1's limit..
        cancel(1, 1),  # ..so user 1's cancel goes with the limits, after it
        cancel_all(9),  # another user's cancel keeps its class: first
        place(3, 2, BUY, None, 5),  # a market of user 2 goes before user 1's limit and cancel
    )
    assert offsets(events) == [4, 5, 2, 3]
    assert h.fills(events) == [(3, 1, MID, 5)]  # order 1 filled before its cancel ran
    assert code_of(events) == [-2011]


def test_liquidations_go_first_even_before_the_bust_users_earlier_commands():
    h = Harness()
    h.send(place(8, 4, SELL, MID + 50, 5), place(9, 5, BUY, MID + 50, 5))  # user 4 short 5
    h.send(place(1, 1, SELL, MID, 5))
    events = h.send(place(2, 4, BUY, MID - 50, 1), liquidation(3, 4, BUY, MID, 5))
    assert offsets(events) == [4, 3]


def code_of(events) -> list[int]:
    return [e.code for e in events if type(e) is OrderRejected]


# --- properties ----------------------------------------------------------------------------


def user_of(cmd) -> int | None:
    """The user whose own command this is (system commands and fences have none)."""
    if type(cmd) in (PlaceOrder, CancelOrder, CancelAll, AmendOrder):
        return cmd.user_id
    return None


def run(commands, cuts: list[int]) -> list:
    """Apply ``commands`` (offsets 0..n-1) in batches ending before each cut; return events."""
    core = MatchingCore(SPEC)
    events: list = []
    start = 0
    for end in [*sorted(set(cuts)), len(commands)]:
        if end > start:
            events += core.process_batch(list(enumerate(commands))[start:end])
            start = end
    return events


CUTS = st.lists(st.integers(1, 60), max_size=20)


@settings(max_examples=200, deadline=None)
@given(st.lists(RICH_OPS, max_size=50), CUTS)
def test_each_users_commands_apply_in_log_order_whatever_the_batch_cuts(flow, cuts):
    commands = [rich_command(op, oid) for oid, op in enumerate(flow, 1)]
    order = offsets(run(commands, cuts))
    for user in {user_of(c) for c in commands} - {None}:
        mine = [o for o in order if user_of(commands[o]) == user]
        assert mine == sorted(mine), f"user {user}: applied {mine}"


@settings(max_examples=200, deadline=None)
@given(st.lists(RICH_OPS, max_size=50), CUTS)
def test_a_cancel_or_cancel_all_leaves_none_of_the_users_earlier_orders_open(flow, cuts):
    commands = [rich_command(op, oid) for oid, op in enumerate(flow, 1)]
    core = MatchingCore(SPEC)
    placed: dict[int, int] = {}  # order id -> offset of its place
    start = 0
    for end in [*sorted(set(cuts)), len(commands)]:
        if end <= start:
            continue
        batch = list(enumerate(commands))[start:end]
        core.process_batch(batch)
        start = end
        for offset, cmd in batch:
            if type(cmd) is PlaceOrder:
                placed.setdefault(cmd.order_id, offset)
        for offset, cmd in batch:
            if type(cmd) is CancelAll:
                open_before = [
                    oid
                    for oid in core.user_orders.get(cmd.user_id, ())
                    if placed.get(oid, 1 << 60) < offset
                ]
                assert not open_before, f"cancel-all at {offset} left {open_before}"
            elif type(cmd) is CancelOrder and placed.get(cmd.order_id, 1 << 60) < offset:
                order = core.open_order(cmd.order_id)
                assert order is None or order.user_id != cmd.user_id


# Books that never cross: buys below MID - 20, sells above MID + 20, no market orders; so no
# user's outcome depends on another's, and each must be what one command per batch gives.
QUIET_OPS = st.one_of(
    st.tuples(
        st.just("place"),
        st.integers(1, 3),
        st.booleans(),
        st.integers(21, 40),
        st.integers(3, 20),
        st.sampled_from(["GTC", "GTC", "IOC", "FOK", "GTX"]),
        st.booleans(),  # reduce-only (rejected: nobody holds a position)
    ),
    st.tuples(st.just("cancel"), st.integers(1, 3), st.integers(0, 40)),
    st.tuples(st.just("cancel_all"), st.integers(1, 3)),
    st.tuples(st.just("amend"), st.integers(1, 3), st.integers(0, 40), st.integers(21, 40)),
    st.tuples(st.just("mark")),
)


def quiet_commands(flow) -> list:
    sides: dict[int, bool] = {}
    commands = []
    for oid, op in enumerate(flow, 1):
        kind, *args = op
        if kind == "place":
            user, is_buy, away, qty, tif, reduce = args
            sides[oid] = is_buy
            price = MID - away if is_buy else MID + away
            side = BUY if is_buy else SELL
            cmd = place(oid, user, side, price, qty, tif=TimeInForce(tif), reduce_only=reduce)
        elif kind == "cancel":
            cmd = cancel(args[1], args[0])
        elif kind == "cancel_all":
            cmd = cancel_all(args[0])
        elif kind == "amend":
            user, target, away = args
            price = MID - away if sides.get(target, True) else MID + away
            cmd = amend(target, user, price=price)
        else:
            cmd = mark(MID, ts=oid)
        commands.append(cmd)
    return commands


@settings(max_examples=300, deadline=None)
@given(st.lists(QUIET_OPS, max_size=50), CUTS)
def test_without_interaction_each_user_gets_what_one_command_per_batch_gives(flow, cuts):
    commands = quiet_commands(flow)
    batched = run(commands, cuts)
    serial = run(commands, list(range(1, len(commands))))

    def outcomes(events, user):
        return [
            msgspec.structs.replace(e, seq=0)
            for e in events
            if type(e).__name__ != "BatchCompleted" and user_of(commands[e.cmd_offset]) == user
        ]

    for user in (1, 2, 3):
        assert outcomes(batched, user) == outcomes(serial, user)


def test_batch_completed_carries_the_latest_time_of_the_batchs_commands():
    core = MatchingCore(SPEC)
    [*_, alone] = core.process_batch([(0, place(1, 1, BUY, MID - 10, 5, ts=700))])
    assert (alone.cmd_offset, alone.size, alone.ts) == (0, 1, 700)
    batch = [
        (1, place(2, 2, SELL, MID + 10, 5, ts=900)),
        (2, cancel(1, 1)),  # no time: ts 0
        (3, mark(MID, ts=800)),
    ]
    [*_, completed] = core.process_batch(batch)
    assert (completed.first_offset, completed.cmd_offset, completed.ts) == (1, 3, 900)
    [*_, untimed] = core.process_batch([(4, cancel(2, 2)), (5, cancel_all(3))])
    assert untimed.ts == 0
