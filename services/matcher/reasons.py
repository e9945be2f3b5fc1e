"""Reason codes of the matcher's rejections and expiries, modelled on Binance's error codes.

The gateway turns an ``OrderRejected`` into ``{"code": code, "msg": msg}``; an ``OrderExpired``
carries an ``EndReason`` and ``EXPIRE_CODES`` gives the code a client sees for it.
"""

from __future__ import annotations

from libs.messages import EndReason

MANDATORY_PARAM = -1102
"""A required field is missing (limit price, stop price, callback rate)."""
INVALID_PARAM = -1130
"""A field has a value the order type cannot use (callback rate out of range, amend qty)."""
INVALID_ORDER_TYPE = -1116
"""The combination of type and time in force is not supported (post-only market)."""
INVALID_SYMBOL = -1121
"""The command names another symbol than this book's."""
FILTER_LOT_SIZE = -1013
"""Quantity below the symbol's minimum."""
QTY_ABOVE_MAX = -4005
"""Quantity above the symbol's maximum."""
MIN_NOTIONAL = -4164
"""Price x quantity below the symbol's minimum notional."""
PERCENT_PRICE = -4131
"""Limit price outside the percent-price band around the mark price."""
MAX_OPEN_ORDERS = -2025
"""The user already has the symbol's maximum of open orders."""
NEW_ORDER_REJECTED = -2010
"""Generic refusal of a new order: symbol halted, order id already used."""
UNKNOWN_ORDER = -2011
"""Cancel or amend of an order that is not open (or not the user's)."""
WOULD_IMMEDIATELY_TRIGGER = -2021
"""A stop or take-profit whose trigger condition already holds."""
REDUCE_ONLY_REJECTED = -2022
"""A reduce-only or close-position order that cannot reduce the position."""
DUPLICATE_CLIENT_ORDER_ID = -4015
"""The user already used this client order id (for ever); the original order id is attached."""
NO_NEED_TO_MODIFY = -5027
"""An amend that changes nothing."""

POST_ONLY_WOULD_TAKE = -5022
FOK_NOT_FILLED = -5021
STP_EXPIRED = -5028

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
