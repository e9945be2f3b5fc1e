"""The wallet core's snapshot state (``WalletCore.to_state`` / ``from_state``) and its codec
(the convention of ``libs/state.py``)."""

from __future__ import annotations

from typing import Any

import msgspec

from libs.state import State, StateCodec

VERSION = 4
"""4: no position causes per user (``AccountUpdated.origin`` tells them); 3: no lifetime totals
(they grow without bound), and the position causes; 2 added the client ids (1 had none); both
older versions also held deposits, withdrawals, reserved and released, dropped on load."""


class HoldState(msgspec.Struct, array_like=True, frozen=True):
    order_id: int
    user_id: int
    symbol: str
    request_id: str
    price: int
    leverage: int
    remaining: int
    filled: int
    amount: int


class WalletState(State, frozen=True):
    entry_id: int
    balances: list[tuple[str, int, int]]  # (kind, owner, amount), sorted, zeros left out
    holds: list[HoldState]  # sorted by order id
    leverage: list[tuple[int, str, int]]  # (user, symbol, leverage), sorted
    positions: list[tuple[int, str, int, int]]  # (user, symbol, size, entry notional), sorted
    marks: list[tuple[str, int]]
    last_prices: list[tuple[str, int]]
    matcher_seq: list[tuple[str, int]]
    event_seq: list[tuple[int, int]]
    client_ids: list[tuple[int, str, int]] = []  # (user, client order id, order id), sorted


def _without_lifetime_totals(raw: list[Any]) -> list[Any]:
    """v1 and v2 held lifetime totals at 2:4 and 6:8: drop them (no position causes yet)."""
    return [VERSION, raw[1], *raw[4:6], *raw[8:]]


def _without_causes(raw: list[Any]) -> list[Any]:
    """v3 held the position causes per user last, at 11: drop them."""
    return [VERSION, *raw[1:11]]


WALLET_STATE = StateCodec(
    WalletState,
    VERSION,
    {1: _without_lifetime_totals, 2: _without_lifetime_totals, 3: _without_causes},
)
