"""Match the engines' events to the requests a gateway is waiting on (pure: no I/O).

A request's answer is the first event that settles it:
- any request: the matcher's ``OrderRejected`` (for an order, also when the wallet refused it:
  ``RejectRequest``), or the wallet's ``OrderRequestRejected`` (deposit, withdraw, leverage);
- place: the end of the matcher batch that accepted the order (``BatchCompleted``), so the
  answer tells what matching did to it (New, PartiallyFilled, Filled, Expired, Cancelled);
- cancel: ``OrderCancelled``; amend: ``OrderAmended``; cancel-all: the end of the batch of its
  first ``OrderCancelled`` (a cancel-all that finds nothing produces no event: the caller
  answers those itself);
- deposit: the wallet's ``AccountUpdated``; withdraw: ``WithdrawalCompleted``; leverage:
  ``LeverageSet``.
Events of requests this gateway is not waiting on are ignored, so several gateways can read
the same topics side by side.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import cast

from libs.messages import (
    AccountUpdated,
    BatchCompleted,
    LeverageSet,
    Message,
    OrderAccepted,
    OrderAmended,
    OrderCancelled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderRequestRejected,
    OrderStatus,
    WithdrawalCompleted,
)
from services.gateway.freshness import Seen


class Kind(StrEnum):
    PLACE = "place"
    CANCEL = "cancel"
    CANCEL_ALL = "cancel_all"
    AMEND = "amend"
    DEPOSIT = "deposit"
    WITHDRAW = "withdraw"
    LEVERAGE = "leverage"


@dataclass
class Outcome:
    """What happened to a request. ``status`` follows the API's order statuses for orders."""

    status: OrderStatus
    order_id: int | None = None
    symbol: str | None = None
    qty: int = 0
    filled: int = 0
    code: int | None = None
    msg: str | None = None
    reason: str | None = None
    event: Message | None = None  # the settling event (deposit/withdraw/leverage/amend, rejection)
    cancelled: list[OrderCancelled] = field(default_factory=list)
    user_id: int = 0  # who asked (set as the request settles)
    seen: Seen | None = None  # where the answer is in the log (read-your-writes)

    @property
    def remaining(self) -> int:
        return max(self.qty - self.filled, 0)


@dataclass
class _Waiting:
    kind: Kind
    user_id: int
    outcome: Outcome | None = None  # set once the order is accepted / first cancel seen


_SETTLES = {
    Kind.CANCEL: OrderCancelled,
    Kind.AMEND: OrderAmended,
    Kind.DEPOSIT: AccountUpdated,
    Kind.WITHDRAW: WithdrawalCompleted,
    Kind.LEVERAGE: LeverageSet,
}


