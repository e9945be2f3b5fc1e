"""The matching core's snapshot state (``MatchingCore.to_state`` / ``from_state``) and its
codec (the convention of ``libs/state.py``)."""

from __future__ import annotations

import msgspec

from libs.messages import LiquidationOrder, PlaceOrder
from libs.state import State, StateCodec

VERSION = 1


class OrderState(msgspec.Struct, array_like=True, frozen=True):
    cmd: PlaceOrder | LiquidationOrder
    is_buy: bool
    price: int | None
    qty: int
    remaining: int
    filled: int
    reduce_only: bool
    activated: bool
    extreme: int | None


class MatchingState(State, frozen=True):
    symbol: str
    seq: int
    last_offset: int
    trade_id: int
    last_price: int | None
    mark_price: int | None
    halted: bool
    halt_reason: str
    book: list[OrderState]  # bids then asks, best level first, FIFO inside a level
    stops: list[OrderState]  # in placement order (the order triggers are evaluated in)
    positions: list[tuple[int, int]]  # (user, net lots), sorted, zeros left out
    client_ids: list[tuple[int, str, int]]  # (user, client order id, order id), sorted
    mark_ts: int = 0  # the ts of the mark tick applied (0: none, or a snapshot from before)


MATCHING_STATE = StateCodec(MatchingState, VERSION)
