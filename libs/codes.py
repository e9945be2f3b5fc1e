"""Every reject and error code, once, with its meaning; modelled on Binance USDⓈ-M error codes.

A client sees a code as ``{"code": code, "msg": msg}``: the gateway's own refusals directly, the
wallet's ``OrderRequestRejected`` and the matcher's ``OrderRejected`` as the engines sent them,
and an ``OrderExpired`` through ``EXPIRE_CODES``. A number means the same thing whichever stage
gives it, so a missing limit price is ``MANDATORY_PARAM`` at the gateway, the wallet and the
matcher alike. The codes are grouped by the stage that gives them first, the way exchange-core
groups its ``CommandResultCode``: the gateway's transport and authentication, request
validation, symbol filters, pre-trade risk (the wallet), order entry, cancel and amend, and the
expiries of matching. Binance has no code for ``BALANCE_LIMIT``, ``CONFLICT`` and
``PAYLOAD_TOO_LARGE``: those numbers are ours.
"""

from __future__ import annotations

from libs.messages import EndReason

# --- the gateway: transport, authentication, rate limits (nothing reached the log) -----------

UNEXPECTED = -1000
"""A bug: the gateway answers 500."""
DISCONNECTED = -1001
"""The request did not reach the log, or Redis cannot serve: a 503, safe to retry."""
UNAUTHORIZED = -1002
"""No valid token or API key (401); a WebSocket auth that failed."""
TOO_MANY_REQUESTS = -1003
"""The caller is over its rate limit (429)."""
STALE_TIMESTAMP = -1021
"""A signed request without its ``timestamp``, or one outside the receive window."""
BAD_SIGNATURE = -1022
"""A signed request whose signature is missing, repeated or wrong."""
PAYLOAD_TOO_LARGE = -1413
"""A request body (or WebSocket message) above the size limit (413)."""
NO_SUCH_LISTEN_KEY = -1125
"""The Binance face: a user data stream's listen key that does not exist (or has expired)."""
FORBIDDEN = -4000
"""The caller may not do this: another user's id, the faucet switched off (403)."""
CONFLICT = -4090
"""The e-mail is already registered (409)."""

# --- request validation: the gateway, the wallet and the matcher ----------------------------

MANDATORY_PARAM = -1102
"""A required field is missing: a limit price, stop price or callback rate, a field of a
request body."""
INVALID_ORDER_TYPE = -1116
"""The type cannot be placed this way: a post-only market-type order, a liquidation order sent
as a request."""
INVALID_SYMBOL = -1121
"""The symbol is unknown (gateway, wallet), not this book's (matcher), or not served here
(an ops ``/digest``)."""
INVALID_PARAM = -1130
"""A field has a value that cannot be used: a non-positive quantity, price or amount, a callback
rate out of range, an amend quantity at or below the filled one, an unknown enum value."""

# --- the symbol's filters: the gateway and the matcher --------------------------------------

FILTER_LOT_SIZE = -1013
"""Quantity below the symbol's minimum."""
PRICE_ABOVE_MAX = -4002
"""A price above the symbol's maximum (the gateway's bound on notional)."""
QTY_ABOVE_MAX = -4005
"""Quantity above the symbol's maximum."""
PERCENT_PRICE = -4131
"""Limit price outside the percent-price band around the mark price."""
MIN_NOTIONAL = -4164
"""Price x quantity below the symbol's minimum notional."""

# --- pre-trade risk: the wallet -------------------------------------------------------------

MARGIN_INSUFFICIENT = -2019
"""The order's hold, or the margin a leverage change needs, exceeds the available balance."""
MAX_POSITION_AT_LEVERAGE = -2027
"""The open position exceeds the bracket of the leverage asked for."""
INVALID_LEVERAGE = -4028
"""Leverage outside 1 .. the symbol's maximum."""
BALANCE_INSUFFICIENT = -4050
"""A withdrawal above what positions and orders leave free."""
BALANCE_LIMIT = -4095
"""A deposit past the balance or exchange bound (``libs.money``)."""

# --- order entry: the wallet and the matcher ------------------------------------------------

