"""Read-your-writes: where a reply's answer is in the log, what it needs of each writer, and a
read that waits (bounded) for the watermarks, on a fake Redis."""

from __future__ import annotations

import asyncio

from hypothesis import given
from hypothesis import strategies as st

from libs.messages import AccountUpdated, Cause, OrderFilled
from libs.read_model import keys
from libs.read_model.positions import APPLIED_KEY as POSITIONS_APPLIED
from libs.read_model.wallet import APPLIED_KEY as WALLET_APPLIED
from libs.read_model.wallet import account_key
from services.gateway.freshness import Outstanding, ReplyPositions, Seen, Writer, needs
from services.gateway.reads import ReadModel
from services.gateway.replies import Kind, ReplyTracker
from services.matcher.core import MatchingCore
from tests.unit.matcher.kit import BUY, MID, SELL, SPEC, cancel, place

PREFIX = "p."
MATCHER = f"{PREFIX}matcher.events"
WALLET = f"{PREFIX}wallet.events"


class Listener:
    """What the gateway's reply listener does with each record of ``matcher.events``:
    settle requests, and say where each answer is."""

    def __init__(self) -> None:
        self.core = MatchingCore(SPEC)
        self.tracker = ReplyTracker()
        self.positions = ReplyPositions()
        self.offset = 0  # of the next matcher event
        self.commands = 0  # of the next command
        self.seen: dict[str, Seen | None] = {}

    def run(self, *commands, asked: Kind | None = None) -> list:
        batch = []
        for command in commands:
            if asked is not None:
                self.tracker.expect(command.request_id, asked)
            batch.append((self.commands, command))
            self.commands += 1
        events = self.core.process_batch(batch)
        for event in events:
            for request_id, outcome in self.tracker.apply(event):
                self.seen[request_id] = self.positions.seen(
                    MATCHER, 0, self.offset, event, outcome.order_id
                )
            self.positions.observe(MATCHER, 0, self.offset, event)
            self.offset += 1
        return events


def test_a_filled_place_is_answered_at_its_batch_end_and_names_its_last_fill():
    ex = Listener()
    ex.run(place(1, 10, SELL, MID, 2), place(2, 10, SELL, MID + 1, 2))
    start = ex.offset
    events = ex.run(place(3, 11, BUY, MID + 1, 4), asked=Kind.PLACE)
    fills = [start + i for i, e in enumerate(events) if isinstance(e, OrderFilled)]
    assert len(fills) == 2
    assert ex.seen["r3"] == Seen(MATCHER, 0, ex.offset - 1, None, fills[-1])


def test_a_resting_place_and_a_cancel_name_no_fill():
    ex = Listener()
    ex.run(place(1, 10, SELL, MID, 2), asked=Kind.PLACE)
    assert ex.seen["r1"] == Seen(MATCHER, 0, ex.offset - 1)
    ex.run(cancel(1, 10), asked=Kind.CANCEL)
    assert ex.seen["c1"].fill is None and ex.seen["c1"].offset < ex.offset


def test_fills_of_an_earlier_batch_are_forgotten_at_its_end():
    ex = Listener()
    ex.run(place(1, 10, SELL, MID, 2))
    ex.run(place(2, 11, BUY, MID, 2))
    ex.run(place(3, 10, SELL, MID, 2), asked=Kind.PLACE)
    assert ex.seen["r3"].fill is None


def test_after_a_fill_each_writer_must_have_applied_the_answer_and_the_wallet_its_position():
    seen = Seen(MATCHER, 2, 40, None, 38)
    need = needs(seen, 7, PREFIX)
    field = keys.offsets_field(MATCHER, 2)
    assert need == {
        Writer.PROJECTOR: {(keys.OFFSETS_KEY, field): 41},
        Writer.POSITIONS: {(POSITIONS_APPLIED, field): 41},
        Writer.WALLET: {
            (WALLET_APPLIED, field): 41,
            (account_key(7), "caused:matcher.events:2"): 39,  # the logical name, as in causes
        },
    }


def test_after_a_wallet_answer_the_wallet_must_have_applied_the_request_that_caused_it():
    request = Cause("orders.requests", 3, 12)
    event = AccountUpdated(seq=5, cause=request, user_id=7, balance=1, holds=0, available=1)
    seen = ReplyPositions().seen(WALLET, 7, 90, event, None)
    assert seen == Seen(WALLET, 7, 90, request)
    need = needs(seen, 7, PREFIX)
    assert need[Writer.WALLET] == {(WALLET_APPLIED, f"{PREFIX}orders.requests:3"): 13}
    assert need[Writer.PROJECTOR] == {(keys.OFFSETS_KEY, f"{WALLET}:7"): 91}
    assert need[Writer.POSITIONS] == {(POSITIONS_APPLIED, f"{WALLET}:7"): 91}


def test_replies_merge_to_the_furthest_and_a_read_forgets_only_what_it_covered():
    outstanding = Outstanding(PREFIX)
    outstanding.saw(7, Seen(MATCHER, 0, 10))
    outstanding.saw(7, Seen(MATCHER, 0, 5))
    outstanding.saw(7, Seen(MATCHER, 1, 3))
    field = (keys.OFFSETS_KEY, keys.offsets_field(MATCHER, 0))
    other = (keys.OFFSETS_KEY, keys.offsets_field(MATCHER, 1))
    assert outstanding.of(7, Writer.PROJECTOR) == {field: 11, other: 4}
    assert outstanding.of(8, Writer.PROJECTOR) is None
    waited_for = outstanding.of(7, Writer.PROJECTOR)
    outstanding.saw(7, Seen(MATCHER, 0, 20))  # a reply while the read waited
    outstanding.settle(7, Writer.PROJECTOR, waited_for)
    assert outstanding.of(7, Writer.PROJECTOR) == {field: 21}
    outstanding.settle(7, Writer.PROJECTOR, {field: 21})
    assert outstanding.of(7, Writer.PROJECTOR) is None
    assert outstanding.of(7, Writer.WALLET) is not None  # each writer on its own


