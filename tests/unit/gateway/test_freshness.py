"""Read-your-writes: where a reply's answer is in the log, what it needs of each kind of read,
and a read that waits (bounded) for the watermarks, on a fake Redis."""

from __future__ import annotations

import asyncio

from hypothesis import given
from hypothesis import strategies as st

from libs.messages import (
    AccountUpdated,
    BatchCompleted,
    Cause,
    Deleveraged,
    DeleverageMatch,
    EndReason,
    LeverageSet,
    MarkPriceSet,
    MatcherEvent,
    OrderAccepted,
    OrderAmended,
    OrderCancelled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderRequestRejected,
    OrderTriggered,
    OrderType,
    RejectRequest,
    Side,
    SymbolHalted,
    SymbolResumed,
    TimeInForce,
    account_users,
)
from libs.read_model import keys
from libs.read_model.positions import PositionFacts, view
from libs.symbols import default_symbols
from services.gateway.freshness import Outstanding, Read, ReplyPositions, Seen, needs
from services.gateway.reads import ReadModel
from services.gateway.replies import Kind, ReplyTracker
from services.matcher.core import MatchingCore
from tests.unit.matcher.kit import BUY, MID, SELL, SPEC, SYMBOL, cancel, place

PREFIX = "p."
MATCHER = f"{PREFIX}matcher.events"
WALLET = f"{PREFIX}wallet.events"
REQUEST = Cause("orders.requests", 3, 12)  # a wallet answer's cause: a logical topic name


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
        self.at: list[tuple[int, MatcherEvent]] = []  # every event with its offset

    def run(self, *commands, asked: Kind | None = None) -> list[tuple[int, MatcherEvent]]:
        """Run one batch; ``asked``: its requests are this gateway's. Return its events."""
        batch = []
        for command in commands:
            if asked is not None:
                self.tracker.expect(command.request_id, asked, command.user_id)
            batch.append((self.commands, command))
            self.commands += 1
        events = []
        for event in self.core.process_batch(batch):
            for request_id, outcome in self.tracker.apply(event):
                self.seen[request_id] = self.positions.seen(
                    MATCHER, 0, self.offset, event, outcome.order_id, outcome.user_id
                )
            self.positions.observe(MATCHER, 0, self.offset, event)
            events.append((self.offset, event))
            self.offset += 1
        self.at += events
        return events


def offsets(events: list[tuple[int, MatcherEvent]], kind: type) -> list[int]:
    return [offset for offset, event in events if type(event) is kind]


def account(name: str, partition: int = 0) -> tuple[str, str]:
    """A watermark field of user 11's account (logical topic names)."""
    return keys.account_key(11), f"{name}:matcher.events:{partition}"


# --- where the answer is ----------------------------------------------------------------


def test_a_filled_place_names_its_last_fill_and_the_users_last_told_record():
    ex = Listener()
    ex.run(place(1, 10, SELL, MID, 2), place(2, 10, SELL, MID + 1, 2))
    events = ex.run(place(3, 11, BUY, MID + 1, 4), asked=Kind.PLACE)
    fills = offsets(events, OrderFilled)
    assert len(fills) == 2
    assert ex.seen["r3"] == Seen(MATCHER, 0, ex.offset - 1, None, fills[-1], fills[-1])


def test_a_place_names_the_users_last_told_record_of_its_batch_also_a_later_maker_fill():
    ex = Listener()
    ex.run(place(1, 10, SELL, MID, 2), place(2, 11, SELL, MID + 5, 2))
    # 11 buys from 10; then 12 buys 11's resting sell, in the same batch
    events = ex.run(place(3, 11, BUY, MID, 2), place(4, 12, BUY, MID + 5, 2), asked=Kind.PLACE)
    mine, theirs = offsets(events, OrderFilled)
    seen = ex.seen["r3"]
    assert (seen.fill, seen.told) == (mine, theirs)  # 11's last told: the maker fill
    assert ex.seen["r4"].told == theirs


