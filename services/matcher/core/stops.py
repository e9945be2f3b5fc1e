"""Trigger conditions of stop, take-profit and trailing-stop orders."""

from __future__ import annotations

from typing import cast

from libs.messages import OrderType, PlaceOrder
from libs.money import RATE_ONE
from services.matcher.core.orders import Order

STOP = frozenset((OrderType.STOP_MARKET, OrderType.STOP_LIMIT))
TAKE_PROFIT = frozenset((OrderType.TAKE_PROFIT_MARKET, OrderType.TAKE_PROFIT_LIMIT))


def immediately_triggers(cmd: PlaceOrder, reference: int) -> bool:
    """Return True if a stop or take-profit would fire at ``reference`` the moment it is placed."""
    buy = cmd.side == "buy"
    stop = cast(int, cmd.stop_price)  # a stop-priced order without one was refused before
    if cmd.order_type in STOP:
        return reference >= stop if buy else reference <= stop
    return reference <= stop if buy else reference >= stop


def fires(order: Order, reference: int) -> bool:
    """Return True if ``order``'s trigger fires at ``reference``; track a trailing stop's extreme.

    A stop buys when the price rises to ``stop_price`` and sells when it falls to it; a
    take-profit does the opposite. A trailing stop, once the price reaches its activation
    price (or at once without one), follows the best price seen and fires when the price
    comes back by ``callback_rate`` from it.
    """
    cmd = cast(PlaceOrder, order.cmd)  # only placed orders wait for a trigger
    kind = cmd.order_type
    if kind is not OrderType.TRAILING_STOP:
        stop = cast(int, cmd.stop_price)  # stop-priced: refused at placement without one
        if kind in STOP:
            return reference >= stop if order.is_buy else reference <= stop
        return reference <= stop if order.is_buy else reference >= stop
    if not order.activated:
        # not activated at placement: it has an activation price
        activation = cast(int, cmd.activation_price)
        reached = reference <= activation if order.is_buy else reference >= activation
        if not reached:
            return False
        order.activated = True
        order.extreme = reference
        return False
    extreme = order.extreme
    if extreme is None:
        order.extreme = reference
        return False
    rate = cast(int, cmd.callback_rate)  # a trailing stop without one was refused
    if order.is_buy:
        if reference < extreme:
            order.extreme = reference
            return False
        return reference * RATE_ONE >= extreme * (RATE_ONE + rate)
    if reference > extreme:
        order.extreme = reference
        return False
    return reference * RATE_ONE <= extreme * (RATE_ONE - rate)