NEW_ORDER_REJECTED = -2010
"""Generic refusal of a new order: symbol halted, order id already open, a market order with no
reference price to margin it at."""
WOULD_IMMEDIATELY_TRIGGER = -2021
"""A stop or take-profit whose trigger condition already holds."""
REDUCE_ONLY_REJECTED = -2022
"""A reduce-only or close-position order that cannot reduce the position."""
MAX_OPEN_ORDERS = -2025
"""The user already has the symbol's maximum of open orders."""
DUPLICATE_CLIENT_ORDER_ID = -4015
"""The user already used this client order id (for ever); the original order is named (the
wallet in ``original_order_id``, the matcher in the message)."""

# --- cancel, amend and reading orders back --------------------------------------------------

UNKNOWN_ORDER = -2011
"""Cancel or amend of an order that is not open (or not the user's); never a placement's."""
NO_SUCH_ORDER = -2013
"""The gateway has no such order of the caller's to show."""
NO_SUCH_API_KEY = -2014
"""The caller has no API key of that id to revoke; on the Binance face, a missing or malformed
``X-MBX-APIKEY``."""
INVALID_API_KEY = -2015
"""The Binance face: no active API key has that id."""
NO_NEED_TO_MODIFY = -5027
"""An amend that changes nothing."""

# --- expiries of matching -------------------------------------------------------------------

FOK_NOT_FILLED = -5021
"""A fill-or-kill order that could not fill whole."""
POST_ONLY_WOULD_TAKE = -5022
"""A post-only (GTX) order that would have taken."""
STP_EXPIRED = -5028
"""An order expired by self-trade prevention."""

EXPIRE_CODES: dict[EndReason, int | None] = {
    EndReason.IOC: None,
    EndReason.FOK: FOK_NOT_FILLED,
    EndReason.POST_ONLY: POST_ONLY_WOULD_TAKE,
    EndReason.STP: STP_EXPIRED,
    EndReason.REDUCE_ONLY: REDUCE_ONLY_REJECTED,
    EndReason.MARKET_BAND: PERCENT_PRICE,
    EndReason.NO_LIQUIDITY: None,
    EndReason.USER: None,
    EndReason.CANCEL_ALL: None,
    EndReason.LIQUIDATION: None,
    EndReason.HALT: None,
}
"""The code a client is shown when its order ends for ``reason`` (None: not an error)."""

# --- the Binance face only (services/gateway/binance/): codes the engines never give ---------

TIMEOUT = -1007
"""No answer from the engines within the reply timeout (the request may still execute)."""
ILLEGAL_CHARS = -1100
"""A parameter holds characters its type does not allow."""
INVALID_TIF = -1115
"""An unknown ``timeInForce``."""
INVALID_SIDE = -1117
"""An unknown ``side``."""
INVALID_INTERVAL = -1120
"""An unknown kline ``interval``."""
RANGE_TOO_LONG = -1127
"""``startTime`` and ``endTime`` further apart than the endpoint allows."""
NO_MARGIN_TYPE_CHANGE = -4046
"""The margin type asked for is the one in force (cross: the only one here)."""
NO_POSITION_SIDE_CHANGE = -4059
"""The position mode asked for is the one in force (one-way: the only one here)."""
POSITION_SIDE_MISMATCH = -4061
"""A ``positionSide`` other than ``BOTH``: hedge mode does not exist here."""
ISOLATED_REFUSED = -4168
"""Isolated margin does not exist here."""

MESSAGES = {
    UNEXPECTED: "An unexpected error occurred.",
    DISCONNECTED: "Internal error; unable to process your request. Please try again.",
    INVALID_SYMBOL: "Invalid symbol.",
    MANDATORY_PARAM: "Mandatory parameter 'price' was not sent, was empty/null, or malformed.",
    INVALID_ORDER_TYPE: "Invalid orderType.",
    INVALID_PARAM: "A parameter was not valid.",
    NEW_ORDER_REJECTED: "New order rejected.",
    MARGIN_INSUFFICIENT: "Margin is insufficient.",
    INVALID_LEVERAGE: "Leverage is not valid.",
    MAX_POSITION_AT_LEVERAGE: "Exceeded the maximum allowable position at current leverage.",
    BALANCE_INSUFFICIENT: "Balance is insufficient.",
    BALANCE_LIMIT: "Deposit refused: it would pass a balance limit.",
}
"""The text sent with a code when the refusal has nothing more particular to say. The one for
``MANDATORY_PARAM`` names the price: the wallet sends it bare only for a missing limit price."""