class ReplyTracker:
    """Requests in flight; ``apply(event)`` returns the requests it settles."""

    def __init__(self) -> None:
        self._waiting: dict[str, _Waiting] = {}
        self._orders: dict[int, Outcome] = {}  # accepted orders awaiting their batch's end
        self._batch_end: dict[str, list[str]] = {}  # symbol -> request ids settled at its end

    def __len__(self) -> int:
        return len(self._waiting)

    def expect(self, request_id: str, kind: Kind, user_id: int) -> None:
        """Wait for the answer to ``user_id``'s request."""
        self._waiting[request_id] = _Waiting(kind, user_id)

    def forget(self, request_id: str) -> None:
        """Stop waiting (the caller timed out); a late event is then ignored."""
        waiting = self._waiting.pop(request_id, None)
        if waiting is not None and waiting.outcome is not None:
            self._orders.pop(waiting.outcome.order_id or 0, None)

    def apply(self, event: Message) -> list[tuple[str, Outcome]]:
        # dispatch on the exact type; mypy does not narrow through `kind`, hence the casts
        kind = type(event)
        if kind is OrderFilled:
            self._fill(cast(OrderFilled, event))
            return []
        if kind is BatchCompleted:
            return self._end_batch(cast(BatchCompleted, event).symbol)
        if kind is OrderExpired or kind is OrderCancelled:
            # may end an order placed in this same batch
            self._ended(cast("OrderExpired | OrderCancelled", event))
        request_id: str | None = getattr(event, "request_id", None)
        if not request_id:
            return []
        waiting = self._waiting.get(request_id)
        if waiting is None:
            return []
        if kind is OrderRejected or kind is OrderRequestRejected:
            rejected = cast("OrderRejected | OrderRequestRejected", event)
            outcome = waiting.outcome or Outcome(OrderStatus.REJECTED, order_id=rejected.order_id)
            outcome.status, outcome.code, outcome.msg = (
                OrderStatus.REJECTED,
                rejected.code,
                rejected.msg,
            )
            outcome.event = event  # a -4015 names the original order
            return self._settle(request_id, outcome)
        if waiting.kind is Kind.PLACE and kind is OrderAccepted:
            accepted = cast(OrderAccepted, event)
            outcome = Outcome(OrderStatus.NEW, accepted.order_id, accepted.symbol, accepted.qty)
            waiting.outcome = self._orders[accepted.order_id] = outcome
            self._batch_end.setdefault(accepted.symbol, []).append(request_id)
            return []
        if waiting.kind is Kind.CANCEL_ALL and kind is OrderCancelled:
            cancelled = cast(OrderCancelled, event)
            if waiting.outcome is None:
                waiting.outcome = Outcome(OrderStatus.CANCELLED, symbol=cancelled.symbol)
                self._batch_end.setdefault(cancelled.symbol, []).append(request_id)
            waiting.outcome.cancelled.append(cancelled)
            return []
        if _SETTLES.get(waiting.kind) is kind:
            return self._settle(request_id, _settled(event))
        return []

    def _fill(self, event: OrderFilled) -> None:
        for order_id, remaining in (
            (event.taker_order_id, event.taker_remaining),
            (event.maker_order_id, event.maker_remaining),
        ):
            outcome = self._orders.get(order_id)
            if outcome is not None:
                outcome.filled = outcome.qty - remaining

    def _ended(self, event: OrderExpired | OrderCancelled) -> None:
        outcome = self._orders.get(event.order_id)
        if outcome is not None:
            outcome.status = (
                OrderStatus.EXPIRED if type(event) is OrderExpired else OrderStatus.CANCELLED
            )
            outcome.filled, outcome.reason = event.filled, str(event.reason)

    def _end_batch(self, symbol: str) -> list[tuple[str, Outcome]]:
        settled = []
        for request_id in self._batch_end.pop(symbol, ()):
            waiting = self._waiting.get(request_id)
            if waiting is None or waiting.outcome is None:
                continue
            outcome = waiting.outcome
            if waiting.kind is Kind.PLACE:
                self._orders.pop(outcome.order_id or 0, None)
                if outcome.status == OrderStatus.NEW and outcome.filled:
                    outcome.status = (
                        OrderStatus.FILLED
                        if outcome.remaining == 0
                        else OrderStatus.PARTIALLY_FILLED
                    )
            settled += self._settle(request_id, outcome)
        return settled

    def _settle(self, request_id: str, outcome: Outcome) -> list[tuple[str, Outcome]]:
        outcome.user_id = self._waiting.pop(request_id).user_id
        if outcome.order_id is not None:
            self._orders.pop(outcome.order_id, None)
        return [(request_id, outcome)]


def _settled(event: Message) -> Outcome:
    if type(event) is OrderCancelled:
        return Outcome(
            OrderStatus.CANCELLED,
            event.order_id,
            event.symbol,
            event.filled + event.remaining,
            event.filled,
            reason=str(event.reason),
            event=event,
        )
    return Outcome(OrderStatus.DONE, order_id=getattr(event, "order_id", None), event=event)
