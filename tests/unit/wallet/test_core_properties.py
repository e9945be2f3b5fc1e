"""Property tests: random mixed flows through the wallet core and real matching cores."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from libs.messages import (
    CancelAll,
    Cause,
    FundingPaid,
    LedgerAccountKind,
    LedgerPosted,
    LiquidationSettled,
    OrderCancelled,
    OrderExpired,
    OrderRejected,
    PlaceOrder,
    PositionChanged,
    RejectRequest,
    SetLeverage,
    WithdrawalCompleted,
)
from services.wallet.core import WalletCore
from tests.unit.wallet.kit import (
    BUY,
    PRICE,
    SELL,
    SYMBOL,
    USDT,
    Exchange,
    amend,
    cancel,
    deposit,
    place,
    withdraw,
)

USERS = st.integers(1, 4)
CAUSE = Cause("positions.events", 0, 0)
COIDS = st.sampled_from([None, None, "a", "b"])  # client order ids, so retries happen

op = st.one_of(
    st.tuples(st.just("deposit"), USERS, st.integers(1, 100_000)),
    st.tuples(st.just("withdraw"), USERS, st.integers(1, 20_000)),
    st.tuples(
        st.just("limit"), USERS, st.booleans(), st.integers(-20, 20), st.integers(1, 1000), COIDS
    ),
    st.tuples(st.just("market"), USERS, st.booleans(), st.integers(1, 1000), COIDS),
    st.tuples(st.just("cancel"), USERS, st.integers(0, 30)),
    st.tuples(
        st.just("amend"), USERS, st.integers(0, 30), st.integers(-20, 20), st.integers(1, 1000)
    ),
    st.tuples(st.just("mark"), st.integers(-20, 20)),
    st.tuples(st.just("leverage"), USERS, st.integers(1, 125)),
    st.tuples(st.just("pnl"), USERS, st.integers(-2000, 2000)),
    st.tuples(st.just("funding"), USERS, USERS, st.integers(0, 50)),
    st.tuples(st.just("liquidation"), USERS, st.integers(-100, 100)),
)


class Flow:
    """Apply generated operations and check the invariants after each one."""

    def __init__(self) -> None:
        self.ex = Exchange()
        self.ex.mark(PRICE)
        self.next_oid = 1
        self.ended: set[int] = set()
        self.client_ids: dict[tuple[int, str | None], int] = {}
        # our own tally of the money that crossed the boundary, not the ledger's counters
        self.deposited = 0
        self.withdrawn = 0

    def run(self, operation: tuple) -> None:
        ex, w = self.ex, self.ex.wallet
        kind, *args = operation
        out: list = []
        if kind == "deposit":
            self.deposited += args[1] * USDT
            out = ex.request(deposit(args[0], args[1] * USDT))
        elif kind == "withdraw":
            out = ex.request(withdraw(args[0], args[1] * USDT))
        elif kind == "limit":
            user, buy, offset, qty, coid = args
            order = place(
                self.oid(),
                user,
                BUY if buy else SELL,
                PRICE + offset * 100,
                qty,
                client_order_id=coid,
            )
            out = self.place(order)
        elif kind == "market":
            user, buy, qty, coid = args
            out = self.place(
                place(self.oid(), user, BUY if buy else SELL, None, qty, client_order_id=coid)
            )
        elif kind == "cancel":
            out = ex.request(cancel(args[1], args[0]))
        elif kind == "amend":
            user, oid, offset, qty = args
            out = ex.request(amend(oid, user, PRICE + offset * 100, qty))
        elif kind == "mark":
            ex.mark(PRICE + args[0] * 100)
        elif kind == "leverage":
            out = ex.request(
                SetLeverage(request_id="l", user_id=args[0], symbol=SYMBOL, leverage=args[1])
            )
        elif kind == "pnl":  # a loss never beyond what the user has free
            user, amount = args
            amount = max(amount * USDT, -max(0, w.available(user)))
            out = ex.event(self.pnl(user, amount))
        elif kind == "funding":  # one payer, one receiver: nets to zero
            payer, receiver, amount = args
            amount = min(amount * USDT, max(0, w.available(payer)))
            out = ex.event(self.funding(payer, -amount)) + ex.event(self.funding(receiver, amount))
        elif kind == "liquidation":
            user, amount = args
            amount = min(amount * USDT, max(0, w.available(user)))
            out = ex.event(
                LiquidationSettled(
                    seq=0, cause=CAUSE, user_id=user, symbol=SYMBOL, insurance_delta=amount
                )
            )
        for message in out:
            if isinstance(message, (OrderCancelled, OrderExpired)):
                self.ended.add(message.order_id)
            if isinstance(message, OrderRejected) and message.request_id == f"p{message.order_id}":
                self.ended.add(message.order_id)
            if isinstance(message, WithdrawalCompleted):
                self.withdrawn += message.amount
        self.check(kind, out)

    def place(self, order: PlaceOrder) -> list:
        """Place; a client id used before is answered with its first order, and only that."""
        key = (order.user_id, order.client_order_id)
        original = self.client_ids.get(key) if order.client_order_id else None
        holds = self.ex.wallet.holds.of_user(order.user_id)
        out = self.ex.request(order)
        if original is None:
            if order.client_order_id:
                self.client_ids[key] = order.order_id
            return out
        answer = out[0]  # then the book's answer to it, which changes no hold
        assert isinstance(answer, RejectRequest)
        assert (answer.code, answer.order_id, answer.original_order_id) == (
            -4015,
            order.order_id,
            original,
        )
        assert self.ex.wallet.holds.of_user(order.user_id) == holds
        return out

    def oid(self) -> int:
        self.next_oid += 1
        return self.next_oid - 1

    @staticmethod
    def pnl(user: int, amount: int) -> PositionChanged:
        return PositionChanged(
            seq=0,
            cause=CAUSE,
            user_id=user,
            symbol=SYMBOL,
            trade_id=0,
            size=0,
            entry_notional=0,
            realised_pnl=amount,
            fee=0,
        )

    @staticmethod
    def funding(user: int, amount: int) -> FundingPaid:
        return FundingPaid(
            seq=0, cause=CAUSE, user_id=user, symbol=SYMBOL, amount=amount, rate=0, funding_time=0
        )

    def check(self, step: str, out: list) -> None:
        w = self.ex.wallet
        for message in out:
            if isinstance(message, LedgerPosted):
                assert sum(leg.amount for leg in message.legs) == 0
                if any(leg.kind is LedgerAccountKind.OUTSIDE for leg in message.legs):
                    assert step in ("deposit", "withdraw"), message  # only they cross it
        ledger = w.ledger
        assert ledger.total_inside() == self.deposited - self.withdrawn
        assert ledger.balance(LedgerAccountKind.OUTSIDE) == self.withdrawn - self.deposited
        for (kind, owner), value in ledger.balances.items():
            if kind in (LedgerAccountKind.USER, LedgerAccountKind.FEES):
                assert value >= 0, (kind, owner, value)
        assert all(h.amount >= 0 for h in w.holds.by_order.values())
        assert all(v > 0 for v in w.holds.by_user.values())
        per_user: dict[int, int] = {}
        for h in w.holds.by_order.values():
            per_user[h.user_id] = per_user.get(h.user_id, 0) + h.amount
        assert per_user == {u: v for u, v in w.holds.by_user.items()}
        assert not self.ended & set(w.holds.by_order)  # an ended order holds nothing

    def close_everything(self) -> None:
        for user in range(1, 5):
            self.ex.request(CancelAll(request_id="ca", user_id=user, symbol=SYMBOL))
        w = self.ex.wallet
        assert w.holds.by_order == {} and w.holds.by_user == {}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(op, max_size=60))
def test_every_invariant_holds_after_every_step_and_every_hold_is_released_once(ops) -> None:
    flow = Flow()
    for operation in ops:
        flow.run(operation)
    flow.close_everything()


@settings(max_examples=60, deadline=None)
@given(st.lists(op, max_size=40), st.data())
def test_a_restored_snapshot_continues_exactly_like_the_original(ops, data) -> None:
    cut = data.draw(st.integers(0, len(ops)))
    first, second = Flow(), Flow()
    for operation in ops[:cut]:
        first.run(operation)
        second.run(operation)
    second.ex.wallet = WalletCore.restore(second.ex.wallet.snapshot())
    for operation in ops[cut:]:
        first.run(operation)
        second.run(operation)
    assert first.ex.wallet.digest() == second.ex.wallet.digest()
