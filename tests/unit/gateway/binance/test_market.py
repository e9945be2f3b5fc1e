"""The Binance face's public endpoints (services/gateway/binance/market.py) on the real gateway
app built on in-memory adapters: each answers Binance's shape from the read model's keys,
refuses bad input with Binance's 4xx ``{"code", "msg"}``, and ccxt's ``binanceusdm`` reads
what libs/symbols.toml says, over HTTP into the app, with only ``urls.api`` changed."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import ccxt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from libs.read_model import keys
from libs.symbols import default_symbols
from services.gateway.security import sign
from tests.ccxt_gateway import InProcess, gateway_urls
from tests.unit.gateway.fakes import Stack, started

NOW_MS = 1_700_000_000_000
BTC = "BTC-PERP"


@pytest.fixture
def stack() -> Iterator[Stack]:
    with started() as running:
        running.client.app.state.gateway.now_ns = lambda: NOW_MS * 1_000_000  # type: ignore[attr-defined]
        yield running


def get(stack: Stack, path: str) -> Any:
    return stack.client.get(path)


def refused(reply: Any, status: int, code: int, msg: str) -> None:
    assert (reply.status_code, reply.json()) == (status, {"code": code, "msg": msg})


def seed_book(stack: Stack, symbol: str, update_id: int, bids: list, asks: list) -> None:
    """Write a book as the projector does: levels best first, [ticks, lots]."""
    fields = {"update_id": update_id, "bids": json.dumps(bids), "asks": json.dumps(asks)}
    stack.seed_hash(keys.book_key(symbol), fields)


def seed_trades(stack: Stack, symbol: str, trades: list[tuple[int, int, int, str, int]]) -> None:
    """Push trades (id, ticks, lots, taker side, ms) oldest first: the list reads newest first."""
    for trade_id, price, qty, taker_side, ts in trades:
        trade = {"trade_id": trade_id, "price": price, "qty": qty, "taker_side": taker_side}
        stack.run(stack.redis.lpush(keys.trades_key(symbol), json.dumps(trade | {"ts": ts})))


# three BTC-PERP trades, ten minutes apart: 50000.0 x 0.010, 50001.0 x 0.002, 49999.0 x 1.000
TRADES = [
    (7, 500_000, 10, "buy", NOW_MS - 1_200_000),
    (8, 500_010, 2, "sell", NOW_MS - 600_000),
    (9, 499_990, 1000, "buy", NOW_MS),
]


# --- general ------------------------------------------------------------------------------


def test_ping_answers_an_empty_object_and_time_the_servers_ms(stack: Stack) -> None:
    assert get(stack, "/fapi/v1/ping").json() == {}
    assert get(stack, "/fapi/v1/time").json() == {"serverTime": NOW_MS}


def test_exchange_info_describes_the_exchange_and_its_real_rate_limits() -> None:
    with started(ip_rate_per_minute=1234, user_rate_per_second=7) as stack:
        info = get(stack, "/fapi/v1/exchangeInfo").json()
    assert info["timezone"] == "UTC"
    assert abs(info["serverTime"] - time.time() * 1000) < 60_000
    assert info["futuresType"] == "U_MARGINED"
    assert info["rateLimits"] == [
        {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 1234},
        {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 1, "limit": 7},
    ]
    assert info["exchangeFilters"] == []
    assert info["assets"] == [{"asset": "USDT", "marginAvailable": True, "autoAssetExchange": "0"}]
    assert [s["symbol"] for s in info["symbols"]] == ["BTCUSDT", "ETHUSDT", "SOLUSDT"]


def test_exchange_info_lists_each_contract_with_its_filters_from_the_symbol_file(
    stack: Stack,
) -> None:
    btc = get(stack, "/fapi/v1/exchangeInfo").json()["symbols"][0]
    assert btc == {
        "symbol": "BTCUSDT",
        "pair": "BTCUSDT",
        "contractType": "PERPETUAL",
        "deliveryDate": 4133404800000,
        "onboardDate": 0,
        "status": "TRADING",
        "baseAsset": "BTC",
        "quoteAsset": "USDT",
        "marginAsset": "USDT",
        "pricePrecision": 1,
        "quantityPrecision": 3,
        "baseAssetPrecision": 8,
        "quotePrecision": 8,
        "underlyingType": "COIN",
        "settlePlan": 0,
        "triggerProtect": "0",
        "liquidationFee": "0",
        "marketTakeBound": "0.05",
        "filters": [
            # max price: 1000 BTC at it is the largest notional, 1e10 USDT
            {
                "filterType": "PRICE_FILTER",
                "minPrice": "0.1",
                "maxPrice": "10000000.0",
                "tickSize": "0.1",
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": "0.001",
                "maxQty": "1000.000",
                "stepSize": "0.001",
            },
            {
                "filterType": "MARKET_LOT_SIZE",
                "minQty": "0.001",
                "maxQty": "1000.000",
                "stepSize": "0.001",
            },
            {"filterType": "MAX_NUM_ORDERS", "limit": 200},
            {"filterType": "MIN_NOTIONAL", "notional": "100"},
            {
                "filterType": "PERCENT_PRICE",
                "multiplierUp": "1.0500",
                "multiplierDown": "0.9500",
                "multiplierDecimal": "4",
            },
        ],
        "orderTypes": [
            "LIMIT",
            "MARKET",
            "STOP",
            "STOP_MARKET",
            "TAKE_PROFIT",
            "TAKE_PROFIT_MARKET",
            "TRAILING_STOP_MARKET",
        ],
        "timeInForce": ["GTC", "IOC", "FOK", "GTX"],
    }


def test_ccxts_own_parser_reads_precision_and_limits_as_the_symbol_file_says(
    stack: Stack,
) -> None:
    info = get(stack, "/fapi/v1/exchangeInfo").json()
    ex = ccxt.binanceusdm()
    ex.fapiPublicGetExchangeInfo = lambda params=None: info
    markets = ex.load_markets()
    assert sorted(markets) == ["BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT"]
    for spec in default_symbols().values():
        market = markets[f"{spec.base}/USDT:USDT"]
        assert (market["id"], market["type"], market["settle"]) == (
            f"{spec.base}USDT",
            "swap",
            "USDT",
        )
        assert market["linear"] and market["contract"] and market["active"]
        assert market["expiry"] is None
        assert set(info["symbols"][spec.index]["orderTypes"]) >= {"LIMIT", "STOP_MARKET"}

        def exact(number: float | None) -> Decimal:
            assert number is not None
            return Decimal(str(number))

        assert exact(market["precision"]["price"]) == Decimal(spec.prices.step)
        assert exact(market["precision"]["amount"]) == Decimal(spec.quantities.step)
        limits = market["limits"]
        assert exact(limits["price"]["min"]) == Decimal(spec.prices.step)
        assert exact(limits["price"]["max"]) == Decimal(spec.ticks_to_price(spec.max_price))
        assert exact(limits["amount"]["min"]) == Decimal(spec.lots_to_qty(spec.min_qty))
        assert exact(limits["amount"]["max"]) == Decimal(spec.lots_to_qty(spec.max_qty))
        assert exact(limits["market"]["min"]) == Decimal(spec.lots_to_qty(spec.min_qty))
        assert exact(limits["cost"]["min"]) == Decimal(spec.min_notional) / 10**8


# --- depth --------------------------------------------------------------------------------


def test_depth_answers_the_book_best_first_as_decimal_strings(stack: Stack) -> None:
    seed_book(stack, BTC, 42, [[500_000, 10], [499_990, 2500]], [[500_010, 5]])
    assert get(stack, "/fapi/v1/depth?symbol=BTCUSDT").json() == {
        "lastUpdateId": 42,
        "E": NOW_MS,
        "T": NOW_MS,
        "bids": [["50000.0", "0.010"], ["49999.0", "2.500"]],
        "asks": [["50001.0", "0.005"]],
    }


def test_depth_keeps_the_limits_levels_a_side_and_takes_the_name_in_any_case(
    stack: Stack,
) -> None:
    bids = [[500_000 - i, 1] for i in range(7)]
    seed_book(stack, BTC, 3, bids, [])
    shown = get(stack, "/fapi/v1/depth?symbol=btcusdt&limit=5").json()
    assert [b[0] for b in shown["bids"]] == [
        "50000.0",
        "49999.9",
        "49999.8",
        "49999.7",
        "49999.6",
    ]
    assert shown["asks"] == []


def test_depth_of_a_symbol_with_no_book_yet_is_empty(stack: Stack) -> None:
    assert get(stack, "/fapi/v1/depth?symbol=SOLUSDT&limit=1000").json() == {
        "lastUpdateId": 0,
        "E": NOW_MS,
        "T": NOW_MS,
        "bids": [],
        "asks": [],
    }


SYMBOL_ROUTES = [
    "/fapi/v1/depth",
    "/fapi/v1/trades",
    "/fapi/v1/aggTrades",
    "/fapi/v1/ticker/price",
    "/fapi/v2/ticker/price",
    "/fapi/v1/ticker/bookTicker",
    "/fapi/v1/premiumIndex",
]
MANDATORY = "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed."


@pytest.mark.parametrize("route", SYMBOL_ROUTES)
def test_an_unknown_or_empty_symbol_is_refused_as_binance_does(stack: Stack, route: str) -> None:
    refused(get(stack, f"{route}?symbol=DOGEUSDT"), 400, -1121, "Invalid symbol.")
    refused(get(stack, f"{route}?symbol=BTC-PERP"), 400, -1121, "Invalid symbol.")
    refused(get(stack, f"{route}?symbol={'X' * 5000}"), 400, -1121, "Invalid symbol.")
    refused(get(stack, f"{route}?symbol="), 400, -1102, MANDATORY)


@pytest.mark.parametrize("route", ["/fapi/v1/depth", "/fapi/v1/trades", "/fapi/v1/aggTrades"])
def test_a_symbol_is_mandatory_for_the_book_and_trades(stack: Stack, route: str) -> None:
    refused(get(stack, route), 400, -1102, MANDATORY)


LIMIT_NOT_VALID = "Data sent for parameter 'limit' is not valid."


@pytest.mark.parametrize("limit", ["0", "1", "7", "499", "5000", "-5"])
def test_depth_takes_only_binances_limits(stack: Stack, limit: str) -> None:
    refused(get(stack, f"/fapi/v1/depth?symbol=BTCUSDT&limit={limit}"), 400, -1130, LIMIT_NOT_VALID)


@pytest.mark.parametrize("route", ["/fapi/v1/depth", "/fapi/v1/trades", "/fapi/v1/aggTrades"])
@pytest.mark.parametrize("limit", ["many", "1.5", "", "1e3", "9" * 40])
def test_a_limit_that_is_not_an_integer_is_refused(stack: Stack, route: str, limit: str) -> None:
    refused(
        get(stack, f"{route}?symbol=BTCUSDT&limit={limit}"),
        400,
        -1130,
        "Illegal characters found in parameter 'limit'.",
    )


# --- trades -------------------------------------------------------------------------------


def test_trades_are_the_newest_oldest_first_with_binances_fields(stack: Stack) -> None:
    seed_trades(stack, BTC, TRADES)
    assert get(stack, "/fapi/v1/trades?symbol=BTCUSDT").json() == [
        {
            "id": 7,
            "price": "50000.0",
            "qty": "0.010",
            "quoteQty": "500",
            "time": NOW_MS - 1_200_000,
            "isBuyerMaker": False,
        },
        {
            "id": 8,
            "price": "50001.0",
            "qty": "0.002",
            "quoteQty": "100.002",
            "time": NOW_MS - 600_000,
            "isBuyerMaker": True,
        },
        {
            "id": 9,
            "price": "49999.0",
            "qty": "1.000",
            "quoteQty": "49999",
            "time": NOW_MS,
            "isBuyerMaker": False,
        },
    ]
    assert [t["id"] for t in get(stack, "/fapi/v1/trades?symbol=BTCUSDT&limit=2").json()] == [8, 9]
    assert get(stack, "/fapi/v1/trades?symbol=ETHUSDT").json() == []


@pytest.mark.parametrize("route", ["/fapi/v1/trades", "/fapi/v1/aggTrades"])
@pytest.mark.parametrize("limit", ["0", "1001", "-1"])
def test_trades_take_a_limit_of_1_to_1000(stack: Stack, route: str, limit: str) -> None:
    refused(get(stack, f"{route}?symbol=BTCUSDT&limit={limit}"), 400, -1130, LIMIT_NOT_VALID)
    assert get(stack, f"{route}?symbol=BTCUSDT&limit=1000").status_code == 200


def aggregated(stack: Stack, query: str) -> list[int]:
    reply = get(stack, f"/fapi/v1/aggTrades?symbol=BTCUSDT{query}")
    assert reply.status_code == 200, reply.text
    return [t["a"] for t in reply.json()]


def test_agg_trades_are_one_aggregate_per_trade(stack: Stack) -> None:
    seed_trades(stack, BTC, TRADES)
    assert get(stack, "/fapi/v1/aggTrades?symbol=BTCUSDT&limit=2").json() == [
        {"a": 8, "p": "50001.0", "q": "0.002", "f": 8, "l": 8, "T": NOW_MS - 600_000, "m": True},
        {"a": 9, "p": "49999.0", "q": "1.000", "f": 9, "l": 9, "T": NOW_MS, "m": False},
    ]


def test_agg_trades_filter_by_id_and_time_as_binance_does(stack: Stack) -> None:
    seed_trades(stack, BTC, TRADES)
    assert aggregated(stack, "") == [7, 8, 9]
    assert aggregated(stack, "&fromId=8") == [8, 9]  # inclusive
    assert aggregated(stack, "&fromId=7&limit=2") == [7, 8]  # the first after fromId
    assert aggregated(stack, "&fromId=10") == []
    assert aggregated(stack, f"&startTime={NOW_MS - 600_000}") == [8, 9]  # inclusive
    assert aggregated(stack, f"&startTime={NOW_MS - 1_200_000}&limit=1") == [7]
    assert aggregated(stack, f"&endTime={NOW_MS - 600_000}") == [7, 8]  # inclusive
    assert aggregated(stack, f"&endTime={NOW_MS}&limit=1") == [9]  # the last before endTime
    assert aggregated(stack, f"&startTime={NOW_MS - 900_000}&endTime={NOW_MS - 1}") == [8]
    assert aggregated(stack, f"&startTime={NOW_MS - 3_600_000}&endTime={NOW_MS}") == [7, 8, 9]
    assert aggregated(stack, f"&startTime={NOW_MS}&endTime={NOW_MS - 1}") == []


def test_agg_trades_refuse_more_than_an_hour_or_a_bad_number(stack: Stack) -> None:
    refused(
        get(stack, f"/fapi/v1/aggTrades?symbol=BTCUSDT&startTime=0&endTime={3_600_001}"),
        400,
        -1127,
        "More than 1 hours between startTime and endTime.",
    )
    for name in ("fromId", "startTime", "endTime"):
        refused(
            get(stack, f"/fapi/v1/aggTrades?symbol=BTCUSDT&{name}=soon"),
            400,
            -1130,
            f"Illegal characters found in parameter '{name}'.",
        )


# --- tickers ------------------------------------------------------------------------------


def seed_mark(stack: Stack) -> None:
    stack.seed_hash(
        keys.mark_key(BTC), {"mark": 510_000, "index": 509_990, "ts": 1_700_000_000_123_456_789}
    )
    stack.seed_hash(
        keys.funding_key(BTC), {"rate": -2_500, "next_funding_time": 1_700_006_400 * 10**9}
    )


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_the_price_ticker_is_the_last_trade_then_the_mark_then_zero(
    stack: Stack, version: str
) -> None:
    path = f"/fapi/{version}/ticker/price"
    zero = {"symbol": "BTCUSDT", "price": "0.0", "time": 0}
    assert get(stack, f"{path}?symbol=BTCUSDT").json() == zero
    seed_mark(stack)
    at_mark = {"symbol": "BTCUSDT", "price": "51000.0", "time": 1_700_000_000_123}
    assert get(stack, f"{path}?symbol=BTCUSDT").json() == at_mark
    seed_trades(stack, BTC, TRADES)
    last = {"symbol": "BTCUSDT", "price": "49999.0", "time": NOW_MS}
    assert get(stack, f"{path}?symbol=BTCUSDT").json() == last
    assert get(stack, path).json() == [
        last,
        {"symbol": "ETHUSDT", "price": "0.00", "time": 0},
        {"symbol": "SOLUSDT", "price": "0.00", "time": 0},
    ]


def test_the_book_ticker_is_the_best_bid_and_ask(stack: Stack) -> None:
    seed_book(stack, BTC, 42, [[500_000, 10], [499_990, 2500]], [[500_010, 5]])
    seed_book(stack, "ETH-PERP", 9, [], [[300_000, 1]])
    btc = {
        "lastUpdateId": 42,
        "symbol": "BTCUSDT",
        "bidPrice": "50000.0",
        "bidQty": "0.010",
        "askPrice": "50001.0",
        "askQty": "0.005",
        "time": NOW_MS,
    }
    assert get(stack, "/fapi/v1/ticker/bookTicker?symbol=BTCUSDT").json() == btc
    assert get(stack, "/fapi/v1/ticker/bookTicker").json() == [
        btc,
        {
            "lastUpdateId": 9,
            "symbol": "ETHUSDT",
            "bidPrice": "0.00",
            "bidQty": "0.000",
            "askPrice": "3000.00",
            "askQty": "0.001",
            "time": NOW_MS,
        },
        {
            "lastUpdateId": 0,
            "symbol": "SOLUSDT",
            "bidPrice": "0.00",
            "bidQty": "0.00",
            "askPrice": "0.00",
            "askQty": "0.00",
            "time": NOW_MS,
        },
    ]


def test_the_premium_index_is_the_mark_the_index_and_funding(stack: Stack) -> None:
    seed_mark(stack)
    btc = {
        "symbol": "BTCUSDT",
        "markPrice": "51000.0",
        "indexPrice": "50999.0",
        "estimatedSettlePrice": "50999.0",
        "lastFundingRate": "-0.000025",
        "interestRate": "0.0001",
        "nextFundingTime": 1_700_006_400_000,
        "time": 1_700_000_000_123,
    }
    assert get(stack, "/fapi/v1/premiumIndex?symbol=BTCUSDT").json() == btc
    listed = get(stack, "/fapi/v1/premiumIndex").json()
    assert listed[0] == btc
    assert listed[2] == {
        "symbol": "SOLUSDT",
        "markPrice": "0.00",
        "indexPrice": "0.00",
        "estimatedSettlePrice": "0.00",
        "lastFundingRate": "0",
        "interestRate": "0.0001",
        "nextFundingTime": 0,
        "time": 0,
    }


PARAMS = ("symbol", "limit", "fromId", "startTime", "endTime")
VALUES = st.one_of(
    st.sampled_from(["BTCUSDT", "ethusdt", "", "5", "500", "-1", "1e3", "0x10", " 5", "9" * 30]),
    st.integers(-(2**70), 2**70).map(str),
    st.text(max_size=40),
)


def test_no_query_to_a_public_endpoint_gets_a_5xx() -> None:
    with started() as stack:
        seed_trades(stack, BTC, TRADES)
        seed_book(stack, BTC, 42, [[500_000, 10]], [[500_010, 5]])

        @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
        @given(
            route=st.sampled_from(SYMBOL_ROUTES),
            params=st.dictionaries(st.sampled_from(PARAMS), VALUES, max_size=4),
        )
        def answers(route: str, params: dict[str, str]) -> None:
            reply = stack.client.get(route, params=params)
            assert reply.status_code in (200, 400), (route, params, reply.text)
            if reply.status_code == 400:
                answer = reply.json()
                assert set(answer) == {"code", "msg"} and answer["code"] < 0, answer

        answers()


# --- the wallet calls of ccxt's load_markets ----------------------------------------------


def test_the_coins_are_usdt_for_a_signed_caller_only(stack: Stack) -> None:
    key, secret = stack.users.create_api_key(1, "bot")
    query = f"timestamp={time.time_ns() // 1_000_000}"
    signed = f"/sapi/v1/capital/config/getall?{query}&signature={sign(secret, query)}"
    [usdt] = stack.client.get(signed, headers={"X-MBX-APIKEY": key.key}).json()
    assert (usdt["coin"], usdt["trading"], usdt["isLegalMoney"]) == ("USDT", True, False)
    assert usdt["networkList"] == []
    refused(stack.client.get(signed), 401, -2014, "API-key format invalid.")  # no key: no answer
    assert get(stack, "/sapi/v1/margin/allPairs").json() == []


# --- ccxt itself, over HTTP into the app --------------------------------------------------


def test_ccxt_loads_markets_with_credentials_and_reads_the_market_data(stack: Stack) -> None:
    key, secret = stack.users.create_api_key(1, "bot")
    ex = ccxt.binanceusdm(
        {
            "apiKey": key.key,
            "secret": secret,
            "urls": {"api": gateway_urls("http://gateway")},
            "enableRateLimit": False,
        }
    )
    session = InProcess(stack)
    ex.session = session
    seed_book(stack, BTC, 42, [[500_000, 10]], [[500_010, 5]])
    seed_trades(stack, BTC, TRADES)
    seed_mark(stack)

    markets = ex.load_markets()
    assert markets["BTC/USDT:USDT"]["precision"]["price"] == 0.1
    assert ex.currencies["USDT"]["active"] is True
    wallet = {"GET /sapi/v1/capital/config/getall", "GET /sapi/v1/margin/allPairs"}
    assert wallet <= set(session.seen)  # the first signed, with the key

    book = ex.fetch_order_book("BTC/USDT:USDT", 5)
    assert (book["bids"], book["asks"], book["nonce"]) == (
        [[50000.0, 0.01]],
        [[50001.0, 0.005]],
        42,
    )
    trades = ex.fetch_trades("BTC/USDT:USDT")
    assert [(t["id"], t["price"], t["side"]) for t in trades] == [
        ("7", 50000.0, "buy"),
        ("8", 50001.0, "sell"),
        ("9", 49999.0, "buy"),
    ]
    assert ex.fetch_last_prices()["BTC/USDT:USDT"]["price"] == 49999.0
    assert ex.fetch_bids_asks(["BTC/USDT:USDT"])["BTC/USDT:USDT"]["bid"] == 50000.0
    funding = ex.fetch_funding_rate("BTC/USDT:USDT")
    assert (funding["markPrice"], funding["fundingRate"]) == (51000.0, -0.000025)
    assert funding["fundingTimestamp"] == 1_700_006_400_000
    assert ex.fetch_time() == NOW_MS
    with pytest.raises(ccxt.BadSymbol):
        ex.fapiPublicGetDepth({"symbol": "NOPEUSDT"})
