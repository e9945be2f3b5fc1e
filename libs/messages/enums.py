"""Vocabulary shared by commands and events. String enums, so JSON edges read well."""

from __future__ import annotations

from enum import StrEnum


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"


class OrderType(StrEnum):
    LIMIT = "limit"
    MARKET = "market"
    STOP_MARKET = "stop_market"
    STOP_LIMIT = "stop_limit"
    TAKE_PROFIT_MARKET = "take_profit_market"
    TAKE_PROFIT_LIMIT = "take_profit_limit"
    TRAILING_STOP = "trailing_stop"
    LIQUIDATION = "liquidation"


LIMIT_PRICED = frozenset((OrderType.LIMIT, OrderType.STOP_LIMIT, OrderType.TAKE_PROFIT_LIMIT))
"""Types a user's order carries a limit ``price`` for (a liquidation order has one too, but
comes from the position engine, never as a ``PlaceOrder``)."""
STOP_PRICED = frozenset(
    (
        OrderType.STOP_MARKET,
        OrderType.STOP_LIMIT,
        OrderType.TAKE_PROFIT_MARKET,
        OrderType.TAKE_PROFIT_LIMIT,
    )
)
"""Types that wait for ``stop_price`` (the trailing stop waits for its callback instead)."""
WAITS_FOR_TRIGGER = STOP_PRICED | {OrderType.TRAILING_STOP}
"""Types that wait for a trigger before they reach the book (docs/MATCHING.md)."""


class OrderStatus(StrEnum):
    """A status as the gateway's API and read model spell it: an order's, or a request's."""

    PENDING = "Pending"  # sent to the log, no engine has answered yet
    NEW = "New"
    PARTIALLY_FILLED = "PartiallyFilled"
    FILLED = "Filled"
    CANCELLED = "Cancelled"
    EXPIRED = "Expired"
    REJECTED = "Rejected"
    DONE = "Done"  # a deposit, withdrawal or leverage change that went through: not an order


class TimeInForce(StrEnum):
    GTC = "GTC"
    IOC = "IOC"
    FOK = "FOK"
    GTX = "GTX"  # post-only


class TriggerBy(StrEnum):
    LAST = "last"
    MARK = "mark"


class SelfTradePrevention(StrEnum):
    NONE = "NONE"
    EXPIRE_TAKER = "EXPIRE_TAKER"
    EXPIRE_MAKER = "EXPIRE_MAKER"
    EXPIRE_BOTH = "EXPIRE_BOTH"


class EndReason(StrEnum):
    """Why an order left the book (or never reached it) without filling completely."""

    USER = "user"  # cancelled on request
    CANCEL_ALL = "cancel_all"
    IOC = "ioc"  # immediate-or-cancel remainder
    FOK = "fok"  # fill-or-kill could not fill whole
    POST_ONLY = "post_only"  # GTX would have taken
    STP = "stp"  # self-trade prevention
    REDUCE_ONLY = "reduce_only"  # would have increased the position
    MARKET_BAND = "market_band"  # market order reached the protection band
    NO_LIQUIDITY = "no_liquidity"  # market order found an empty book
    LIQUIDATION = "liquidation"  # cancelled because the account is being liquidated
    HALT = "halt"  # symbol halted


class LedgerAccountKind(StrEnum):
    USER = "user"
    FEES = "fees"
    INSURANCE = "insurance"
    FUNDING = "funding"  # clearing account: funding passes through it; keeps the rounding
    PNL = "pnl"  # clearing account: realised PnL is paid from it; holds the open positions' side
    OUTSIDE = "outside"  # the world beyond the exchange: deposits and withdrawals
