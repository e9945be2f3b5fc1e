"""Read-your-writes: what a user's next reads must wait for after a reply (pure: no I/O).

Each reply comes from one record of the log (its answer: ``BatchCompleted`` for a place, the
``OrderCancelled``, the wallet's ``AccountUpdated``, ...). The projector, the read model's one
writer, publishes with each write how far it covers the log: ``projector:offsets`` (what the
orders and fills cover) and, in each user's ``account:{user}``, how far the account covers
the wallet's answers to the user's book records (``told:``), the fills it settled
(``settled:``) and the fills whose position change ``positions:{user}`` shows
(``position:``). After a reply, the user's reads of each kind wait until those reach what the
reply showed. See docs/READ-MODEL.md ("Read-your-writes").
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from enum import StrEnum
from typing import cast

from libs.messages import (
    BatchCompleted,
    Cause,
    MatcherEvent,
    Message,
    OrderAccepted,
    OrderAmended,
    OrderCancelled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderRequestRejected,
    account_users,
)
from libs.read_model import keys
from libs.topics import logical_topic


class Read(StrEnum):
    """What a read serves, and so the watermarks it waits on."""

    ORDERS = "orders"  # orders, fills
    ACCOUNT = "account"  # account:{user}, leverage:{user}
    POSITIONS = "positions"  # positions:{user}


Needs = dict[tuple[str, str], int]
"""(Redis hash, field) -> the value the field must have reached (a next offset)."""


@dataclass(frozen=True, slots=True)
class Seen:
    """Where a reply's answer sits in the log: its record (the topic as the broker names it);
    for a wallet event, the wallet's input that caused it, and whether it is a refusal
    (``OrderRequestRejected``: nothing changed, no account told); for a matcher event, the
    offset of the last record of its batch (up to the answer) that the wallet tells the
    replying user's account about (``account_users``), and, for a place that filled, the offset
    of the order's last fill in the batch."""

    topic: str
    partition: int
    offset: int
    cause: Cause | None = None
    fill: int | None = None
    told: int | None = None
    refused: bool = False


_TELLS_ONE = frozenset((OrderAccepted, OrderCancelled, OrderExpired, OrderAmended, OrderRejected))
"""The kinds ``account_users`` names the user of (but a ``pre_trade`` ``OrderRejected``); its
other kind, ``OrderFilled``, names both users. Spelled out here so that following a record
allocates nothing (tests/unit/gateway/test_freshness.py checks the two agree)."""
_TellsOne = OrderAccepted | OrderCancelled | OrderExpired | OrderAmended | OrderRejected


class _OpenBatch:
    """What a matcher partition's open batch said so far."""

    __slots__ = ("fills", "told")

    def __init__(self) -> None:
        self.fills: dict[int, int] = {}  # order id -> offset of its last fill
        self.told: dict[int, int] = {}  # user id -> offset of the last record told to them


class ReplyPositions:
    """Follow the reply topics record by record; say where each settled request's answer is.

    Remembers, per matcher partition, for the open batch, the last fill of each order and the
    last record the wallet tells each user about, forgotten at its ``BatchCompleted`` (after
    the replies it settles took theirs)."""

    def __init__(self) -> None:
        # topic -> partition -> its open batch (no tuple key to build per record)
        self._open: dict[str, dict[int, _OpenBatch]] = {}

    def seen(
        self,
        topic: str,
        partition: int,
        offset: int,
        event: Message,
        order_id: int | None,
        user_id: int,
    ) -> Seen:
        """Return the ``Seen`` of a reply to ``user_id`` that ``event`` (at this place)
        settles, before ``observe`` took it."""
        batch = self._find(topic, partition)
        fill = told = None
        if batch is not None:
            fill = batch.fills.get(order_id) if order_id is not None else None
            told = batch.told.get(user_id)
        if isinstance(event, MatcherEvent) and user_id in account_users(event):
            told = offset  # the answer itself
        cause = getattr(event, "cause", None)
        refused = type(event) is OrderRequestRejected
        return Seen(topic, partition, offset, cause, fill, told, refused)

    def observe(self, topic: str, partition: int, offset: int, event: Message) -> None:
        """Take one record (after the replies it settles were given their ``Seen``)."""
        kind = type(event)
        if kind is OrderFilled:
            filled = cast(OrderFilled, event)  # exactly (kind is OrderFilled)
            open_ = self._batch(topic, partition)
            open_.fills[filled.taker_order_id] = offset
            open_.fills[filled.maker_order_id] = offset
            open_.told[filled.taker_user_id] = offset
            open_.told[filled.maker_user_id] = offset
        elif kind in _TELLS_ONE:
            answer: _TellsOne = event  # type: ignore[assignment]  # one of those kinds
            if kind is not OrderRejected or not answer.pre_trade:  # type: ignore[union-attr]
                self._batch(topic, partition).told[answer.user_id] = offset
        elif kind is BatchCompleted:
            ended = self._find(topic, partition)
            if ended is not None:
                ended.fills.clear()
                ended.told.clear()

    def _find(self, topic: str, partition: int) -> _OpenBatch | None:
        partitions = self._open.get(topic)
        return partitions.get(partition) if partitions is not None else None

    def _batch(self, topic: str, partition: int) -> _OpenBatch:
        partitions = self._open.get(topic)
        if partitions is None:
            partitions = self._open[topic] = {}
        batch = partitions.get(partition)
        if batch is None:
            batch = partitions[partition] = _OpenBatch()
        return batch


