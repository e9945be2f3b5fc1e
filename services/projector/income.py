"""Each user's income history (Binance's ``GET /fapi/v1/income``) and realised PnL per trade.

A position event says what a user earned or paid but not when: its time is the one its cause
(a ``matcher.events`` record) was stamped with, the time of that record's batch. So the
projection remembers (``remember``) the time of each matcher record that can cause an income
row (a fill, a deleverage, the end of a liquidation order), keyed by partition and offset, the
newest ``keys.RECORD_TIMES_KEPT`` of them, written to ``projector:record_times`` so a restart
keeps them. A position event whose cause is no longer remembered (it lagged its fill by more
than that) takes the time of its symbol's last trades instead.

Each row's ``tranId`` is a hash of what identifies it (type, user, symbol, trade, funding time
or cause): the same for the same event however often it is applied, and the row's JSON is the
same too, so a replay adds nothing to the sorted set.
"""

from __future__ import annotations

import hashlib

import orjson

from libs.messages import Cause, FundingPaid, LiquidationSettled, PositionChanged
from libs.read_model import keys
from libs.redis_batch import Command, flat

TRAN_ID_BITS = 52
"""A ``tranId`` fits in a JSON number any client reads exactly (JavaScript's 2**53)."""


def tran_id(*parts: object) -> int:
    """Return the row id of the row ``parts`` identify (unique in practice, deterministic)."""
    text = ":".join(str(part) for part in parts).encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "big") >> (64 - TRAN_ID_BITS)


class Income:
    """The income rows and realised PnL one flush adds, and the remembered record times."""

    def __init__(self, times: dict[tuple[int, int], int] | None = None) -> None:
        self.times: dict[tuple[int, int], int] = dict(sorted((times or {}).items()))
        """(matcher partition, offset) -> the record's time (ms), oldest first."""
        self._added: dict[tuple[int, int], int] = {}
        self._dropped: set[tuple[int, int]] = set()
        self._rows: dict[int, list[tuple[int, bytes]]] = {}  # user -> (time, member)
        self._pnl: dict[int, list[tuple[int, bytes]]] = {}  # user -> (time, member)

    # --- the times of matcher records -------------------------------------------------------

    def remember(self, partition: int, offset: int, at_ms: int) -> None:
        """Keep the time of a matcher record that may cause an income row."""
        key = (partition, offset)
        self.times[key] = at_ms
        self._added[key] = at_ms
        self._dropped.discard(key)
        while len(self.times) > keys.RECORD_TIMES_KEPT:
            oldest = next(iter(self.times))
            del self.times[oldest]
            self._added.pop(oldest, None)
            self._dropped.add(oldest)

    def time_of(self, cause: Cause, otherwise: int) -> int:
        """Return the time (ms) of the matcher record ``cause``, else ``otherwise``."""
        return self.times.get((cause.partition, cause.offset), otherwise)

    # --- the rows ---------------------------------------------------------------------------

    def position(self, event: PositionChanged, at_ms: int) -> None:
        """A fill's realised PnL (when not 0) and its commission (when not 0)."""
        user, symbol, trade = event.user_id, event.symbol, event.trade_id
        if event.realised_pnl:
            self._row(user, symbol, "REALIZED_PNL", event.realised_pnl, at_ms, trade)
            member = orjson.dumps([symbol, trade, event.realised_pnl])
            self._pnl.setdefault(user, []).append((at_ms, member))
        if event.fee:
            self._row(user, symbol, "COMMISSION", -event.fee, at_ms, trade)

    def funding(self, event: FundingPaid) -> None:
        if event.amount:
            at_ms = event.funding_time // 1_000_000
            ref = event.funding_time
            self._row(event.user_id, event.symbol, "FUNDING_FEE", event.amount, at_ms, None, ref)

    def liquidation(self, event: LiquidationSettled, at_ms: int) -> None:
        """The user's side of the insurance fund's delta: what the liquidation cleared."""
        if event.insurance_delta:
            cause = event.cause
            ref = f"{cause.topic}:{cause.partition}:{cause.offset}"
            user, symbol = event.user_id, event.symbol
            self._row(user, symbol, "INSURANCE_CLEAR", -event.insurance_delta, at_ms, None, ref)

    def _row(
        self,
        user: int,
        symbol: str,
        kind: str,
        amount: int,
        at_ms: int,
        trade: int | None,
        ref: object = None,
    ) -> None:
        row = {
            "symbol": symbol,
            "incomeType": kind,
            "income": amount,
            "time": at_ms,
            "tranId": tran_id(kind, user, symbol, trade if ref is None else ref),
            "tradeId": "" if trade is None else str(trade),
        }
        self._rows.setdefault(user, []).append((at_ms, orjson.dumps(row)))

    def commands(self) -> list[Command]:
        """Return the writes of the rows and times added since the last call."""
        out: list[Command] = []
        for rows, key_of, kept in (
            (self._rows, keys.income_key, keys.INCOME_KEPT),
            (self._pnl, keys.realised_pnl_key, keys.FILLS_KEPT),
        ):
            for user, scored in rows.items():
                key = key_of(user)
                out.append(("ZADD", key, *[x for at, member in scored for x in (at, member)]))
                out.append(("ZREMRANGEBYRANK", key, 0, -(kept + 1)))
        if self._dropped:
            out.append(("HDEL", keys.RECORD_TIMES_KEY, *sorted(map(_field, self._dropped))))
        if self._added:
            added = {_field(key): at for key, at in self._added.items()}
            out.append(("HSET", keys.RECORD_TIMES_KEY, *flat(added)))
        self._added, self._dropped, self._rows, self._pnl = {}, set(), {}, {}
        return out


def _field(key: tuple[int, int]) -> str:
    return keys.record_time_field(*key)
