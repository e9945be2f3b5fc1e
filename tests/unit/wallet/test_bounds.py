"""The wallet keeps every amount and running total inside its bounds (libs.money), whatever
the requests: deposits past a bound are refused with a rejection, and the state always encodes.
"""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from libs.messages import (
    LedgerAccountKind,
    LedgerLeg,
    LedgerPosted,
    OrderRequestRejected,
    WithdrawalCompleted,
    encode,
)
from libs.money import (
    INT64_MAX,
    LEDGER_LIMIT,
    MAX_BALANCE,
    MAX_INSIDE,
    MAX_TRANSFER,
)
from services.wallet.core import Ledger, LedgerError, WalletCore
from services.wallet.core.snapshot import VERSION
from tests.unit.wallet.kit import (
    BUY,
    PRICE,
    SELL,
    USDT,
    Exchange,
    deposit,
    of,
    place,
    withdraw,
)

OUTSIDE = LedgerAccountKind.OUTSIDE
USER = LedgerAccountKind.USER


def rejected(out: list) -> OrderRequestRejected | None:
    found = of(OrderRequestRejected, out)
    return found[0] if found else None


def test_ten_maximal_deposits_reach_the_balance_bound_and_the_eleventh_is_refused() -> None:
    ex = Exchange()
    for _ in range(10):
        assert rejected(ex.request(deposit(1, MAX_TRANSFER))) is None
    assert ex.wallet.balance(1) == MAX_BALANCE
    out = ex.request(deposit(1, MAX_TRANSFER))
    refusal = rejected(out)
    assert refusal is not None and refusal.code == -4095
    assert "10000000 USDT" in refusal.msg
    assert of(LedgerPosted, out) == []
    assert ex.wallet.balance(1) == MAX_BALANCE  # nothing moved
    assert rejected(ex.request(deposit(1, 1))) is not None  # not even one unit more
    # the user is not stuck: money can leave, and then come back
    assert of(WithdrawalCompleted, ex.request(withdraw(1, MAX_TRANSFER)))
    assert rejected(ex.request(deposit(1, MAX_TRANSFER))) is None


def test_the_faucet_sum_attack_over_many_accounts_stops_at_the_exchange_bound() -> None:
    ex = Exchange()
    users_to_fill = MAX_INSIDE // MAX_BALANCE
    for user in range(1, users_to_fill + 1):
        for _ in range(MAX_BALANCE // MAX_TRANSFER):
            assert rejected(ex.request(deposit(user, MAX_TRANSFER))) is None
    assert -ex.wallet.ledger.balance(OUTSIDE) == MAX_INSIDE
    refusal = rejected(ex.request(deposit(users_to_fill + 1, MAX_TRANSFER)))
    assert refusal is not None and refusal.code == -4095 and "exchange" in refusal.msg
    assert ex.wallet.balance(users_to_fill + 1) == 0
    ex.wallet.digest()  # the state still encodes


def test_what_used_to_overflow_the_outside_account_is_refused_and_the_state_still_encodes() -> None:
    ex = Exchange()
    for user in range(1, 12):  # the old faucet let each of these through: 1.1e19 units
        ex.request(deposit(user, 10**10 * USDT))
    assert ex.wallet.ledger.balance(OUTSIDE) == 0
    assert ex.wallet.snapshot() and ex.wallet.digest()


@pytest.mark.parametrize("amount", [MAX_TRANSFER + 1, INT64_MAX, 0, -1])
def test_a_transfer_outside_one_unit_to_the_maximum_is_refused(amount: int) -> None:
    ex = Exchange()
    ex.request(deposit(1, 1000 * USDT))
    for request in (deposit(1, amount), withdraw(1, amount)):
        refusal = rejected(ex.request(request))
        assert refusal is not None and refusal.code == -1130
    assert ex.wallet.balance(1) == 1000 * USDT


def test_the_ledger_refuses_an_entry_past_its_limit_before_changing_any_balance() -> None:
    ledger = Ledger()
    ledger.post((LedgerLeg(OUTSIDE, 0, -LEDGER_LIMIT), LedgerLeg(USER, 1, LEDGER_LIMIT)))
    before = dict(ledger.balances), ledger.entry_id
    with pytest.raises(LedgerError):
        ledger.post((LedgerLeg(USER, 2, 1), LedgerLeg(OUTSIDE, 0, -1)))
    assert (dict(ledger.balances), ledger.entry_id) == before


def test_version_1_2_and_3_snapshots_still_load() -> None:
    ex = Exchange()
    ex.request(deposit(1, 1000 * USDT))
    ex.request(place(1, 1, BUY, PRICE - 100))
    current = msgspec.msgpack.decode(ex.wallet.snapshot())
    assert current[0] == VERSION == 4
    # 3 had the position causes per user after the client ids
    v3 = [3, *current[1:], [[1, "matcher.events", 0, 5]]]
    assert WalletCore.restore(msgspec.msgpack.encode(v3)).digest() == ex.wallet.digest()
    # versions 1 and 2 had deposits, withdrawals after entry_id and reserved, released after
    # holds; 2 added the client ids at the end
    v2 = [2, current[1], 1000 * USDT, 0, current[2], current[3], 77, 11, *current[4:]]
    assert WalletCore.restore(msgspec.msgpack.encode(v2)).digest() == ex.wallet.digest()
    v1 = [1, *v2[1:-1]]  # no client ids (none were used here)
    assert WalletCore.restore(msgspec.msgpack.encode(v1)).digest() == ex.wallet.digest()


AMOUNTS = st.one_of(
    st.integers(1, 10_000).map(lambda n: n * USDT),
    st.sampled_from([MAX_TRANSFER, MAX_TRANSFER + 1, MAX_BALANCE, LEDGER_LIMIT, INT64_MAX]),
    st.integers(-(2**63), INT64_MAX),
)
PRICES = st.one_of(st.integers(PRICE - 2000, PRICE + 2000), st.integers(1, INT64_MAX))
LOTS = st.one_of(st.integers(1, 2000), st.integers(1, INT64_MAX))
USERS = st.integers(1, 3)
step = st.one_of(
    st.tuples(st.just("deposit"), USERS, AMOUNTS),
    st.tuples(st.just("withdraw"), USERS, AMOUNTS),
    st.tuples(st.just("order"), USERS, st.booleans(), PRICES, LOTS),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(step, max_size=40))
def test_whatever_the_requests_every_output_and_the_state_encode_within_the_bounds(steps) -> None:
    ex = Exchange()
    ex.mark(PRICE)
    for n, (kind, user, *args) in enumerate(steps):
        if kind == "deposit":
            out = ex.request(deposit(user, args[0]))
        elif kind == "withdraw":
            out = ex.request(withdraw(user, args[0]))
        else:
            buy, price, lots = args
            out = ex.request(place(1000 + n, user, BUY if buy else SELL, price, lots))
        for message in out:
            encode(message)  # every event and forwarded command is readable by its consumer
        ledger = ex.wallet.ledger
        assert 0 <= -ledger.balance(OUTSIDE) <= MAX_INSIDE
        for (account, _), value in ledger.balances.items():
            assert account is OUTSIDE or 0 <= value <= MAX_BALANCE
        assert WalletCore.restore(ex.wallet.snapshot()) is not None
        ex.wallet.digest()
