"""The Binance face's candles and statistics (services/gateway/binance/candles.py) on the real
gateway app built on in-memory adapters, reading what the projector's own code wrote: klines
paged as Binance pages them and parsed by ccxt, the rolling 24 hours, funding history, open
interest, and Binance's 4xx ``{"code", "msg"}`` for bad input."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import ccxt
import pytest

from libs import codes
from libs.messages import Cause, FundingRateSet, MarkPriceUpdated
from libs.read_model import keys
from libs.read_model.candles import Candle
from tests.unit.gateway.fakes import Stack, started
from tests.unit.projector.test_candles import MS, Feed

BTC = "BTC-PERP"
MINUTE = 60_000
T0 = 1_700_000_040_000  # ms, on a minute
NOW = T0 + 10 * MINUTE + 5_000
HOUR_NS = 3600 * 10**9
ORIGIN = Cause("index.prices", 0, 0)


@pytest.fixture
def stack() -> Iterator[Stack]:
    with started() as running:
        running.client.app.state.gateway.now_ns = lambda: NOW * MS  # type: ignore[attr-defined]
        yield running


def refused(reply: Any, status: int, code: int, msg: str) -> None:
    assert (reply.status_code, reply.json()) == (status, {"code": code, "msg": msg})


def project(stack: Stack, feed: Feed) -> None:
    """Copy what the projector wrote (FakeRedis) into the gateway's Redis."""
    feed.flush()

    async def write() -> None:
        async with stack.redis.pipeline(transaction=True) as pipe:
            for key, value in feed.redis.data.items():
                if key.startswith(("candles:", "funding_rates:")):
                    pipe.zadd(key, value)
                elif key.startswith("trades:"):
                    pipe.rpush(key, *value)
                elif key.startswith("mark:"):
                    pipe.hset(key, mapping=value)
            await pipe.execute()

    stack.run(write())


@pytest.fixture
def minutes(stack: Stack) -> Feed:
    """Ten BTC-PERP minutes, one trade each (50000.0 + n, 0.00n+1), and a second trade in the
    last one; then two fundings and a mark."""
    feed = Feed()
    for n in range(10):
        feed.batch((T0 + n * MINUTE + 1_000) * MS, [(500_000 + 10 * n, n + 1, n % 2 == 0)])
    feed.batch((T0 + 9 * MINUTE + 2_000) * MS, [(499_000, 5, False)])
    for n, rate in ((1, 10_000), (2, -2_500)):
        funding = FundingRateSet(
            seq=n,
            cause=ORIGIN,
            symbol=BTC,
            rate=rate,
            funding_time=T0 * MS + n * 8 * HOUR_NS,
            mark_price=510_000,
        )
        feed.record(feed.projection.topics.positions_events, funding)
    mark = MarkPriceUpdated(
        seq=3,
        cause=ORIGIN,
        symbol=BTC,
        mark_price=500_100,
        index_price=500_000,
        ts=(T0 + 5 * MINUTE) * MS,
        open_interest=1234,
    )
    feed.record(feed.projection.topics.positions_events, mark)
    project(stack, feed)
    return feed


def klines(stack: Stack, **params: Any) -> Any:
    return stack.client.get("/fapi/v1/klines", params={"symbol": "BTCUSDT", **params})


# --- klines -------------------------------------------------------------------------------


def test_a_kline_is_binances_row_of_the_candle(stack: Stack, minutes: Feed) -> None:
    reply = klines(stack, interval="1m", limit="1", endTime=str(T0 + 9 * MINUTE))
    assert reply.status_code == 200
    assert reply.json() == [
        [
            T0 + 9 * MINUTE,
            "50009.0",
            "50009.0",
            "49900.0",
            "49900.0",
            "0.015",
            T0 + 10 * MINUTE - 1,
            "749.59",  # 50009.0 x 0.010 + 49900.0 x 0.005
            2,
            "0.000",  # the taker sold both
            "0",
            "0",
        ]
    ]


def test_klines_rows_parse_with_ccxt(stack: Stack, minutes: Feed) -> None:
    parsed = [ccxt.binanceusdm().parse_ohlcv(row) for row in klines(stack, interval="1m").json()]
    assert [p[0] for p in parsed] == [T0 + n * MINUTE for n in range(11)]  # now is in minute 10
    assert parsed[0] == [T0, 50000.0, 50000.0, 50000.0, 50000.0, 0.001]
    assert parsed[-2] == [T0 + 9 * MINUTE, 50009.0, 50009.0, 49900.0, 49900.0, 0.015]
    assert parsed[-1] == [T0 + 10 * MINUTE, 49900.0, 49900.0, 49900.0, 49900.0, 0.0]  # no trade yet


