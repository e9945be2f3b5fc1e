import contextlib

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from libs.bus import Record
from libs.messages import (
    ALL_MESSAGES,
    ANY,
    Cause,
    Codec,
    DecodeError,
    DeleverageMatch,
    LedgerAccountKind,
    LedgerLeg,
    LedgerPosted,
    MatcherCommand,
    OrderFilled,
    OrderType,
    PlaceOrder,
    Side,
    encode,
    encode_json,
)


def test_every_message_tag_names_its_class_and_schema_version():
    for kind in ALL_MESSAGES:
        assert kind.__struct_config__.tag == f"{kind.__name__}.v1"


def test_messages_are_frozen():
    order = PlaceOrder(
        request_id="r",
        order_id=1,
        user_id=2,
        symbol="BTC-PERP",
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        qty=1,
        price=10,
    )
    with pytest.raises(AttributeError):
        order.qty = 5  # type: ignore[misc]


@pytest.mark.parametrize("kind", ALL_MESSAGES, ids=lambda k: k.__name__)
def test_every_message_kind_round_trips_through_the_wire_format(kind):
    message = msgspec.convert(_example_fields(kind), kind)
    assert ANY.decode(encode(message)) == message
    assert ANY.decode_json(encode_json(message)) == message


def test_a_topic_codec_refuses_kinds_that_do_not_belong_on_its_topic():
    commands = Codec(*MatcherCommand.__args__)
    fill = msgspec.convert(_example_fields(OrderFilled), OrderFilled)
    with pytest.raises(DecodeError):
        commands.decode(encode(fill))


@given(st.binary(max_size=200))
def test_garbage_bytes_raise_decode_error_and_nothing_else(data):
    with contextlib.suppress(DecodeError):
        ANY.decode(data)


def test_tombstones_are_a_decode_error():
    with pytest.raises(DecodeError, match="empty"):
        ANY.decode(None)


def test_decode_input_logs_a_malformed_record_and_gives_none(caplog):
    fill = msgspec.convert(_example_fields(OrderFilled), OrderFilled)
    good = Record("matcher.events", 2, 41, b"BTC-PERP", encode(fill))
    assert ANY.decode_input(good) == fill
    with caplog.at_level("WARNING"):
        assert ANY.decode_input(Record("matcher.events", 2, 42, None, b"\xc1")) is None
        assert ANY.decode_input(Record("matcher.events", 2, 43, None, None)) is None
    assert [r.getMessage().split(":")[0] for r in caplog.records] == [
        "skipping malformed matcher.events[2]@42",
        "skipping malformed matcher.events[2]@43",
    ]


def test_ledger_entries_carry_their_legs():
    entry = LedgerPosted(
        seq=1,
        cause=Cause("orders.requests", 0, 5),
        entry_id=1,
        memo="deposit",
        legs=(
            LedgerLeg(LedgerAccountKind.OUTSIDE, 0, -100),
            LedgerLeg(LedgerAccountKind.USER, 7, 100),
        ),
    )
    assert ANY.decode(encode(entry)) == entry
    assert sum(leg.amount for leg in entry.legs) == 0


def _example_fields(kind: type) -> dict:
    """Fill every field of a message kind with a plausible value from its annotation."""
    values: dict = {}
    for field in msgspec.structs.fields(kind):
        values[field.encode_name] = _example(field.type, field.name)
    return values


def _example(annotation, name):
    import enum
    import types
    import typing

    origin = typing.get_origin(annotation)
    if origin in (types.UnionType, typing.Union):
        return _example(next(a for a in typing.get_args(annotation) if a is not type(None)), name)
    if origin is tuple:
        return [_example(typing.get_args(annotation)[0], name)]
    if origin is dict:
        return {"orders.commands:0": 3}
    if annotation is int:
        return 7
    if annotation is bool:
        return True
    if annotation is str:
        return f"{name}-x" if name != "symbol" else "BTC-PERP"
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return list(annotation)[-1].value
    if annotation is Cause:
        return ["matcher.events", 1, 99]
    if annotation is LedgerLeg:
        return ["user", 7, 100]
    if annotation is DeleverageMatch:
        return [12, 7, 3]
    raise AssertionError(f"no example for {annotation!r}")


def test_concrete_kinds_are_the_leaves_of_a_message_family():
    from libs.messages import BatchCompleted, MatcherEvent, concrete_kinds

    kinds = concrete_kinds(MatcherEvent)
    assert OrderFilled in kinds and BatchCompleted in kinds
    assert MatcherEvent not in kinds
    assert set(kinds) <= set(ALL_MESSAGES)
