"""Read-your-writes: what a user's next reads must wait for after a reply (pure: no I/O).

Each reply comes from one record of the log (its answer: ``BatchCompleted`` for a place, the
``OrderCancelled``, the wallet's ``AccountUpdated``, ...). The three writers of the read model
publish in Redis how far they have applied the log, with the write of what they applied: the
projector (orders, fills) its ``projector:offsets``, the position engine (positions)
``positions:applied``, the wallet (accounts) ``wallet:applied`` and, per account, the cause of
the user's last position event. After a reply, the user's reads of a writer's keys wait until
that writer has applied the answer, and, for the wallet after a fill, the ``PositionChanged``
the position engine derived from it (the position's margin and realised PnL). See
docs/READ-MODEL.md ("Read-your-writes").
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from enum import StrEnum
from typing import cast

from libs.messages import BatchCompleted, Cause, Message, OrderFilled
from libs.read_model import keys
from libs.read_model import positions as positions_model
from libs.read_model import wallet as wallet_model
from libs.topics import logical_topic, physical_topic


class Writer(StrEnum):
    """The writer of the keys a read serves, and so the watermark it waits on."""

    PROJECTOR = "projector"  # orders, fills
    POSITIONS = "positions"  # positions:{user}
    WALLET = "wallet"  # wallet:account:{user}, wallet:leverage:{user}


Needs = dict[tuple[str, str], int]
"""(Redis hash, field) -> the value the field must have reached (a next offset)."""


@dataclass(frozen=True, slots=True)
class Seen:
    """Where a reply's answer sits in the log: its record (the topic as the broker names it),
    the wallet's input that caused it (for a wallet event), and the offset of the order's last
    fill in the same matcher batch (for a place that filled)."""

    topic: str
    partition: int
    offset: int
    cause: Cause | None = None
    fill: int | None = None


class ReplyPositions:
    """Follow the reply topics record by record; say where each settled request's answer is.

    Remembers, per matcher partition, the last fill of each order in the open batch, forgotten
    at its ``BatchCompleted`` (after the replies it settles took theirs)."""

    def __init__(self) -> None:
        self._fills: dict[tuple[str, int], dict[int, int]] = {}

    def seen(
        self, topic: str, partition: int, offset: int, event: Message, order_id: int | None
    ) -> Seen:
        """Return the ``Seen`` of a reply that ``event`` (at this place) settles."""
        fills = self._fills.get((topic, partition), {})
        fill = fills.get(order_id) if order_id is not None else None
        return Seen(topic, partition, offset, getattr(event, "cause", None), fill)

    def observe(self, topic: str, partition: int, offset: int, event: Message) -> None:
        """Take one record (after the replies it settles were given their ``Seen``)."""
        kind = type(event)
        if kind is OrderFilled:
            filled = cast(OrderFilled, event)  # exactly (kind is OrderFilled)
            fills = self._fills.setdefault((topic, partition), {})
            fills[filled.taker_order_id] = offset
            fills[filled.maker_order_id] = offset
        elif kind is BatchCompleted:
            self._fills.pop((topic, partition), None)


def needs(seen: Seen, user_id: int, prefix: str) -> dict[Writer, Needs]:
    """Return, per writer, the watermark fields (and values) that cover what a reply showed.

    Every writer must have applied the answer when it reads its topic; the wallet, which does
    not read its own ``wallet.events``, the input that caused its answer instead. After a fill,
    the wallet must also have applied the user's position event caused by the order's last
    fill (its ``caused:`` field in the user's account hash)."""
    field = keys.offsets_field(seen.topic, seen.partition)
    answer = seen.offset + 1
    projector = {(keys.OFFSETS_KEY, field): answer}
    positions = {(positions_model.APPLIED_KEY, field): answer}
    if seen.cause is None:
        wallet = {(wallet_model.APPLIED_KEY, field): answer}
        if seen.fill is not None:
            caused = wallet_model.caused_field(logical_topic(seen.topic, prefix), seen.partition)
            wallet[(wallet_model.account_key(user_id), caused)] = seen.fill + 1
    else:
        input_field = keys.offsets_field(
            physical_topic(seen.cause.topic, prefix), seen.cause.partition
        )
        wallet = {(wallet_model.APPLIED_KEY, input_field): seen.cause.offset + 1}
    return {Writer.PROJECTOR: projector, Writer.POSITIONS: positions, Writer.WALLET: wallet}


class Outstanding:
    """Per user, what the replies given since the last covered read still need; bounded (the
    users with the oldest replies are forgotten first)."""

    def __init__(self, prefix: str = "", max_users: int = 100_000) -> None:
        self.prefix = prefix
        self.max_users = max_users
        self._users: OrderedDict[int, dict[Writer, Needs]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._users)

    def saw(self, user_id: int, seen: Seen) -> None:
        """Note a reply given to the user."""
        noted = self._users.pop(user_id, None) or {}
        for writer, fields in needs(seen, user_id, self.prefix).items():
            mine = noted.setdefault(writer, {})
            for place, value in fields.items():
                mine[place] = max(mine.get(place, 0), value)
        self._users[user_id] = noted
        while len(self._users) > self.max_users:
            self._users.popitem(last=False)

    def of(self, user_id: int, writer: Writer) -> Needs | None:
        """Return what the user's reads of ``writer``'s keys must wait for (None: nothing)."""
        noted = self._users.get(user_id)
        fields = noted.get(writer) if noted else None
        return dict(fields) if fields else None

    def settle(self, user_id: int, writer: Writer, done: Needs) -> None:
        """Forget ``done`` (what a read waited for, found or given up on); keep what a reply
        given meanwhile raised."""
        noted = self._users.get(user_id)
        if noted is None or writer not in noted:
            return
        fields = noted[writer]
        for place, value in done.items():
            if fields.get(place, value + 1) <= value:
                del fields[place]
        if not fields:
            del noted[writer]
            if not noted:
                del self._users[user_id]


def covered(need: Needs, values: dict[tuple[str, str], str | None]) -> bool:
    """Whether the watermark values read (None: field missing) reach ``need``."""
    return all(
        (found := values.get(place)) is not None and int(found) >= value
        for place, value in need.items()
    )