def test_klines_page_as_binance_pages_them(stack: Stack, minutes: Feed) -> None:
    def opens(**params: Any) -> list[int]:
        reply = klines(stack, interval="1m", **params)
        assert reply.status_code == 200, reply.json()
        return [(row[0] - T0) // MINUTE for row in reply.json()]

    assert opens() == list(range(11))  # the newest 500, up to the minute now open
    assert opens(limit="3") == [8, 9, 10]  # the newest
    assert opens(startTime=str(T0 + 2 * MINUTE), limit="3") == [2, 3, 4]  # the oldest from there
    assert opens(startTime=str(T0 + 2 * MINUTE + 1), limit="2") == [3, 4]  # opening at or after
    assert opens(endTime=str(T0 + 5 * MINUTE), limit="2") == [4, 5]  # the newest up to there
    both = {"startTime": str(T0 + 2 * MINUTE), "endTime": str(T0 + 6 * MINUTE)}
    assert opens(**both) == [2, 3, 4, 5, 6]
    assert opens(**both, limit="2") == [2, 3]
    assert opens(startTime=str(NOW)) == []


def test_an_interval_without_trades_is_binances_flat_candle_at_the_last_close(
    stack: Stack,
) -> None:
    feed = Feed()
    feed.batch((T0 + 1_000) * MS, [(500_000, 1, True)])
    feed.batch((T0 + 3 * MINUTE + 1_000) * MS, [(500_100, 2, False)])
    project(stack, feed)
    rows = klines(stack, interval="1m", endTime=str(T0 + 3 * MINUTE)).json()
    assert [(r[0] - T0) // MINUTE for r in rows] == [0, 1, 2, 3]
    assert rows[1][1:9] == [
        "50000.0",
        "50000.0",
        "50000.0",
        "50000.0",
        "0.000",
        T0 + 2 * MINUTE - 1,
        "0",
        0,
    ]
    assert rows[2][4] == "50000.0" and rows[3][4] == "50010.0"
    # never before the first trade kept, nor past the minute now open
    assert (
        (klines(stack, interval="1m", startTime=str(T0 - 5 * MINUTE), limit="2").json()[0][0]) == T0
    )


def test_longer_intervals_gather_the_minutes(stack: Stack, minutes: Feed) -> None:
    [row] = klines(stack, interval="1h").json()
    assert row[0] == T0 - T0 % (60 * MINUTE)
    assert row[1:6] == ["50000.0", "50009.0", "49900.0", "49900.0", "0.060"]
    assert row[8] == 11
    five = klines(stack, interval="5m").json()
    assert sum(r[8] for r in five) == 11


def test_klines_of_a_symbol_without_trades_are_empty(stack: Stack) -> None:
    assert klines(stack, interval="1d").json() == []


@pytest.mark.parametrize(
    ("params", "code", "msg"),
    [
        ({"interval": "2m"}, codes.INVALID_INTERVAL, "Invalid interval."),
        ({"interval": "1w"}, codes.INVALID_INTERVAL, "Invalid interval."),
        (
            {},
            codes.MANDATORY_PARAM,
            "Mandatory parameter 'interval' was not sent, was empty/null, or malformed.",
        ),
        ({"interval": "1m", "symbol": "NOPEUSDT"}, codes.INVALID_SYMBOL, "Invalid symbol."),
        (
            {"interval": "1m", "limit": "1501"},
            codes.INVALID_PARAM,
            "Data sent for parameter 'limit' is not valid.",
        ),
        (
            {"interval": "1m", "limit": "0"},
            codes.INVALID_PARAM,
            "Data sent for parameter 'limit' is not valid.",
        ),
        (
            {"interval": "1m", "limit": "ten"},
            codes.INVALID_PARAM,
            "Illegal characters found in parameter 'limit'.",
        ),
        (
            {"interval": "1m", "startTime": "1e9"},
            codes.INVALID_PARAM,
            "Illegal characters found in parameter 'startTime'.",
        ),
        (
            {"interval": "1m", "startTime": "99999999999999999999"},
            codes.INVALID_PARAM,
            "Illegal characters found in parameter 'startTime'.",
        ),
        (
            {"interval": "1m", "startTime": "5", "endTime": "4"},
            codes.INVALID_PARAM,
            "Data sent for parameter 'startTime' is not valid.",
        ),
    ],
)
def test_bad_klines_parameters_are_refused_as_binance_does(
    stack: Stack, params: dict, code: int, msg: str
) -> None:
    refused(klines(stack, **params), 400, code, msg)


def test_a_klines_call_without_a_symbol_is_refused(stack: Stack) -> None:
    reply = stack.client.get("/fapi/v1/klines", params={"interval": "1m"})
    refused(
        reply,
        400,
        codes.MANDATORY_PARAM,
        "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.",
    )


# --- ticker/24hr --------------------------------------------------------------------------


def test_the_24h_ticker_sums_the_days_minutes(stack: Stack, minutes: Feed) -> None:
    reply = stack.client.get("/fapi/v1/ticker/24hr", params={"symbol": "BTCUSDT"})
    assert reply.status_code == 200
    day = reply.json()
    assert day == {
        "symbol": "BTCUSDT",
        "priceChange": "-100.0",
        "priceChangePercent": "-0.200",
        "weightedAvgPrice": day["weightedAvgPrice"],
        "lastPrice": "49900.0",
        "lastQty": "0.005",
        "openPrice": "50000.0",
        "highPrice": "50009.0",
        "lowPrice": "49900.0",
        "volume": "0.060",
        "quoteVolume": day["quoteVolume"],
        "openTime": NOW - NOW % MINUTE - 1439 * MINUTE,
        "closeTime": NOW,
        "firstId": 1,
        "lastId": 11,
        "count": 11,
    }
    candles = [Candle.from_member(m) for m in minutes.redis.data[keys.candles_key(BTC, "1m")]]
    quote = sum(c.quote_volume for c in candles)
    assert day["quoteVolume"] == str(quote / 10**8).rstrip("0").rstrip(".")
    ticker = ccxt.binanceusdm().parse_ticker(day)
    assert (ticker["last"], ticker["baseVolume"], ticker["percentage"]) == (49900.0, 0.06, -0.2)


def test_the_24h_ticker_leaves_out_minutes_older_than_a_day(stack: Stack, minutes: Feed) -> None:
    # the window is the 1,440 minutes up to the current one: the first four have left it
    later = T0 + 1440 * MINUTE + 3 * MINUTE
    stack.client.app.state.gateway.now_ns = lambda: later * MS  # type: ignore[attr-defined]
    day = stack.client.get("/fapi/v1/ticker/24hr", params={"symbol": "BTCUSDT"}).json()
    assert (day["openPrice"], day["firstId"], day["count"]) == ("50004.0", 5, 7)


def test_the_24h_ticker_of_every_symbol_shows_quiet_ones_at_zero(
    stack: Stack, minutes: Feed
) -> None:
    days = stack.client.get("/fapi/v1/ticker/24hr").json()
    assert isinstance(days, list) and len(days) >= 2
    by_name = {d["symbol"]: d for d in days}
    assert by_name["BTCUSDT"]["count"] == 11
    quiet = by_name["ETHUSDT"]
    assert (quiet["count"], quiet["firstId"], quiet["volume"]) == (0, -1, "0.000")


def test_the_24h_ticker_of_an_unknown_symbol_is_refused(stack: Stack) -> None:
    reply = stack.client.get("/fapi/v1/ticker/24hr", params={"symbol": "NOPE"})
    refused(reply, 400, codes.INVALID_SYMBOL, "Invalid symbol.")


# --- fundingRate and openInterest ---------------------------------------------------------


def test_funding_history_lists_rate_time_and_mark_oldest_first(stack: Stack, minutes: Feed) -> None:
    reply = stack.client.get("/fapi/v1/fundingRate", params={"symbol": "BTCUSDT"})
    first = T0 + 8 * 3_600_000
    assert reply.json() == [
        {
            "symbol": "BTCUSDT",
            "fundingRate": "0.00010000",
            "fundingTime": first,
            "markPrice": "51000.0",
        },
        {
            "symbol": "BTCUSDT",
            "fundingRate": "-0.00002500",
            "fundingTime": first + 8 * 3_600_000,
            "markPrice": "51000.0",
        },
    ]
    page = stack.client.get(
        "/fapi/v1/fundingRate", params={"symbol": "BTCUSDT", "startTime": first + 1}
    )
    assert [row["fundingRate"] for row in page.json()] == ["-0.00002500"]
    newest = stack.client.get("/fapi/v1/fundingRate", params={"limit": "1"})
    assert [row["fundingTime"] for row in newest.json()] == [first + 8 * 3_600_000]
    parsed = ccxt.binanceusdm().parse_funding_rate_history(reply.json()[1])
    assert (parsed["fundingRate"], parsed["timestamp"]) == (-0.000025, first + 8 * 3_600_000)


def test_bad_funding_history_parameters_are_refused(stack: Stack) -> None:
    reply = stack.client.get("/fapi/v1/fundingRate", params={"limit": "1001"})
    refused(reply, 400, codes.INVALID_PARAM, "Data sent for parameter 'limit' is not valid.")
    reply = stack.client.get("/fapi/v1/fundingRate", params={"symbol": "XUSDT"})
    refused(reply, 400, codes.INVALID_SYMBOL, "Invalid symbol.")


def test_open_interest_is_the_long_lots_at_the_last_mark(stack: Stack, minutes: Feed) -> None:
    reply = stack.client.get("/fapi/v1/openInterest", params={"symbol": "BTCUSDT"})
    assert reply.json() == {"openInterest": "1.234", "symbol": "BTCUSDT", "time": T0 + 5 * MINUTE}
    parsed = ccxt.binanceusdm().parse_open_interest(reply.json())
    assert parsed["openInterestAmount"] == 1.234


def test_open_interest_before_any_mark_is_zero_now(stack: Stack) -> None:
    reply = stack.client.get("/fapi/v1/openInterest", params={"symbol": "ETHUSDT"})
    assert reply.json() == {"openInterest": "0.000", "symbol": "ETHUSDT", "time": NOW}
    reply = stack.client.get("/fapi/v1/openInterest")
    refused(
        reply,
        400,
        codes.MANDATORY_PARAM,
        "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.",
    )


def test_the_trade_list_the_ticker_reads_is_newest_first(stack: Stack, minutes: Feed) -> None:
    newest = json.loads(minutes.redis.data[keys.trades_key(BTC)][0])
    assert newest["trade_id"] == 11