def test_the_users_with_the_oldest_replies_are_forgotten_first():
    outstanding = Outstanding(PREFIX, max_users=2)
    for user in (1, 2, 1, 3):
        outstanding.saw(user, Seen(MATCHER, 0, user))
    assert len(outstanding) == 2
    assert outstanding.of(2, Writer.PROJECTOR) is None
    assert outstanding.of(1, Writer.PROJECTOR) and outstanding.of(3, Writer.PROJECTOR)


@given(
    st.lists(
        st.tuples(st.booleans(), st.integers(0, 2), st.integers(0, 50)),
        max_size=40,
    )
)
def test_a_need_is_forgotten_only_once_a_read_reached_it(steps):
    outstanding = Outstanding(PREFIX)
    model: dict[tuple[str, str], int] = {}  # the furthest noted per field, until covered
    for is_reply, partition, offset in steps:
        field = (keys.OFFSETS_KEY, keys.offsets_field(MATCHER, partition))
        if is_reply:
            outstanding.saw(1, Seen(MATCHER, partition, offset))
            model[field] = max(model.get(field, 0), offset + 1)
        else:
            outstanding.settle(1, Writer.PROJECTOR, {field: offset})
            if model.get(field, offset + 1) <= offset:
                del model[field]
        assert (outstanding.of(1, Writer.PROJECTOR) or {}) == model


class FakeRedis:
    """The watermark hashes, and how many round trips the reads made."""

    def __init__(self) -> None:
        self.hashes: dict[str, dict[str, str]] = {}
        self.round_trips = 0
        self.on_round_trip = lambda n: None

    def pipeline(self, transaction: bool = False) -> FakePipeline:
        return FakePipeline(self)

    async def hgetall(self, key: str) -> dict[str, str]:
        self.round_trips += 1
        return dict(self.hashes.get(key, {}))

    async def lrange(self, key: str, start: int, stop: int) -> list[str]:
        self.round_trips += 1
        return []


class FakePipeline:
    def __init__(self, redis: FakeRedis) -> None:
        self.redis, self.calls = redis, []

    async def __aenter__(self) -> FakePipeline:
        return self

    async def __aexit__(self, *exc) -> None:
        return None

    def hmget(self, key: str, fields: list[str]) -> None:
        self.calls.append((key, fields))

    def hgetall(self, key: str) -> None:
        self.calls.append((key, None))

    async def execute(self) -> list:
        self.redis.round_trips += 1
        self.redis.on_round_trip(self.redis.round_trips)
        hashes = self.redis.hashes
        return [
            dict(hashes.get(k, {})) if fs is None else [hashes.get(k, {}).get(f) for f in fs]
            for k, fs in self.calls
        ]


def test_a_read_with_no_reply_outstanding_costs_no_extra_round_trip():
    redis = FakeRedis()
    reads = ReadModel(redis)  # type: ignore[arg-type]
    asyncio.run(reads.positions(7))
    assert redis.round_trips == 1


def test_a_read_after_a_reply_waits_until_the_writer_applied_the_answer():
    redis = FakeRedis()
    reads = ReadModel(redis, Outstanding(PREFIX))  # type: ignore[arg-type]
    reads.saw(7, Seen(MATCHER, 0, 40))
    field = keys.offsets_field(MATCHER, 0)
    redis.hashes[POSITIONS_APPLIED] = {field: "12"}

    def projector_catches_up(n: int) -> None:
        if n == 3:  # the third watermark read finds it applied
            redis.hashes[POSITIONS_APPLIED][field] = "41"

    redis.on_round_trip = projector_catches_up
    asyncio.run(reads.positions(7))
    assert redis.round_trips == 3 + 1  # three watermark reads, then the read itself
    asyncio.run(reads.positions(7))  # covered: the next read goes straight to the data
    assert redis.round_trips == 5
    assert reads.outstanding.of(7, Writer.POSITIONS) is None


def test_a_read_gives_up_waiting_after_the_bound_and_shows_what_there_is():
    redis = FakeRedis()
    reads = ReadModel(redis, Outstanding(PREFIX), wait_seconds=0.05)  # type: ignore[arg-type]
    reads.saw(7, Seen(MATCHER, 0, 40))

    async def timed() -> float:
        loop = asyncio.get_running_loop()
        started = loop.time()
        await reads.fills(7, 10)
        return loop.time() - started

    assert 0.05 <= asyncio.run(timed()) < 1
    assert reads.outstanding.of(7, Writer.PROJECTOR) is None  # the next read does not wait
    assert reads.outstanding.of(7, Writer.WALLET) is not None


def test_a_read_of_one_writer_waits_only_for_that_writer():
    redis = FakeRedis()
    reads = ReadModel(redis, Outstanding(PREFIX), wait_seconds=5)  # type: ignore[arg-type]
    reads.saw(7, Seen(MATCHER, 0, 40, None, 39))
    field = keys.offsets_field(MATCHER, 0)
    redis.hashes[keys.OFFSETS_KEY] = {field: "41"}  # the projector is there, the wallet not
    asyncio.run(reads.order(5, 7))
    assert redis.round_trips == 2
    redis.hashes[WALLET_APPLIED] = {field: "41"}
    redis.hashes[account_key(7)] = {"caused:matcher.events:0": "40"}
    asyncio.run(reads.account(7))
    assert reads.outstanding.of(7, Writer.WALLET) is None
