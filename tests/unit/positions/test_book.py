"""The top of book rebuilt from matcher events, for the mark price's mid."""

from __future__ import annotations

from libs.messages import OrderType, TimeInForce
from tests.unit.positions.kit import Feed, ticks


def book(feed: Feed):
    return feed.core.markets["BTC-PERP"].book


def test_resting_limit_orders_make_the_best_bid_ask_and_mid():
    feed = Feed()
    feed.accept(1, 1, "buy", "49990", "1")
    feed.accept(2, 1, "buy", "49980", "1")
    assert book(feed).mid() is None  # one side only
    feed.accept(3, 2, "sell", "50010", "1")
    assert (book(feed).best_bid(), book(feed).best_ask()) == (ticks("49990"), ticks("50010"))
    assert book(feed).mid() == ticks("50000")


def test_fills_cancels_and_expiries_move_the_top():
    feed = Feed()
    feed.accept(1, 1, "buy", "49990", "1")
    feed.accept(2, 1, "buy", "49980", "1")
    feed.accept(3, 2, "sell", "50010", "1")
    top = book(feed)
    # an IOC seller (order 9) takes 0.4 of the best bid: 0.6 stays
    feed.fill(
        1, 5, "49990", "0.4", taker="sell", taker_order_id=9, maker_order_id=1, maker_remaining=600
    )
    assert top.bids == {ticks("49990"): 600, ticks("49980"): 1000}
    feed.fill(1, 5, "49990", "0.6", taker="sell", taker_order_id=9, maker_order_id=1)
    assert top.best_bid() == ticks("49980")
    feed.expired(2, 1, 1000)
    assert top.best_bid() is None
    feed.accept(4, 3, "buy", "49000", "2")
    assert top.best_bid() == ticks("49000")


def test_ioc_and_market_orders_never_rest_and_limit_stops_rest_once_triggered():
    from libs.messages import OrderTriggered

    feed = Feed()
    feed.accept(1, 1, "buy", "49990", "1", tif=TimeInForce.IOC)
    assert book(feed).best_bid() is None
    feed.accept(2, 1, "buy", "49995", "1", order_type=OrderType.STOP_LIMIT)
    assert book(feed).best_bid() is None
    feed.seq["BTC-PERP"] += 1
    feed.matcher(
        OrderTriggered(
            symbol="BTC-PERP",
            seq=feed.seq["BTC-PERP"],
            cmd_offset=0,
            order_id=2,
            user_id=1,
            trigger_price=1,
        )
    )
    assert book(feed).best_bid() == ticks("49995")


def test_an_amend_moves_the_order_and_keeps_what_filled():
    from libs.messages import OrderAmended

    feed = Feed()
    feed.accept(5, 1, "sell", "50010", "1")
    feed.seq["BTC-PERP"] += 1
    feed.matcher(
        OrderAmended(
            symbol="BTC-PERP",
            seq=feed.seq["BTC-PERP"],
            cmd_offset=0,
            order_id=5,
            user_id=1,
            request_id="a",
            price=ticks("50020"),
            qty=2000,
            kept_priority=False,
        )
    )
    top = book(feed)
    assert top.asks == {ticks("50020"): 2000}


def test_the_book_survives_a_snapshot():
    from services.positions.core import PositionsCore

    feed = Feed()
    feed.accept(1, 1, "buy", "49990", "1")
    feed.accept(3, 2, "sell", "50010", "1")
    restored = PositionsCore.restore(feed.core.specs, feed.core.snapshot())
    assert restored.markets["BTC-PERP"].book.mid() == ticks("50000")
    assert restored.digest() == feed.core.digest()
