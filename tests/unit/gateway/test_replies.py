"""The reply tracker, fed with what a real matching core emits."""

from __future__ import annotations

from libs.messages import (
    AccountUpdated,
    BatchCompleted,
    Cause,
    OrderRequestRejected,
    TimeInForce,
)
from services.gateway.replies import Kind, ReplyTracker
from services.matcher.core import MatchingCore
from tests.unit.matcher.kit import BUY, SELL, SPEC, cancel, cancel_all, place

CAUSE = Cause("orders.requests", 0, 0)


class Exchange:
    """A core and a tracker: commands go in as batches, every event goes to the tracker."""

    def __init__(self) -> None:
        self.core = MatchingCore(SPEC)
        self.tracker = ReplyTracker()
        self.offset = 0
        self.settled: dict[str, object] = {}

    def run(self, *commands) -> None:
        batch = []
        for command in commands:
            batch.append((self.offset, command))
            self.offset += 1
        for event in self.core.process_batch(batch):
            for request_id, outcome in self.tracker.apply(event):
                self.settled[request_id] = outcome

    def place(self, command) -> None:
        self.tracker.expect(command.request_id, Kind.PLACE, command.user_id)
        self.run(command)


def test_a_resting_limit_order_is_new_at_the_end_of_its_batch():
    ex = Exchange()
    ex.place(place(1, 10, BUY, 500_000, 5))
    outcome = ex.settled["r1"]
    assert (outcome.status, outcome.order_id, outcome.filled, outcome.remaining) == ("New", 1, 0, 5)
    assert len(ex.tracker) == 0


def test_a_taker_that_fills_part_and_rests_is_partially_filled():
    ex = Exchange()
    ex.run(place(1, 10, SELL, 500_000, 3))
    ex.place(place(2, 11, BUY, 500_000, 5))
    outcome = ex.settled["r2"]
    assert (outcome.status, outcome.filled, outcome.remaining) == ("PartiallyFilled", 3, 2)


def test_a_taker_that_fills_whole_is_filled():
    ex = Exchange()
    ex.run(place(1, 10, SELL, 500_000, 5))
    ex.place(place(2, 11, BUY, 500_100, 5))
    assert (ex.settled["r2"].status, ex.settled["r2"].filled) == ("Filled", 5)


def test_ioc_remainder_and_post_only_that_would_take_are_expired():
    ex = Exchange()
    ex.run(place(1, 10, SELL, 500_000, 3))
    ex.place(place(2, 11, BUY, 500_000, 5, tif=TimeInForce.IOC))
    ioc = ex.settled["r2"]
    assert (ioc.status, ioc.filled, ioc.remaining, ioc.reason) == ("Expired", 3, 2, "ioc")
    ex.run(place(3, 10, SELL, 500_000, 3))
    ex.place(place(4, 11, BUY, 500_000, 3, tif=TimeInForce.GTX))
    assert (ex.settled["r4"].status, ex.settled["r4"].reason) == ("Expired", "post_only")


def test_a_market_order_on_an_empty_book_is_expired():
    ex = Exchange()
    ex.place(place(1, 10, BUY, None, 5))
    assert ex.settled["r1"].status == "Expired"


def test_a_matcher_rejection_carries_its_code():
    ex = Exchange()
    ex.place(place(1, 10, BUY, 500_000, 0))
    outcome = ex.settled["r1"]
    assert outcome.status == "Rejected" and outcome.code is not None and outcome.msg


def test_a_wallet_rejection_settles_the_request():
    tracker = ReplyTracker()
    tracker.expect("r9", Kind.PLACE, 3)
    rejection = OrderRequestRejected(
        seq=1, cause=CAUSE, request_id="r9", user_id=3, order_id=9, code=-2019, msg="Margin"
    )
    [(request_id, outcome)] = tracker.apply(rejection)
    assert (request_id, outcome.status, outcome.code, outcome.order_id) == (
        "r9",
        "Rejected",
        -2019,
        9,
    )


def test_cancel_and_cancel_all_settle_on_their_events():
    ex = Exchange()
    ex.run(
        place(1, 10, BUY, 499_000, 5), place(2, 10, BUY, 498_000, 5), place(3, 10, BUY, 497_000, 5)
    )
    ex.tracker.expect("c1", Kind.CANCEL, 10)
    ex.run(cancel(1, 10))
    assert (ex.settled["c1"].status, ex.settled["c1"].remaining) == ("Cancelled", 5)
    ex.tracker.expect("ca10", Kind.CANCEL_ALL, 10)
    ex.run(cancel_all(10))
    assert sorted(e.order_id for e in ex.settled["ca10"].cancelled) == [2, 3]


def test_unknown_cancel_is_rejected_and_others_requests_are_ignored():
    ex = Exchange()
    ex.tracker.expect("c5", Kind.CANCEL, 10)
    ex.run(cancel(5, 10), place(6, 11, BUY, 490_000, 1))  # r6 is another gateway's
    assert ex.settled["c5"].status == "Rejected" and "r6" not in ex.settled


def test_a_late_answer_after_forget_is_ignored():
    ex = Exchange()
    ex.tracker.expect("r1", Kind.PLACE, 10)
    ex.tracker.forget("r1")
    ex.run(place(1, 10, BUY, 500_000, 5))
    assert ex.settled == {} and len(ex.tracker) == 0


def test_deposit_settles_on_the_account_update_carrying_its_request_id():
    tracker = ReplyTracker()
    tracker.expect("d1", Kind.DEPOSIT, 4)
    other = AccountUpdated(seq=1, cause=CAUSE, user_id=4, balance=1, holds=0, available=1)
    assert tracker.apply(other) == []
    mine = AccountUpdated(
        seq=2, cause=CAUSE, user_id=4, balance=5, holds=0, available=5, request_id="d1"
    )
    [(_, outcome)] = tracker.apply(mine)
    assert outcome.event is mine


def test_batches_of_other_symbols_do_not_settle_an_order():
    tracker = ReplyTracker()
    ex = Exchange()
    ex.tracker = tracker
    tracker.expect("r1", Kind.PLACE, 10)
    ex.run(place(1, 10, BUY, 500_000, 5))
    assert "r1" in ex.settled
    other = BatchCompleted(symbol="ETH-PERP", seq=1, cmd_offset=0, first_offset=0, size=1)
    assert tracker.apply(other) == []
