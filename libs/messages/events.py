"""Events: facts, past tense. Prices in ticks, quantities in lots, cash in 1e-8 USDT.

Every event names what caused it and carries a sequence number, so a consumer can
detect gaps and drop duplicates:
- matcher events: ``seq`` per symbol and ``cmd_offset``, the ``orders.commands`` offset
  of the command that caused it;
- wallet and position events: ``seq`` per producing partition and ``cause``, the
  input record (topic, partition, offset) that caused it.
"""

from __future__ import annotations

import msgspec

from libs.messages.base import Event
from libs.messages.enums import EndReason, LedgerAccountKind, OrderType, Side, TimeInForce


class Cause(msgspec.Struct, frozen=True, array_like=True):
    """The input record an event was derived from. ``topic`` is the logical name from
    libs/topics (``matcher.events``), not the deployment's prefixed one: build it with
    ``libs.topics.cause_of``."""

    topic: str
    partition: int
    offset: int


# --- matcher.events (key = symbol) -------------------------------------------------------


class MatcherEvent(Event, frozen=True, gc=False):
    """An event of one symbol's book. Unlike other messages these may also be built
    positionally (in field order): the matching core builds several per command and that
    is a third cheaper. ``gc=False``: they hold only scalars and enum members, no cycles."""

    symbol: str
    seq: int
    cmd_offset: int


class OrderAccepted(MatcherEvent, frozen=True):
    """The order passed the book's filters; it now matches, rests or waits for its trigger."""

    order_id: int
    user_id: int
    request_id: str
    side: Side
    order_type: OrderType
    tif: TimeInForce
    qty: int
    price: int | None = None
    stop_price: int | None = None
    reduce_only: bool = False
    client_order_id: str | None = None


class OrderRejected(MatcherEvent, frozen=True):
    """The order, cancel or amend was refused; ``code`` and ``msg`` follow Binance's error codes."""

    request_id: str
    user_id: int
    order_id: int | None
    code: int
    msg: str
    original_order_id: int | None = None  # -4015 from the wallet: the order holding the id
    pre_trade: bool = False  # the wallet refused it (``RejectRequest``); the book only answered


class OrderFilled(MatcherEvent, frozen=True):
    """A match between a taker and a resting maker, at the maker's price."""

    trade_id: int
    price: int
    qty: int
    taker_order_id: int
    taker_user_id: int
    taker_side: Side
    taker_remaining: int
    maker_order_id: int
    maker_user_id: int
    maker_remaining: int
    liquidation: bool = False


class OrderCancelled(MatcherEvent, frozen=True):
    """An open order was cancelled; ``remaining`` lots will never fill."""

    order_id: int
    user_id: int
    request_id: str
    reason: EndReason
    filled: int
    remaining: int


class OrderExpired(MatcherEvent, frozen=True):
    """The book ended an order by rule (IOC, FOK, post-only, STP, reduce-only, band, ...)."""

    order_id: int
    user_id: int
    reason: EndReason
    filled: int
    remaining: int


class OrderTriggered(MatcherEvent, frozen=True):
    """A stop, take-profit or trailing order's trigger fired; it now enters the book."""

    order_id: int
    user_id: int
    trigger_price: int


class OrderAmended(MatcherEvent, frozen=True):
    """An open order's price or quantity changed."""

    order_id: int
    user_id: int
    request_id: str
    price: int | None
    qty: int
    kept_priority: bool


class SymbolHalted(MatcherEvent, frozen=True):
    reason: str


class SymbolResumed(MatcherEvent, frozen=True):
    pass


class MarkPriceSet(MatcherEvent, frozen=True):
    """The matcher applied a mark-price tick here, between the fills before and after it."""

    mark_price: int
    ts: int
    # the tick's index price (0: none, or a log from before it was carried): every position
    # engine shard samples the funding premium from it, so all compute the same rate
    index_price: int = 0
    open_interest: int = 0  # lots: the sum of the long positions at this point of the book


class DeleverageMatch(msgspec.Struct, frozen=True, array_like=True):
    """One counterparty's part of a ``Deleveraged``: ``qty`` lots at the event's price."""

    trade_id: int  # from the book's trade counter, like a fill's
    user_id: int
    qty: int


class Deleveraged(MatcherEvent, frozen=True):
    """A ``Deleverage`` applied: ``user_id``'s position closed by ``qty`` lots at ``price``
    with the ``side`` it is closed with, each counterparty in ``matches`` taking the other
    side of its part. Exactly one per command; ``qty`` (the sum of the parts) is below the
    command's when positions moved since it was sent, 0 when none could be closed."""

    liquidation_id: int
    user_id: int
    side: Side
    price: int
    qty: int
    matches: tuple[DeleverageMatch, ...] = ()


class BatchCompleted(MatcherEvent, frozen=True):
    """The commands from ``first_offset`` to ``cmd_offset`` (inclusive) formed one batch.

    ``ts`` is the largest ``ts`` of the batch's commands (ns since epoch; 0 when none has
    one): the log's time of the batch, which the read model stamps its trades with."""

    first_offset: int
    size: int
    ts: int = 0