def test_a_resting_place_is_told_at_its_acceptance():
    ex = Listener()
    events = ex.run(place(1, 11, SELL, MID, 2), asked=Kind.PLACE)
    [accepted] = offsets(events, OrderAccepted)
    assert ex.seen["r1"] == Seen(MATCHER, 0, ex.offset - 1, None, None, accepted)


def test_a_cancel_is_told_at_the_cancel_itself():
    ex = Listener()
    ex.run(place(1, 11, SELL, MID, 2))
    events = ex.run(cancel(1, 11), asked=Kind.CANCEL)
    [cancelled] = offsets(events, OrderCancelled)
    assert ex.seen["c1"] == Seen(MATCHER, 0, cancelled, None, None, cancelled)


def test_a_cancel_the_book_refuses_is_told_but_one_the_wallet_refused_is_not():
    ex = Listener()
    events = ex.run(cancel(5, 11), asked=Kind.CANCEL)  # no such order: the book refuses it
    [refused] = offsets(events, OrderRejected)
    assert ex.seen["c5"] == Seen(MATCHER, 0, refused, None, None, refused)
    wallet_refused = RejectRequest(
        request_id="c6", user_id=11, symbol=SYMBOL, order_id=6, code=-2011, msg="Unknown order"
    )
    events = ex.run(wallet_refused, asked=Kind.CANCEL)
    [refused] = offsets(events, OrderRejected)
    assert ex.seen["c6"] == Seen(MATCHER, 0, refused)  # pre-trade: no account was told


def test_what_an_earlier_batch_said_is_forgotten_at_its_end():
    ex = Listener()
    ex.run(place(1, 10, SELL, MID, 2))
    ex.run(place(2, 11, BUY, MID, 2))  # 11's fill, and 10's
    ex.run(place(3, 10, SELL, MID, 2), asked=Kind.PLACE)
    assert (ex.seen["r3"].fill, ex.seen["r3"].told) == (None, ex.offset - 2)  # its acceptance
    refusal = RejectRequest(request_id="c5", user_id=11, symbol=SYMBOL, code=-1, msg="no")
    ex.run(refusal, asked=Kind.CANCEL)
    assert ex.seen["c5"].told is None


def test_a_wallet_answer_names_its_cause_and_a_refusal_says_so():
    positions = ReplyPositions()
    deposit = AccountUpdated(seq=5, cause=REQUEST, user_id=11, balance=1, holds=0, available=1)
    assert positions.seen(WALLET, 7, 90, deposit, None, 11) == Seen(WALLET, 7, 90, REQUEST)
    refusal = OrderRequestRejected(
        seq=6, cause=REQUEST, request_id="d", user_id=11, order_id=None, code=-1, msg="no"
    )
    assert positions.seen(WALLET, 7, 91, refusal, None, 11) == Seen(
        WALLET, 7, 91, REQUEST, refused=True
    )


def _one_of_each() -> list[MatcherEvent]:
    """A record of each kind of ``matcher.events`` naming users 1 (and 2)."""
    head = (SYMBOL, 1, 1)
    order = (SYMBOL, 1, 1, 9, 1)  # ... order_id, user_id
    return [
        OrderAccepted(*order, "r", Side.BUY, OrderType.LIMIT, TimeInForce.GTC, 5, MID),
        OrderRejected(*head, "r", 1, 9, -2019, "no"),
        OrderRejected(*head, "r", 1, 9, -2019, "no", None, True),
        OrderFilled(*head, 3, MID, 2, 9, 1, Side.BUY, 0, 8, 2, 3),
        OrderCancelled(*order, "r", EndReason.USER, 0, 5),
        OrderExpired(*order, EndReason.IOC, 0, 5),
        OrderTriggered(*order, MID),
        OrderAmended(*order, "r", MID, 5, True),
        SymbolHalted(*head, "halt"),
        SymbolResumed(*head),
        MarkPriceSet(*head, MID, 1),
        Deleveraged(*head, 4, 1, Side.SELL, MID, 2, (DeleverageMatch(5, 2, 2),)),
        BatchCompleted(*head, 0, 1),
    ]


