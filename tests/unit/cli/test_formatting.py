"""What the commands print, from values alone: books, JSON lines, the status."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec

from exchange.replay import BookView, book_json, format_book, stop_offset
from exchange.stack import Target
from exchange.status import Lag, Process, Processes, digest_lags, format_status
from exchange.tail import DECODERS, TOPICS, decode_record, json_line
from libs.bus import Record
from libs.bus.journal import ENTRY_HEADER, Entry, TurnRecord
from libs.bus.snapshots import Snapshot, snapshot_message
from libs.messages import BatchCompleted, PlaceOrder, encode
from libs.messages.enums import OrderType, Side
from libs.symbols import get_symbol

BTC = get_symbol("BTC-PERP")


def book(bids: list[tuple[int, int]], asks: list[tuple[int, int]]) -> BookView:
    return BookView("BTC-PERP", 41, 7, "ab" * 32, bids, asks)


def test_a_book_prints_asks_from_the_top_down_then_bids_best_first_in_decimals() -> None:
    tick, lot = BTC.prices.parse, BTC.quantities.parse
    shown = format_book(
        book(
            [(tick("50000.0"), lot("0.5")), (tick("49990.0"), lot("1"))],
            [(tick("50010.0"), lot("0.25")), (tick("50020.0"), lot("2"))],
        ),
        BTC,
    ).splitlines()
    assert shown[0] == f"BTC-PERP after command offset 41 (seq 7), digest {'ab' * 32}"
    sides = [row.split()[0] for row in shown[2:]]
    assert sides == ["ask", "ask", "-" * len(shown[4].strip()), "bid", "bid"]
    prices = [row.split()[1] for row in shown[2:] if row.split()[0] in ("ask", "bid")]
    assert prices == [
        BTC.prices.format(tick(p)) for p in ("50020.0", "50010.0", "50000.0", "49990.0")
    ]


def test_an_empty_book_says_so() -> None:
    assert format_book(book([], []), BTC).endswith("(empty book)")


def test_a_book_as_json_has_decimal_strings() -> None:
    price, size = BTC.prices.parse("50000.0"), BTC.quantities.parse("0.5")
    shown = book_json(book([(price, size)], []), BTC)
    assert shown["bids"] == [[BTC.prices.format(price), BTC.quantities.format(size)]]
    assert shown["asks"] == [] and shown["offset"] == 41 and shown["seq"] == 7


def test_a_replay_stops_after_the_last_recorded_batch_and_never_inside_one() -> None:
    cuts = [(0, 0), (1, 3), (4, 4)]
    assert stop_offset(cuts, None) == 5
    assert stop_offset(cuts, 0) == 1
    assert stop_offset(cuts, 2) == 1  # inside the batch 1-3: left out whole
    assert stop_offset(cuts, 3) == 4
    assert stop_offset(cuts, 99) == 5
    assert stop_offset([], None) == 0


def place() -> PlaceOrder:
    return PlaceOrder(
        request_id="r1",
        user_id=7,
        symbol="BTC-PERP",
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        qty=5,
        price=100,
        order_id=11,
    )


def test_a_record_is_one_json_line_with_where_it_is_and_the_decoded_message() -> None:
    record = Record("p.orders.commands", 0, 12, b"BTC-PERP", encode(place()))
    shown = json.loads(json_line(decode_record(record, "orders.commands")))
    assert {k: shown[k] for k in ("topic", "partition", "offset", "key")} == {
        "topic": "orders.commands",
        "partition": 0,
        "offset": 12,
        "key": "BTC-PERP",
    }
    assert shown["message"]["kind"] == "PlaceOrder"
    assert shown["message"]["user_id"] == 7 and shown["message"]["order_id"] == 11
    assert "error" not in shown


def test_a_malformed_record_is_an_error_line_not_a_crash() -> None:
    for value in (b"\xc1garbage", None, encode(BatchCompleted("BTC-PERP", 1, 2, 2, 1))):
        # garbage, a tombstone, and a kind that does not belong on the topic
        shown = decode_record(Record("orders.requests", 0, 3, None, value), "orders.requests")
        assert "message" not in shown
        assert shown["error"].startswith("does not decode as orders.requests")
        assert json.loads(json_line(shown))["offset"] == 3


def test_snapshots_show_what_they_cover_not_their_state_and_journal_headers_are_decoded() -> None:
    snapshot = Snapshot(key="wallet", offsets={"wallet.events:0": 4}, seq=2, state=b"x" * 99)
    message = snapshot_message("wallet.snapshots", snapshot)
    record = Record("wallet.snapshots", 0, 0, message.key, message.value)
    shown = decode_record(record, "wallet.snapshots")
    assert shown["message"]["state"] == "<99 bytes>"
    assert shown["message"]["offsets"] == {"wallet.events:0": 4}
    entry = msgspec.msgpack.encode(Entry(3, [TurnRecord([(0, 5)])]))
    record = Record("wallet.events", 0, 1, b"7", b"\xc1", None, ((ENTRY_HEADER, entry),))
    shown = decode_record(record, "wallet.events")
    assert json.loads(json_line(shown))["headers"][ENTRY_HEADER] == [3, [[[[0, 5]], []]]]
    assert "error" in shown


def test_every_topic_of_the_table_has_a_decoder() -> None:
    assert sorted(DECODERS) == sorted(TOPICS)


def test_the_status_lists_processes_topics_and_lag() -> None:
    processes = Processes(
        Path("infra/stack.toml"),
        "ready (pid 10)",
        [Process("kafka", "pid 11", "127.0.0.1:9092"), Process("topics", "oneshot", "")],
    )
    ends: dict[str, dict[int, int] | None] = {
        "orders.commands": {0: 5, 1: 0, 2: 7},
        "wallet.journal": None,
    }
    lags = [Lag("p.matcher", "orders.commands", {0: 5, 2: 3}, {0: 5, 1: 0, 2: 7})]
    text = format_status(processes, ends, lags, target=Target("h:1", prefix="p."))
    assert "supervisor ready (pid 10)" in text
    assert "  kafka        pid 11      127.0.0.1:9092" in text
    assert "  orders.commands      0:5 1:0 2:7  (total 12)" in text
    assert "  wallet.journal       missing" in text
    assert "prefix 'p.'" in text
    lag_line = next(row for row in text.splitlines() if "p.matcher" in row)
    assert lag_line.split() == ["p.matcher", "orders.commands", "4", "at", "0:5", "2:3"]


def test_an_engines_digest_says_where_it_is_in_each_topic() -> None:
    ends: dict[str, dict[int, int] | None] = {"matcher.events": {0: 9, 1: 4}, "wallet.events": None}
    digest = {"digest": "ab", "offsets": {"p.matcher.events:0": 7, "p.matcher.events:1": 4}}
    (lag,) = digest_lags("wallet", digest, ends, "p.")
    assert (lag.reader, lag.topic, lag.positions, lag.behind) == (
        "wallet (/digest)",
        "matcher.events",
        {0: 7, 1: 4},
        2,
    )
    assert digest_lags("matcher", {"digest": "cd", "offset": 3}, ends, "") == []


def test_a_status_without_readers_says_so() -> None:
    text = format_status(None, {}, [], target=Target("h:1"))
    assert "no reader has a position" in text
    assert "processes" not in text
