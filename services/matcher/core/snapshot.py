"""Snapshot, restore and digest of a MatchingCore: canonical MessagePack of its whole state."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import msgspec

from libs.messages import LiquidationOrder, PlaceOrder
from services.matcher.core.orders import Order

if TYPE_CHECKING:
    from services.matcher.core.engine import MatchingCore

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


class CoreState(msgspec.Struct, array_like=True, frozen=True):
    version: int
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


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(CoreState)


def _order_state(o: Order) -> OrderState:
    return OrderState(
        o.cmd,
        o.is_buy,
        o.price,
        o.qty,
        o.remaining,
        o.filled,
        o.reduce_only,
        o.activated,
        o.extreme,
    )


def _order(s: OrderState) -> Order:
    order = Order.of(s.cmd, s.is_buy, s.price, s.qty, s.reduce_only)
    order.remaining = s.remaining  # s.filled == s.qty - s.remaining: filled is derived
    order.activated, order.extreme = s.activated, s.extreme
    return order


def state_of(core: MatchingCore) -> CoreState:
    return CoreState(
        version=VERSION,
        symbol=core.symbol,
        seq=core.seq,
        last_offset=core.last_offset,
        trade_id=core.trade_id,
        last_price=core.last_price,
        mark_price=core.mark_price,
        halted=core.halted,
        halt_reason=core.halt_reason,
        book=[_order_state(o) for side in (core.bids, core.asks) for o in side.orders()],
        stops=[_order_state(o) for o in core.stops.values()],
        positions=sorted((u, p) for u, p in core.positions.items() if p),
        client_ids=sorted((u, c, o) for (u, c), o in core.client_ids.items()),
    )


def dump(core: MatchingCore) -> bytes:
    """Return the core's state as canonical MessagePack bytes."""
    return _encoder.encode(state_of(core))


def digest(core: MatchingCore) -> str:
    """Return the SHA-256 of the canonical state, in hex."""
    return hashlib.sha256(dump(core)).hexdigest()


def load(core: MatchingCore, data: bytes) -> MatchingCore:
    """Fill a fresh core with the state in ``data`` and return it."""
    state = _decoder.decode(data)
    if state.version != VERSION or state.symbol != core.symbol:
        raise ValueError(f"snapshot of {state.symbol} v{state.version}, not {core.symbol}")
    core.seq, core.last_offset, core.trade_id = state.seq, state.last_offset, state.trade_id
    core.last_price = state.last_price
    if state.mark_price is not None:
        core.set_mark(state.mark_price)
    core.halted, core.halt_reason = state.halted, state.halt_reason
    for saved in state.book:
        core._rest(_order(saved))
    for saved in state.stops:
        order = _order(saved)
        core.stops[order.order_id] = order
        core._index(order)
    core.positions = dict(state.positions)
    core.client_ids = {(u, c): o for u, c, o in state.client_ids}
    return core
