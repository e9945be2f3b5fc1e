"""Snapshot, restore and digest of a WalletCore: canonical MessagePack of its whole state."""

from __future__ import annotations

import hashlib

import msgspec

from libs.messages import LedgerAccountKind
from services.wallet.core.engine import WalletCore
from services.wallet.core.holds import Hold

VERSION = 3
"""3: no lifetime totals (they grow without bound), and the position causes per user; 2 added
the client ids (1 had none); both
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


class WalletState(msgspec.Struct, array_like=True, frozen=True):
    version: int
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
    caused: list[tuple[int, str, int, int]] = []  # (user, topic, partition, offset), sorted


_encoder = msgspec.msgpack.Encoder()


def state_of(core: WalletCore) -> WalletState:
    ledger, holds = core.ledger, core.holds
    return WalletState(
        version=VERSION,
        entry_id=ledger.entry_id,
        balances=sorted((str(k), o, v) for (k, o), v in ledger.balances.items() if v),
        holds=[
            HoldState(
                h.order_id,
                h.user_id,
                h.symbol,
                h.request_id,
                h.price,
                h.leverage,
                h.remaining,
                h.filled,
                h.amount,
            )
            for _, h in sorted(holds.by_order.items())
        ],
        leverage=sorted((u, s, v) for u, m in core.leverage.items() for s, v in m.items()),
        positions=sorted(
            (u, s, size, entry) for u, m in core.positions.items() for s, (size, entry) in m.items()
        ),
        marks=sorted(core.marks.items()),
        last_prices=sorted(core.last_prices.items()),
        matcher_seq=sorted(core.matcher_seq.items()),
        event_seq=sorted(core.event_seq.items()),
        client_ids=sorted((u, c, o) for (u, c), o in core.client_ids.items()),
        caused=sorted((u, t, p, o) for u, m in core.caused.items() for (t, p), o in m.items()),
    )


def dump(core: WalletCore) -> bytes:
    """Return the whole core state as canonical bytes (equal histories give equal bytes)."""
    return _encoder.encode(state_of(core))


def load(data: bytes, core: WalletCore | None = None) -> WalletCore:
    """Return a core holding the state ``dump`` captured."""
    raw = msgspec.msgpack.decode(data)
    if raw and raw[0] in (1, 2):  # the lifetime totals were at 2:4 and 6:8: drop them
        raw = [VERSION, raw[1], *raw[4:6], *raw[8:]]
    s = msgspec.convert(raw, WalletState)
    if s.version != VERSION:
        raise ValueError(f"wallet snapshot version {s.version}, expected {VERSION}")
    core = core if core is not None else WalletCore()
    ledger, holds = core.ledger, core.holds
    ledger.entry_id = s.entry_id
    ledger.balances = {(LedgerAccountKind(k), o): v for k, o, v in s.balances}
    for h in s.holds:
        holds.by_order[h.order_id] = Hold(*msgspec.structs.astuple(h))
        holds.by_user[h.user_id] = holds.by_user.get(h.user_id, 0) + h.amount
    holds.by_user = {u: v for u, v in holds.by_user.items() if v}
    for u, sym, lev in s.leverage:
        core.leverage.setdefault(u, {})[sym] = lev
    for u, sym, size, entry in s.positions:
        core.positions.setdefault(u, {})[sym] = (size, entry)
    core.marks = dict(s.marks)
    core.last_prices = dict(s.last_prices)
    core.matcher_seq = dict(s.matcher_seq)
    core.event_seq = dict(s.event_seq)
    core.client_ids = {(u, c): o for u, c, o in s.client_ids}
    for u, topic, partition, offset in s.caused:
        core.caused.setdefault(u, {})[(topic, partition)] = offset
    return core


def digest(core: WalletCore) -> str:
    """Return the SHA-256 of the canonical state."""
    return hashlib.sha256(dump(core)).hexdigest()
