"""One convention for ``Cause.topic`` (libs.topics.cause_of): every engine names the record
that caused an event by its logical topic, whatever prefix the deployment runs under, so a
replay under another prefix gives the same events and the projector finds every cause."""

from __future__ import annotations

from libs.bus import MemoryBus, Record
from libs.messages import ANY, Cause, OrderFilled, Side, encode
from libs.topics import Topics, cause_of, exchange_topics, logical_topic, physical_topic
from services.positions.service import PositionsService
from services.wallet.service import WalletService

PREFIX = "deploy-7."
FILL = OrderFilled(
    symbol="BTC-PERP",
    seq=1,
    cmd_offset=0,
    trade_id=1,
    price=500_000,
    qty=4,
    taker_order_id=11,
    taker_user_id=1,
    taker_side=Side.BUY,
    taker_remaining=0,
    maker_order_id=12,
    maker_user_id=2,
    maker_remaining=6,
)


def causes(prefix: str) -> dict[str, set[Cause]]:
    """Feed the same matcher record to the wallet and the position engine under ``prefix``;
    return the causes each wrote in its events."""
    bus = MemoryBus()
    for topic in exchange_topics():
        bus.create_topic(prefix + topic.name, topic.partitions)
    wallet = WalletService(bus, Topics(prefix))
    positions = PositionsService(bus, Topics(prefix))
    record = Record(f"{prefix}matcher.events", 0, 5, b"BTC-PERP", encode(FILL))
    found: dict[str, set[Cause]] = {}
    for name, service in (("wallet", wallet), ("positions", positions)):
        events = [ANY.decode(o.value) for o in service.handle([record]).outputs]
        found[name] = {e.cause for e in events if hasattr(e, "cause")}
    return found


def test_the_wallet_and_the_position_engine_name_the_same_record_with_the_same_cause():
    found = causes(PREFIX)
    expected = cause_of(f"{PREFIX}matcher.events", 0, 5, PREFIX)
    assert expected == Cause("matcher.events", 0, 5)
    assert found == {"wallet": {expected}, "positions": {expected}}


def test_a_cause_does_not_depend_on_the_prefix():
    assert causes(PREFIX) == causes("") == causes("other.")


def test_logical_and_physical_names_are_inverse():
    for topic in exchange_topics():
        assert logical_topic(physical_topic(topic.name, PREFIX), PREFIX) == topic.name
        assert logical_topic(topic.name, "") == topic.name