def test_the_records_followed_as_told_are_exactly_those_account_users_names():
    samples = _one_of_each()
    assert {type(e) for e in samples} == set(MatcherEvent.__subclasses__())
    quiet = SymbolResumed(SYMBOL, 2, 2)  # tells nobody
    for sample in samples:
        positions = ReplyPositions()
        positions.observe(MATCHER, 0, 5, sample)
        told = {user for user in (1, 2) if positions.seen(MATCHER, 0, 6, quiet, None, user).told}
        assert told == set(account_users(sample)), sample


# --- what a reply needs -----------------------------------------------------------------


def test_after_a_place_that_filled_the_account_waits_for_its_last_told_record_and_fill():
    seen = Seen(MATCHER, 2, 40, None, 36, 38)  # a maker fill of the user's after its own
    assert needs(seen, 11, PREFIX) == {
        Read.ORDERS: {(keys.OFFSETS_KEY, keys.offsets_field(MATCHER, 2)): 41},
        Read.ACCOUNT: {account("told", 2): 39, account("settled", 2): 37},
        Read.POSITIONS: {account("position", 2): 37, account("settled", 2): 37},
    }


def test_after_a_cancel_the_account_waits_for_the_cancel_and_positions_for_nothing():
    assert needs(Seen(MATCHER, 0, 40, None, None, 40), 11, PREFIX) == {
        Read.ORDERS: {(keys.OFFSETS_KEY, keys.offsets_field(MATCHER, 0)): 41},
        Read.ACCOUNT: {account("told"): 41},
    }


def test_after_a_refusal_nobody_was_told_of_only_the_orders_wait():
    assert needs(Seen(MATCHER, 0, 40), 11, PREFIX) == {
        Read.ORDERS: {(keys.OFFSETS_KEY, keys.offsets_field(MATCHER, 0)): 41},
    }


def test_after_a_deposit_or_a_leverage_change_the_account_waits_for_the_answer_and_its_cause():
    deposit = AccountUpdated(seq=5, cause=REQUEST, user_id=11, balance=1, holds=0, available=1)
    leverage = LeverageSet(
        seq=5, cause=REQUEST, request_id="l", user_id=11, symbol=SYMBOL, leverage=10
    )
    answered = (keys.OFFSETS_KEY, keys.offsets_field(WALLET, 7))
    for answer in (deposit, leverage):
        seen = ReplyPositions().seen(WALLET, 7, 90, answer, None, 11)
        assert needs(seen, 11, PREFIX) == {
            Read.ORDERS: {answered: 91},
            Read.ACCOUNT: {answered: 91, (keys.account_key(11), "told:orders.requests:3"): 13},
        }


def test_after_a_refused_deposit_the_account_waits_only_for_the_answer():
    refusal = OrderRequestRejected(
        seq=6, cause=REQUEST, request_id="d", user_id=11, order_id=None, code=-1, msg="no"
    )
    seen = ReplyPositions().seen(WALLET, 7, 90, refusal, None, 11)
    answered = (keys.OFFSETS_KEY, keys.offsets_field(WALLET, 7))
    assert needs(seen, 11, PREFIX) == {Read.ORDERS: {answered: 91}, Read.ACCOUNT: {answered: 91}}


def test_a_place_through_the_listener_needs_what_its_batch_told_the_user():
    ex = Listener()
    ex.run(place(1, 10, SELL, MID, 2), place(2, 11, SELL, MID + 5, 2))
    events = ex.run(place(3, 11, BUY, MID, 2), place(4, 12, BUY, MID + 5, 2), asked=Kind.PLACE)
    mine, theirs = offsets(events, OrderFilled)
    need = needs(ex.seen["r3"], 11, PREFIX)
    assert need[Read.ACCOUNT] == {account("told"): theirs + 1, account("settled"): mine + 1}
    assert need[Read.POSITIONS] == {account("position"): mine + 1, account("settled"): mine + 1}


