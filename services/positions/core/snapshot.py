"""The position engine's snapshot state (``PositionsCore.to_state`` / ``from_state``) and its
codec (the convention of ``libs/state.py``). Version 1 is the layout the engine wrote as
untyped arrays before it was typed: the bytes are the same."""

from __future__ import annotations

import msgspec

from libs.state import State, StateCodec

VERSION = 1


class LiquidationState(msgspec.Struct, array_like=True, frozen=True):
    order_id: int
    user: int
    side: int
    bankruptcy: int
    qty: int
    remaining: int
    surplus: int
    fees: int
    reserve: int
    adl: int


class TopOfBookState(msgspec.Struct, array_like=True, frozen=True):
    orders: list[tuple[int, bool, int, int, int]]  # (id, is_buy, price, remaining, qty), by id
    waiting: list[tuple[int, bool, int, int]]  # untriggered limit stops: (id, is_buy, price, qty)


class MarketState(msgspec.Struct, array_like=True, frozen=True):
    symbol: str
    seq: int
    mark: int
    mark_ts: int
    last_trade: int | None
    index: int
    index_ts: int
    basis: list[int]
    pending_index: list[tuple[int, int]]  # (mark tick ts, index price), sorted
    next_funding: int
    last_rate: int
    premium_sum: int
    premium_samples: int
    liquidations: list[LiquidationState]  # by order id
    book: TopOfBookState
    sent_mark: int
    sent_ts: int


class PositionState(msgspec.Struct, array_like=True, frozen=True):
    symbol: str
    size: int
    entry: int
    fees: int


class AccountState(msgspec.Struct, array_like=True, frozen=True):
    user: int
    balance: int | None
    liquidating: int
    leverage: list[tuple[str, int]]  # sorted
    positions: list[PositionState]  # by symbol


class PositionsState(State, frozen=True):
    markets: list[MarketState]  # by symbol
    accounts: list[AccountState]  # by user
    insurance: int
    wallet_seq: list[tuple[int, int]]  # (partition, seq), sorted
    out_seq: list[tuple[int, int]]


POSITIONS_STATE = StateCodec(PositionsState, VERSION)
