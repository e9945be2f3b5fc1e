"""Index feeds: the seeded walk, the CSV replay, Binance's recorded mark-price messages."""

from __future__ import annotations

import itertools
import json

import pytest

from libs.bus import MemoryBus
from libs.messages import Codec, IndexPriceTick
from services.index_feed.__main__ import publish
from services.index_feed.sources import (
    FeedError,
    csv_replay,
    default_simulation,
    parse_binance_mark_price,
    price_to_ticks,
)
from tests.unit.positions.kit import BTC, SPECS, ticks

# Recorded from wss://fstream.binance.com (format of the USDⓈ-M "Mark Price Stream" docs).
BTC_UPDATE = (
    '{"e":"markPriceUpdate","E":1562305380000,"s":"BTCUSDT","p":"11794.15000000",'
    '"i":"11784.62659091","P":"11784.25641265","r":"0.00038167","T":1562306400000}'
)
ARRAY_UPDATE = json.dumps(
    [
        {
            "e": "markPriceUpdate",
            "E": 1700000000123,
            "s": "ETHUSDT",
            "p": "2050.12000000",
            "i": "2049.98765432",
            "P": "2051.00000000",
            "r": "0.00010000",
            "T": 1700006400000,
        },
        {
            "e": "markPriceUpdate",
            "E": 1700000000123,
            "s": "DOGEUSDT",
            "p": "0.06",
            "i": "0.06",
            "P": "0.06",
            "r": "0.0001",
            "T": 1700006400000,
        },
    ]
)
COMBINED = (
    '{"stream":"solusdt@markPrice@1s","data":'
    + BTC_UPDATE.replace("BTCUSDT", "SOLUSDT").replace("11784.62659091", "61.235")
    + "}"
)


def take(n, iterator):
    return list(itertools.islice(iterator, n))


def test_the_simulated_feed_is_the_same_walk_for_the_same_seed():
    a = take(30, default_simulation(SPECS, seed=3).ticks(1_000, 10))
    b = take(30, default_simulation(SPECS, seed=3).ticks(1_000, 10))
    c = take(30, default_simulation(SPECS, seed=4).ticks(1_000, 10))
    assert a == b and a != c
    assert {t.symbol for t in a} == set(SPECS)
    btc = [t for t in a if t.symbol == "BTC-PERP"]
    assert [t.ts for t in btc] == [1_000 + 10 * i for i in range(10)]
    for before, after in itertools.pairwise(btc):  # moves at most 5 bp a step
        assert abs(after.price - before.price) <= before.price * 5 // 10_000


def test_the_csv_replay_reads_ms_and_iso_timestamps_and_rounds_to_the_tick():
    lines = [
        "timestamp,symbol,price",
        "1700000000000,BTC-PERP,50000.1",
        "2023-11-14T22:13:21.5Z,BTC-PERP,50000.26",
        "# a comment",
        "1700000002000,ETH-PERP,2000.005",
    ]
    out = list(csv_replay(lines, SPECS))
    assert [(t.symbol, t.price, t.ts) for t in out] == [
        ("BTC-PERP", ticks("50000.1"), 1_700_000_000_000_000_000),
        ("BTC-PERP", ticks("50000.3"), 1_700_000_001_500_000_000),
        ("ETH-PERP", 200000, 1_700_000_002_000_000_000),  # half-even: 2000.00
    ]


@pytest.mark.parametrize(
    "line", ["1,XRP-PERP,1", "x,BTC-PERP,1", "1,BTC-PERP,-5", "1,BTC-PERP", "1,BTC-PERP,1e400x"]
)
def test_a_bad_csv_row_names_its_line(line):
    with pytest.raises(FeedError, match="line 1"):
        list(csv_replay([line], SPECS))


def test_binance_mark_price_update_gives_the_index_price_at_the_event_time():
    (tick,) = parse_binance_mark_price(BTC_UPDATE, SPECS)
    assert tick.symbol == "BTC-PERP"
    assert tick.price == ticks("11784.6")
    assert tick.ts == 1562305380000 * 1_000_000
    assert tick.source == "binance"


def test_binance_array_stream_skips_symbols_we_do_not_list():
    (tick,) = parse_binance_mark_price(ARRAY_UPDATE, SPECS)
    assert (tick.symbol, tick.price) == ("ETH-PERP", 204999)


def test_binance_combined_stream_envelope_is_unwrapped():
    (tick,) = parse_binance_mark_price(COMBINED, SPECS)
    assert (tick.symbol, tick.price) == ("SOL-PERP", 6124)  # 61.235 -> 61.24 half-even


def test_binance_other_events_are_refused():
    with pytest.raises(FeedError):
        parse_binance_mark_price('{"e":"aggTrade","s":"BTCUSDT"}', SPECS)


def test_prices_never_go_through_float():
    with pytest.raises(FeedError):
        price_to_ticks(BTC, "0.05")  # half a tick rounds (half-even) to none: refused
    assert price_to_ticks(BTC, "0.15") == 2
    assert price_to_ticks(BTC, "12345678901234567.89") == 123456789012345679


def test_publish_puts_each_tick_on_its_symbols_partition():
    bus = MemoryBus()
    bus.create_topic("index.prices", 3)
    ticks_ = take(6, default_simulation(SPECS).ticks(0, 1))
    assert publish(bus.producer(), ticks_) == 6
    codec = Codec(IndexPriceTick)
    for partition, name in enumerate(SPECS):
        got = [codec.decode(r.value) for r in bus.replay("index.prices", partition)]
        assert got and all(t.symbol == name for t in got)