# --- what is outstanding ----------------------------------------------------------------


def test_replies_merge_to_the_furthest_and_a_read_forgets_only_what_it_covered():
    outstanding = Outstanding(PREFIX)
    outstanding.saw(7, Seen(MATCHER, 0, 10, None, None, 9))
    outstanding.saw(7, Seen(MATCHER, 0, 5))
    outstanding.saw(7, Seen(MATCHER, 1, 3))
    field = (keys.OFFSETS_KEY, keys.offsets_field(MATCHER, 0))
    other = (keys.OFFSETS_KEY, keys.offsets_field(MATCHER, 1))
    assert outstanding.of(7, Read.ORDERS) == {field: 11, other: 4}
    assert outstanding.of(8, Read.ORDERS) is None
    waited_for = outstanding.of(7, Read.ORDERS)
    outstanding.saw(7, Seen(MATCHER, 0, 20))  # a reply while the read waited
    outstanding.settle(7, Read.ORDERS, waited_for)
    assert outstanding.of(7, Read.ORDERS) == {field: 21}
    outstanding.settle(7, Read.ORDERS, {field: 21})
    assert outstanding.of(7, Read.ORDERS) is None
    assert outstanding.of(7, Read.ACCOUNT) is not None  # each kind on its own
    assert outstanding.of(7, Read.POSITIONS) is None  # no fill: nothing to wait for


def test_the_users_with_the_oldest_replies_are_forgotten_first():
    outstanding = Outstanding(PREFIX, max_users=2)
    for user in (1, 2, 1, 3):
        outstanding.saw(user, Seen(MATCHER, 0, user))
    assert len(outstanding) == 2
    assert outstanding.of(2, Read.ORDERS) is None
    assert outstanding.of(1, Read.ORDERS) and outstanding.of(3, Read.ORDERS)


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
            outstanding.settle(1, Read.ORDERS, {field: offset})
            if model.get(field, offset + 1) <= offset:
                del model[field]
        assert (outstanding.of(1, Read.ORDERS) or {}) == model


# --- the reads --------------------------------------------------------------------------


class FakeRedis:
    """The read model's hashes, and how many round trips the reads made."""

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
        self.redis = redis
        self.calls: list[tuple[str, str | list[str] | None]] = []

    async def __aenter__(self) -> FakePipeline:
        return self

    async def __aexit__(self, *exc) -> None:
        return None

    def hmget(self, key: str, fields: list[str]) -> None:
        self.calls.append((key, fields))

    def hget(self, key: str, field: str) -> None:
        self.calls.append((key, field))

    def hgetall(self, key: str) -> None:
        self.calls.append((key, None))

    async def execute(self) -> list:
        self.redis.round_trips += 1
        self.redis.on_round_trip(self.redis.round_trips)
        found = []
        for key, fields in self.calls:
            fields_of = self.redis.hashes.get(key, {})
            if fields is None:
                found.append(dict(fields_of))
            elif isinstance(fields, str):
                found.append(fields_of.get(fields))
            else:
                found.append([fields_of.get(f) for f in fields])
        return found


def test_positions_are_computed_from_their_facts_the_balance_and_the_marks_in_one_round_trip():
    redis = FakeRedis()
    reads = ReadModel(redis)  # type: ignore[arg-type]
    btc = PositionFacts(10, 5 * 10**10, 25_000_000)
    eth = PositionFacts(-2000, 6 * 10**11, 0)
    redis.hashes[keys.positions_key(7)] = {"BTC-PERP": btc.to_json(), "ETH-PERP": eth.to_json()}
    redis.hashes[keys.account_key(7)] = {"balance": str(100 * 10**8), "holds": "5"}
    redis.hashes[keys.mark_key("BTC-PERP")] = {"mark": "510000", "index": "509990"}
    shown = asyncio.run(reads.positions(7))
    assert redis.round_trips == 1
    marks: dict[str, int | None] = {"BTC-PERP": 510_000, "ETH-PERP": None}  # no mark yet
    specs = default_symbols()
    assert shown == view(specs, {"BTC-PERP": btc, "ETH-PERP": eth}, 100 * 10**8, marks)
    assert shown["ETH-PERP"]["mark"] == 300_000  # its entry price, until a mark comes


