"""The accounts, positions and markets as the engines' events tell them, gathered per flush.

Each event replaces what it tells: the wallet's ``AccountUpdated`` a user's account picture
and ``LeverageSet`` a leverage; the position engine's ``PositionChanged`` a position's facts,
``MarkPriceUpdated`` a mark and ``FundingRateSet`` a rate. A flush writes the last value of
each field touched since the previous one. With the account go the read-your-writes
watermarks (``libs/read_model/keys.py``): the offset after each cause the events name, per
``topic:partition``. Events of one input partition come in its order, so each watermark only
grows. Nothing here is kept between flushes: Redis holds it, and the events rebuild it.
"""

from __future__ import annotations

from libs.messages import (
    AccountUpdated,
    FundingRateSet,
    LeverageSet,
    MarkPriceUpdated,
    PositionChanged,
)
from libs.read_model import keys
from libs.read_model.positions import PositionFacts
from libs.redis_batch import Command, flat


class Pictures:
    """What one flush writes of accounts, leverage, positions, marks and funding."""

    def __init__(self) -> None:
        self._hashes: dict[str, dict[str, int | str]] = {}  # key -> field -> value
        self._closed: dict[str, set[str]] = {}  # positions key -> symbols closed

    def _set(self, key: str, **fields: int | str) -> dict[str, int | str]:
        mine = self._hashes.setdefault(key, {})
        mine.update(fields)
        return mine

    def account(self, event: AccountUpdated) -> None:
        fields = self._set(
            keys.account_key(event.user_id),
            balance=event.balance,
            holds=event.holds,
            available=event.available,
            margin=event.margin,
            upnl=event.upnl,
        )
        cause, origin = event.cause, event.origin
        fields[keys.told_field(cause.topic, cause.partition)] = cause.offset + 1
        if origin is not None:
            fields[keys.settled_field(origin.topic, origin.partition)] = origin.offset + 1

    def leverage(self, event: LeverageSet) -> None:
        self._set(keys.leverage_key(event.user_id), **{event.symbol: event.leverage})

    def position(self, event: PositionChanged) -> None:
        key = keys.positions_key(event.user_id)
        closed = self._closed.setdefault(key, set())
        if event.size:
            facts = PositionFacts(event.size, event.entry_notional, event.fees)
            self._set(key, **{event.symbol: facts.to_json()})
            closed.discard(event.symbol)
        else:
            self._hashes.get(key, {}).pop(event.symbol, None)
            closed.add(event.symbol)
        cause = event.cause
        watermark = {keys.position_field(cause.topic, cause.partition): cause.offset + 1}
        self._set(keys.account_key(event.user_id), **watermark)

    def mark(self, event: MarkPriceUpdated) -> None:
        self._set(
            keys.mark_key(event.symbol),
            mark=event.mark_price,
            index=event.index_price,
            ts=event.ts,
            open_interest=event.open_interest,
        )
        if event.next_funding_time:
            self._set(keys.funding_key(event.symbol), next_funding_time=event.next_funding_time)

    def funding(self, event: FundingRateSet) -> None:
        self._set(keys.funding_key(event.symbol), rate=event.rate)

    def commands(self) -> list[Command]:
        """Return the writes, hash by hash in the order first touched; closed positions go."""
        out: list[Command] = []
        for key, symbols in self._closed.items():
            if symbols:
                out.append(("HDEL", key, *sorted(symbols)))
        for key, fields in self._hashes.items():
            if fields:
                out.append(("HSET", key, *flat(fields)))
        return out
