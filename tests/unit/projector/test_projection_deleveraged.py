"""The projection takes the matcher's ``Deleveraged`` in its stride: the batch applies, its
offset is covered, the reduce-only orders the deleverage made useless show as expired, and no
order record appears for it (it is no order)."""

from __future__ import annotations

from libs.messages import Deleveraged
from libs.read_model import keys
from tests.unit.matcher.kit import BUY, MID, SELL, deleverage, place
from tests.unit.projector.test_projection import TOPICS, Exchange


def test_a_deleverage_batch_applies_and_expires_the_orders_it_made_useless():
    ex = Exchange()
    ex.send(place(1, 2, SELL, MID, 10))
    ex.send(place(2, 1, BUY, MID, 10))  # user 1 long 10, user 2 short 10
    ex.send(place(3, 2, BUY, MID - 50, 10, reduce_only=True))
    events = ex.send(deleverage(1, SELL, MID - 20, 10, [2], liquidation_id=(1 << 62) | 9))
    assert type(events[0]) is Deleveraged
    assert ex.status(3) == ("Expired", "0", "reduce_only")
    assert keys.order_key((1 << 62) | 9) not in ex.redis.data
    matcher_records = sum(1 for item in ex.inputs if item.topic == TOPICS.matcher_events)
    offsets = ex.redis.data[keys.OFFSETS_KEY]
    assert offsets[f"{TOPICS.matcher_events}:0"] == str(matcher_records)
    assert ex.book()[:2] == ex.core_book() == ([], [])
