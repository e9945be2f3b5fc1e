"""Commands: imperatives. Prices in ticks, quantities in lots, cash in 1e-8 USDT, rates in 1e-8.

``orders.requests`` (key = user) carries what clients ask for, from the gateway to the wallet.
``orders.commands`` (one partition per symbol) carries what the matcher must do, from the
wallet (accepted orders, cancels, amends, and the ones it refused, for the book to answer),
the position engine (liquidations, deleverages,
mark-price ticks) and operators (halt, resume).
"""

from __future__ import annotations

from libs.messages.base import Command
from libs.messages.enums import OrderType, SelfTradePrevention, Side, TimeInForce, TriggerBy


class PlaceOrder(Command, frozen=True, kw_only=True):
    """Place a new order. ``order_id`` is assigned at the gateway, unique and time-ordered."""

    request_id: str
    order_id: int
    user_id: int
    symbol: str
    side: Side
    order_type: OrderType
    qty: int
    price: int | None = None  # limit price in ticks (limit, stop-limit, take-profit-limit)
    tif: TimeInForce = TimeInForce.GTC
    leverage: int | None = None  # the wallet's margin check uses the user's setting when None
    stop_price: int | None = None  # trigger price for stop / take-profit orders
    trigger_by: TriggerBy = TriggerBy.LAST
    callback_rate: int | None = None  # trailing stop, in rate units (1e-8)
    activation_price: int | None = None  # trailing stop activation, in ticks
    reduce_only: bool = False
    close_position: bool = False
    client_order_id: str | None = None
    stp: SelfTradePrevention = SelfTradePrevention.NONE
    ts: int = 0  # gateway receive time, ns since epoch: informative, never used by cores


class CancelOrder(Command, frozen=True, kw_only=True):
    """Cancel one open order, named by ``order_id`` or by ``client_order_id``."""

    request_id: str
    user_id: int
    symbol: str
    order_id: int | None = None
    client_order_id: str | None = None
    ts: int = 0


class CancelAll(Command, frozen=True, kw_only=True):
    """Cancel every open order (and untriggered stop) of a user on a symbol."""

    request_id: str
    user_id: int
    symbol: str
    ts: int = 0


class AmendOrder(Command, frozen=True, kw_only=True):
    """Change an open order's price and/or quantity (lots priority unless qty shrinks in place)."""

    request_id: str
    user_id: int
    symbol: str
    order_id: int
    price: int | None = None
    qty: int | None = None
    ts: int = 0


class Deposit(Command, frozen=True, kw_only=True):
    """Credit cash from outside the exchange (the dev faucet, or a custody system)."""

    request_id: str
    user_id: int
    amount: int
    ts: int = 0


class Withdraw(Command, frozen=True, kw_only=True):
    """Send cash out of the exchange, if what stays covers positions and orders."""

    request_id: str
    user_id: int
    amount: int
    ts: int = 0


class SetLeverage(Command, frozen=True, kw_only=True):
    """Set a user's leverage on a symbol (1 to the symbol's bracket maximum)."""

    request_id: str
    user_id: int
    symbol: str
    leverage: int
    ts: int = 0


class LiquidationOrder(Command, frozen=True, kw_only=True):
    """Close (part of) a position being liquidated: IOC, highest batch priority.

    ``price`` is the bankruptcy price bound: the order never fills beyond it.
    """

    request_id: str
    order_id: int
    user_id: int
    symbol: str
    side: Side
    qty: int
    price: int
    ts: int = 0


class Deleverage(Command, frozen=True, kw_only=True):
    """Close what a liquidation order left of a bankrupt position against opposite positions
    (auto-deleveraging), at ``price``, the bankruptcy price. Highest batch priority.

    The matcher walks ``counterparties`` (the position engine's ADL ranking, first closed
    first) and takes from each the smaller of what is left and its opposite position in the
    book's positions at that point, never more than ``user_id``'s own position; it answers
    with exactly one ``Deleveraged``. ``side`` is the side the bankrupt position is closed
    with (sell closes a long), as in ``LiquidationOrder``.
    """

    liquidation_id: int  # the LiquidationOrder whose remainder this closes
    user_id: int
    symbol: str
    side: Side
    qty: int
    price: int
    counterparties: tuple[int, ...]
    ts: int = 0


class MarkPriceTick(Command, frozen=True, kw_only=True):
    """The mark price moved: arms price bands and triggers mark-price stops in the matcher."""

    symbol: str
    mark_price: int
    ts: int
    index_price: int = 0  # what the mark was computed from (0: a fence repeating a tick)


class HaltSymbol(Command, frozen=True, kw_only=True):
    """Stop matching a symbol: new orders are rejected, cancels still work."""

    symbol: str
    reason: str = ""
    ts: int = 0


class ResumeSymbol(Command, frozen=True, kw_only=True):
    """Resume matching a halted symbol."""

    symbol: str
    ts: int = 0


class RejectRequest(Command, frozen=True, kw_only=True):
    """Answer a place, cancel, cancel-all or amend the wallet's pre-trade check refused.

    The wallet sends it to the symbol's book instead of answering on ``wallet.events``, so
    every order answer comes from one place, in the book's sequence (exchange-core's risk
    rejections pass through its matching stage the same way), and a gateway reads no wallet
    event for an order. The book changes nothing and emits ``OrderRejected`` with these terms.
    """

    request_id: str
    user_id: int
    symbol: str
    order_id: int | None = None
    code: int
    msg: str
    original_order_id: int | None = None  # -4015: the order holding the client order id
    ts: int = 0


OrderRequest = PlaceOrder | CancelOrder | CancelAll | AmendOrder | Deposit | Withdraw | SetLeverage
"""What ``orders.requests`` carries."""

MatcherCommand = (
    PlaceOrder
    | CancelOrder
    | CancelAll
    | AmendOrder
    | LiquidationOrder
    | Deleverage
    | MarkPriceTick
    | HaltSymbol
    | ResumeSymbol
    | RejectRequest
)
"""What ``orders.commands`` carries."""
