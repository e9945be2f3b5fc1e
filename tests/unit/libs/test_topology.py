"""The topology is declared once (libs/topics): the docs' table is it, every message kind
travels on a topic of it, and no service spells a topic name of its own."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from libs.messages import (
    ALL_MESSAGES,
    AccountUpdated,
    AmendOrder,
    CancelAll,
    CancelOrder,
    DecodeError,
    IndexPriceTick,
    OrderAccepted,
    PlaceOrder,
    Side,
    TimeInForce,
    encode,
)
from libs.messages.enums import OrderType
from libs.topics import (
    COMMANDS,
    MATCHER_EVENTS,
    REQUESTS,
    Topics,
    cause_of,
    exchange_topics,
    markdown_table,
    topic_table,
)

ROOT = Path(__file__).resolve().parents[3]


def test_the_architecture_doc_shows_the_declared_table():
    doc = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    assert markdown_table(exchange_topics()) in doc, (
        "docs/ARCHITECTURE.md's topic table differs from libs/topics: paste "
        "`python -m libs.topics list` into it"
    )


def test_every_message_kind_travels_on_a_topic():
    carried = {kind for topic in exchange_topics() for kind in topic.kinds}
    assert carried == set(ALL_MESSAGES)
    # an order request is checked by the wallet, then travels on to its book as it came
    both = set(topic_table()[REQUESTS].kinds) & set(topic_table()[COMMANDS].kinds)
    assert both == {PlaceOrder, CancelOrder, CancelAll, AmendOrder}


def test_a_prefix_maps_every_name_there_and_back():
    topics = Topics("t-1.")
    for name in topic_table():
        physical = topics.physical(name)
        assert physical == f"t-1.{name}"
        assert topics.logical(physical) == name
    assert topics.matcher_events == "t-1.matcher.events"
    assert Topics().matcher_events == MATCHER_EVENTS
    assert cause_of(topics.matcher_events, 2, 7, topics.prefix).topic == MATCHER_EVENTS


def test_a_topics_codec_decodes_its_kinds_and_refuses_the_others():
    topics = Topics("t.")
    tick = IndexPriceTick(symbol="BTC-PERP", price=1, ts=2)
    assert topics.codec(topics.index_prices).decode(encode(tick)) == tick
    with pytest.raises(DecodeError):
        topics.codec(topics.index_prices).decode(encode(_place()))
    assert topics.codec(topics.requests).decode(encode(_place())) == _place()
    account = AccountUpdated(
        cause=cause_of(topics.requests, 0, 1, topics.prefix),
        seq=1,
        user_id=1,
        balance=1,
        holds=0,
        available=1,
    )
    with pytest.raises(DecodeError):
        topics.codec(topics.matcher_events).decode(encode(account))
    assert type(topics.codec(topics.wallet_events).decode(encode(account))) is AccountUpdated
    assert OrderAccepted in topic_table()[MATCHER_EVENTS].kinds


def test_snapshot_and_journal_topics_have_no_message_codec():
    with pytest.raises(LookupError):
        Topics().codec(Topics().wallet_journal)


NAMES = re.compile("[\"']({})[\"']".format("|".join(re.escape(n) for n in topic_table())))


def test_no_service_spells_a_topic_name_of_its_own():
    spelled = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in sorted((ROOT / "services").rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if NAMES.search(line)
    ]
    assert spelled == [], "name topics through libs.topics (Topics or its constants)"


def _place() -> PlaceOrder:
    return PlaceOrder(
        request_id="r",
        user_id=1,
        order_id=2,
        symbol="BTC-PERP",
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        tif=TimeInForce.GTC,
        price=10,
        qty=1,
        ts=3,
    )
