"""The double-entry ledger: balances by account, moved only by entries whose legs sum to zero."""

from __future__ import annotations

from libs.messages import LedgerAccountKind, LedgerLeg
from libs.money import LEDGER_LIMIT

USER = LedgerAccountKind.USER
FEES = LedgerAccountKind.FEES
INSURANCE = LedgerAccountKind.INSURANCE
FUNDING = LedgerAccountKind.FUNDING
PNL = LedgerAccountKind.PNL
OUTSIDE = LedgerAccountKind.OUTSIDE

Account = tuple[LedgerAccountKind, int]
"""(kind, owner): owner is the user id for USER accounts, 0 for the exchange's own."""


class LedgerError(ValueError):
    """An entry that does not balance, has no legs, or would take an account past the limit."""


class Ledger:
    """Balances of every account plus the entry counter.

    No lifetime totals of the flows in and out: they grow without bound. What crossed the
    boundary, net, is the OUTSIDE account's balance.
    """

    __slots__ = ("balances", "entry_id")

    def __init__(self) -> None:
        self.balances: dict[Account, int] = {}
        self.entry_id = 0

    def balance(self, kind: LedgerAccountKind, owner: int = 0) -> int:
        return self.balances.get((kind, owner), 0)

    def post(self, legs: tuple[LedgerLeg, ...]) -> int:
        """Apply one entry and return its id. Legs must sum to zero; zero legs are dropped."""
        if sum(leg.amount for leg in legs) != 0:
            raise LedgerError(f"entry does not balance: {legs}")
        if not legs:
            raise LedgerError("an entry needs legs")
        balances = self.balances
        after: dict[Account, int] = {}
        for leg in legs:
            key = (leg.kind, leg.owner)
            after[key] = after.get(key, balances.get(key, 0)) + leg.amount
        for (kind, owner), value in after.items():  # checked before anything changes
            if not -LEDGER_LIMIT <= value <= LEDGER_LIMIT:
                raise LedgerError(f"entry takes {kind}:{owner} past the ledger limit: {legs}")
        balances.update(after)
        self.entry_id += 1
        return self.entry_id

    def total_inside(self) -> int:
        """Return the money held by every account but OUTSIDE: deposits - withdrawals."""
        return sum(v for (kind, _), v in self.balances.items() if kind is not OUTSIDE)


def transfer(
    debit: LedgerAccountKind,
    debit_owner: int,
    credit: LedgerAccountKind,
    credit_owner: int,
    amount: int,
) -> tuple[LedgerLeg, ...]:
    """Return the legs moving ``amount`` from one account to another (negative: the reverse)."""
    return (LedgerLeg(debit, debit_owner, -amount), LedgerLeg(credit, credit_owner, amount))