def test_the_leverage_is_the_users_where_set_and_the_default_elsewhere():
    redis = FakeRedis()
    reads = ReadModel(redis)  # type: ignore[arg-type]
    assert asyncio.run(reads.account(7)) == ({}, {})  # a user the wallet never told of
    redis.hashes[keys.account_key(7)] = {"balance": "10"}
    redis.hashes[keys.leverage_key(7)] = {"ETH-PERP": "50"}
    fields, leverage = asyncio.run(reads.account(7))
    assert fields == {"balance": "10"}
    assert leverage == {"BTC-PERP": 20, "ETH-PERP": 50, "SOL-PERP": 20}


def test_a_read_with_no_reply_outstanding_costs_no_extra_round_trip():
    redis = FakeRedis()
    reads = ReadModel(redis)  # type: ignore[arg-type]
    asyncio.run(reads.positions(7))
    assert redis.round_trips == 1


def test_a_read_after_a_reply_waits_until_the_read_model_covers_the_answer():
    redis = FakeRedis()
    reads = ReadModel(redis, Outstanding(PREFIX))  # type: ignore[arg-type]
    reads.saw(11, Seen(MATCHER, 0, 40, None, 38, 38))
    mine = keys.account_key(11)
    redis.hashes[mine] = {"position:matcher.events:0": "12", "settled:matcher.events:0": "39"}

    def projector_catches_up(n: int) -> None:
        if n == 3:  # the third watermark read finds the fill's position change
            redis.hashes[mine]["position:matcher.events:0"] = "39"

    redis.on_round_trip = projector_catches_up
    asyncio.run(reads.positions(11))
    assert redis.round_trips == 3 + 1  # three watermark reads, then the read itself
    asyncio.run(reads.positions(11))  # covered: the next read goes straight to the data
    assert redis.round_trips == 5
    assert reads.outstanding.of(11, Read.POSITIONS) is None


def test_a_read_gives_up_waiting_after_the_bound_and_shows_what_there_is():
    redis = FakeRedis()
    reads = ReadModel(redis, Outstanding(PREFIX), wait_seconds=0.05)  # type: ignore[arg-type]
    reads.saw(7, Seen(MATCHER, 0, 40, None, None, 40))

    async def timed() -> float:
        loop = asyncio.get_running_loop()
        started = loop.time()
        await reads.fills(7, 10)
        return loop.time() - started

    assert 0.05 <= asyncio.run(timed()) < 1
    assert reads.outstanding.of(7, Read.ORDERS) is None  # the next read does not wait
    assert reads.outstanding.of(7, Read.ACCOUNT) is not None


def test_a_read_of_one_kind_waits_only_for_what_that_kind_needs():
    redis = FakeRedis()
    reads = ReadModel(redis, Outstanding(PREFIX), wait_seconds=5)  # type: ignore[arg-type]
    reads.saw(11, Seen(MATCHER, 0, 40, None, 39, 39))
    field = keys.offsets_field(MATCHER, 0)
    redis.hashes[keys.OFFSETS_KEY] = {field: "41"}  # the orders are there, the account not
    asyncio.run(reads.order(5, 11))
    assert redis.round_trips == 2
    redis.hashes[keys.account_key(11)] = {
        "told:matcher.events:0": "40",
        "settled:matcher.events:0": "40",
    }
    asyncio.run(reads.account(11))
    assert reads.outstanding.of(11, Read.ACCOUNT) is None
    assert reads.outstanding.of(11, Read.POSITIONS) is not None  # not read yet