def account_users(event: MatcherEvent) -> tuple[int, ...]:
    """The users whose account the wallet tells (an ``AccountUpdated`` caused by this record)
    when it applies a book record: every answer about one of their orders, since each may move
    a hold or a fee, except a refusal of the wallet's own, which changed nothing. The read
    side's read-your-writes counts on it (docs/READ-MODEL.md)."""
    kind = type(event)
    if kind is OrderFilled:
        filled: OrderFilled = event  # type: ignore[assignment]  # exactly (kind is OrderFilled)
        return (filled.taker_user_id, filled.maker_user_id)
    if kind in _ANSWERS_TOLD and not getattr(event, "pre_trade", False):
        return (event.user_id,)  # type: ignore[attr-defined]  # every kind there names its user
    return ()


_ANSWERS_TOLD = frozenset(
    (OrderAccepted, OrderCancelled, OrderExpired, OrderAmended, OrderRejected)
)


# --- index.prices (key = symbol) ---------------------------------------------------------


class IndexPriceTick(Event, frozen=True, kw_only=True):
    """The index (spot reference) price of a symbol at time ``ts`` (ns since epoch).

    An input from outside the exchange, so no ``cause`` (no input record) and no ``seq``: a
    tick is identified per symbol by its ``ts``, which only grows (the position engine drops
    one at or before the last it applied).
    """

    symbol: str
    price: int
    ts: int
    source: str = "sim"


# --- positions.events (key = user, or symbol for market-wide facts) -------------------------


class PositionEvent(Event, frozen=True, kw_only=True):
    seq: int
    cause: Cause


class PositionChanged(PositionEvent, frozen=True, kw_only=True):
    """A fill changed a position; ``realised_pnl`` is what this fill realised (cash)."""

    user_id: int
    symbol: str
    trade_id: int
    size: int  # signed lots: > 0 long, < 0 short
    entry_notional: int  # |size| at average entry price, cash
    realised_pnl: int
    fee: int
    fees: int = 0  # the open position's share of the fees paid for it (its break-even price)


class MarkPriceUpdated(PositionEvent, frozen=True, kw_only=True):
    symbol: str
    mark_price: int
    index_price: int
    ts: int
    next_funding_time: int = 0  # ns; the first funding time after ``ts``
    open_interest: int = 0  # lots: the sum of the symbol's long positions at ``ts``


class FundingRateSet(PositionEvent, frozen=True, kw_only=True):
    """The rate applied at ``funding_time`` (rate units: 1e-8), long pays short when positive,
    at ``mark_price`` (ticks: the mark the payments were computed at; 0 before it was told)."""

    symbol: str
    rate: int
    funding_time: int
    mark_price: int = 0


class FundingPaid(PositionEvent, frozen=True, kw_only=True):
    """One position's funding: ``amount`` > 0 received, < 0 paid (cash)."""

    user_id: int
    symbol: str
    amount: int
    rate: int
    funding_time: int


class AccountRisk(PositionEvent, frozen=True, kw_only=True):
    """An account's margin picture after a fill or a mark move."""

    user_id: int
    unrealised_pnl: int
    initial_margin: int
    maintenance_margin: int


class LiquidationTriggered(PositionEvent, frozen=True, kw_only=True):
    user_id: int
    symbol: str
    size: int
    bankruptcy_price: int
    mark_price: int


class LiquidationSettled(PositionEvent, frozen=True, kw_only=True):
    """The liquidation closed; ``insurance_delta`` > 0 went to the fund, < 0 came from it."""

    user_id: int
    symbol: str
    insurance_delta: int


class AutoDeleveraged(PositionEvent, frozen=True, kw_only=True):
    """A profitable opposite position was closed against a bankrupt one at bankruptcy price."""

    user_id: int
    symbol: str
    qty: int
    price: int
    counterparty_user_id: int


# --- wallet.events (key = user) ----------------------------------------------------------


class LedgerLeg(msgspec.Struct, frozen=True, array_like=True):
    kind: LedgerAccountKind
    owner: int  # user id for USER accounts, 0 for the exchange's own
    amount: int  # signed cash; the legs of an entry sum to zero


class WalletEvent(Event, frozen=True, kw_only=True):
    seq: int
    cause: Cause


class LedgerPosted(WalletEvent, frozen=True, kw_only=True):
    """One double-entry journal entry."""

    entry_id: int
    memo: str
    legs: tuple[LedgerLeg, ...]


class OrderRequestRejected(WalletEvent, frozen=True, kw_only=True):
    """The pre-trade check refused a request (e.g. -2019 Margin is insufficient)."""

    request_id: str
    user_id: int
    order_id: int | None
    code: int
    msg: str
    original_order_id: int | None = None  # -4015: the order holding the client order id


class AccountUpdated(WalletEvent, frozen=True, kw_only=True):
    """A user's balance picture, as the wallet's pre-trade check sees it: what the gateway
    serves on ``GET /account``. The wallet tells one for every input that touched the user
    (``cause``); ``origin`` is the cause of the position event behind it, when it came through
    one (the fill it settles), so the read side knows which fills the picture covers."""

    user_id: int
    balance: int
    holds: int
    available: int  # balance + upnl - margin - holds
    request_id: str | None = None
    margin: int = 0  # initial margin of the positions, at the wallet's marks
    upnl: int = 0  # unrealised PnL of the positions, at the wallet's marks
    origin: Cause | None = None


class LeverageSet(WalletEvent, frozen=True, kw_only=True):
    request_id: str
    user_id: int
    symbol: str
    leverage: int


class WithdrawalCompleted(WalletEvent, frozen=True, kw_only=True):
    request_id: str
    user_id: int
    amount: int
