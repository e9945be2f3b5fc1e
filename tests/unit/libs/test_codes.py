"""The shared vocabulary has one home: each code once (``libs.codes``), the order-type
predicates and the order statuses once (``libs.messages``), agreeing with what each service
relied on when it had its own copy."""

from libs import codes
from libs.messages import (
    LIMIT_PRICED,
    STOP_PRICED,
    WAITS_FOR_TRIGGER,
    EndReason,
    OrderStatus,
    OrderType,
)
from services.gateway import views
from services.matcher.core.stops import STOP, TAKE_PROFIT
from services.positions.core.book import LIMIT_STOPS
from services.projector.orders import BOOK_TYPES

T = OrderType


def _defined() -> dict[str, int]:
    return {
        name: value for name, value in vars(codes).items() if name.isupper() and type(value) is int
    }


def test_every_code_is_defined_once():
    by_number: dict[int, list[str]] = {}
    for name, number in _defined().items():
        by_number.setdefault(number, []).append(name)
    assert {n: names for n, names in by_number.items() if len(names) > 1} == {}


BINANCE_FACE = {-1007, -1100, -1115, -1117, -1120, -1125, -1127, -2015, -4046, -4059, -4061, -4168}
"""Codes only the Binance face (services/gateway/binance/) gives."""


def test_codes_keep_the_numbers_clients_know():
    # the numbers the matcher, the wallet and the gateway sent before they shared one home
    assert {n: v for n, v in _defined().items() if v not in BINANCE_FACE} == {
        "UNEXPECTED": -1000,
        "DISCONNECTED": -1001,
        "UNAUTHORIZED": -1002,
        "TOO_MANY_REQUESTS": -1003,
        "FILTER_LOT_SIZE": -1013,
        "STALE_TIMESTAMP": -1021,
        "BAD_SIGNATURE": -1022,
        "MANDATORY_PARAM": -1102,
        "INVALID_ORDER_TYPE": -1116,
        "INVALID_SYMBOL": -1121,
        "INVALID_PARAM": -1130,
        "PAYLOAD_TOO_LARGE": -1413,
        "NEW_ORDER_REJECTED": -2010,
        "UNKNOWN_ORDER": -2011,
        "NO_SUCH_ORDER": -2013,
        "NO_SUCH_API_KEY": -2014,
        "MARGIN_INSUFFICIENT": -2019,
        "WOULD_IMMEDIATELY_TRIGGER": -2021,
        "REDUCE_ONLY_REJECTED": -2022,
        "MAX_OPEN_ORDERS": -2025,
        "MAX_POSITION_AT_LEVERAGE": -2027,
        "FORBIDDEN": -4000,
        "PRICE_ABOVE_MAX": -4002,
        "QTY_ABOVE_MAX": -4005,
        "DUPLICATE_CLIENT_ORDER_ID": -4015,
        "INVALID_LEVERAGE": -4028,
        "BALANCE_INSUFFICIENT": -4050,
        "CONFLICT": -4090,
        "BALANCE_LIMIT": -4095,
        "PERCENT_PRICE": -4131,
        "MIN_NOTIONAL": -4164,
        "FOK_NOT_FILLED": -5021,
        "POST_ONLY_WOULD_TAKE": -5022,
        "NO_NEED_TO_MODIFY": -5027,
        "STP_EXPIRED": -5028,
    }


def test_the_binance_face_adds_binances_own_numbers():
    assert {name: number for name, number in _defined().items() if number in BINANCE_FACE} == {
        "TIMEOUT": -1007,
        "ILLEGAL_CHARS": -1100,
        "INVALID_TIF": -1115,
        "INVALID_SIDE": -1117,
        "INVALID_INTERVAL": -1120,
        "NO_SUCH_LISTEN_KEY": -1125,
        "RANGE_TOO_LONG": -1127,
        "INVALID_API_KEY": -2015,
        "NO_MARGIN_TYPE_CHANGE": -4046,
        "NO_POSITION_SIDE_CHANGE": -4059,
        "POSITION_SIDE_MISMATCH": -4061,
        "ISOLATED_REFUSED": -4168,
    }


def test_messages_and_expiries_name_defined_codes():
    defined = set(_defined().values())
    assert set(codes.MESSAGES) <= defined
    assert set(codes.EXPIRE_CODES) == set(EndReason)
    assert {c for c in codes.EXPIRE_CODES.values() if c is not None} <= defined


def test_limit_and_stop_priced_types():
    assert {T.LIMIT, T.STOP_LIMIT, T.TAKE_PROFIT_LIMIT} == LIMIT_PRICED
    assert {T.STOP_MARKET, T.STOP_LIMIT, T.TAKE_PROFIT_MARKET, T.TAKE_PROFIT_LIMIT} == STOP_PRICED
    assert STOP_PRICED | {T.TRAILING_STOP} == WAITS_FOR_TRIGGER


def test_each_service_sees_the_types_it_relied_on():
    # the wallet margins a stop at its stop price only when it has no limit to be margined at
    assert {T.STOP_MARKET, T.TAKE_PROFIT_MARKET} == STOP_PRICED - LIMIT_PRICED
    # the matcher splits the stop-priced types by the direction they fire in
    assert STOP | TAKE_PROFIT == STOP_PRICED and not STOP & TAKE_PROFIT
    # the gateway's book holds limit-priced orders, and liquidation orders inside their batch
    assert {T.LIMIT, T.STOP_LIMIT, T.TAKE_PROFIT_LIMIT, T.LIQUIDATION} == BOOK_TYPES
    # the position engine's top of book: limit stops rest once triggered
    assert {T.STOP_LIMIT, T.TAKE_PROFIT_LIMIT} == LIMIT_STOPS


def test_the_api_names_of_priced_types():
    assert {views.TYPE_NAMES[t] for t in LIMIT_PRICED} == {"Limit", "StopLimit", "TakeProfitLimit"}
    assert {views.TYPE_NAMES[t] for t in STOP_PRICED} == {
        "StopMarket",
        "StopLimit",
        "TakeProfitMarket",
        "TakeProfitLimit",
    }


def test_order_statuses_are_the_strings_the_api_and_redis_carry():
    spelled = ["Pending", "New", "PartiallyFilled", "Filled", "Cancelled", "Expired", "Rejected"]
    assert [str(s) for s in OrderStatus] == [*spelled, "Done"]
    assert all(s == str(s) and hash(s) == hash(str(s)) for s in OrderStatus)