def needs(seen: Seen, user_id: int, prefix: str) -> dict[Read, Needs]:
    """Return, per kind of read, the watermark fields (and values) that cover what a reply to
    ``user_id`` showed (a kind with nothing to wait for is left out).

    - orders: the projector's offsets past the answer;
    - account, after a wallet answer (it has a ``cause``): the offsets past it (the leverage
      it set), and, unless a refusal (which told no account), the account told of its cause;
    - account, after a book answer: the account told of the last record of the answer's batch
      told to the user (``seen.told``), and after a fill, settled past the order's last fill
      (the ``PositionChanged`` the position engine derived from it: margin, realised PnL);
    - positions, after a fill: the positions past the order's last fill, and the account
      settled past it too (the view's liquidation price and margin ratio use the balance)."""
    answer = seen.offset + 1
    applied = (keys.OFFSETS_KEY, keys.offsets_field(seen.topic, seen.partition))
    out: dict[Read, Needs] = {Read.ORDERS: {applied: answer}}
    account = keys.account_key(user_id)
    if seen.cause is not None:
        told = keys.told_field(seen.cause.topic, seen.cause.partition)  # already logical
        out[Read.ACCOUNT] = (
            {applied: answer}
            if seen.refused
            else {applied: answer, (account, told): seen.cause.offset + 1}
        )
        return out
    topic = logical_topic(seen.topic, prefix)
    fields: Needs = {}
    if seen.told is not None:
        fields[(account, keys.told_field(topic, seen.partition))] = seen.told + 1
    if seen.fill is not None:
        settled = (account, keys.settled_field(topic, seen.partition))
        fields[settled] = seen.fill + 1
        position = (account, keys.position_field(topic, seen.partition))
        out[Read.POSITIONS] = {position: seen.fill + 1, settled: seen.fill + 1}
    if fields:
        out[Read.ACCOUNT] = fields
    return out


class Outstanding:
    """Per user, what the replies given since the last covered read still need; bounded (the
    users with the oldest replies are forgotten first)."""

    def __init__(self, prefix: str = "", max_users: int = 100_000) -> None:
        self.prefix = prefix
        self.max_users = max_users
        self._users: OrderedDict[int, dict[Read, Needs]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._users)

    def saw(self, user_id: int, seen: Seen) -> None:
        """Note a reply given to the user."""
        noted = self._users.pop(user_id, None) or {}
        for read, fields in needs(seen, user_id, self.prefix).items():
            mine = noted.setdefault(read, {})
            for place, value in fields.items():
                mine[place] = max(mine.get(place, 0), value)
        self._users[user_id] = noted
        while len(self._users) > self.max_users:
            self._users.popitem(last=False)

    def of(self, user_id: int, read: Read) -> Needs | None:
        """Return what the user's reads of this kind must wait for (None: nothing)."""
        noted = self._users.get(user_id)
        fields = noted.get(read) if noted else None
        return dict(fields) if fields else None

    def settle(self, user_id: int, read: Read, done: Needs) -> None:
        """Forget ``done`` (what a read waited for, found or given up on); keep what a reply
        given meanwhile raised."""
        noted = self._users.get(user_id)
        if noted is None or read not in noted:
            return
        fields = noted[read]
        for place, value in done.items():
            if fields.get(place, value + 1) <= value:
                del fields[place]
        if not fields:
            del noted[read]
            if not noted:
                del self._users[user_id]


def covered(need: Needs, values: dict[tuple[str, str], str | None]) -> bool:
    """Whether the watermark values read (None: field missing) reach ``need``."""
    return all(
        (found := values.get(place)) is not None and int(found) >= value
        for place, value in need.items()
    )
