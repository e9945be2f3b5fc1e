"""The Binance USDⓈ-M face, driven by ccxt itself (its ``binanceusdm`` client, sync and async)
with only ``urls.api`` pointed at the gateway: two users trade against each other, and what
ccxt reads agrees with the original API's reads of the same users (docs/BINANCE-API.md)."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import io
import time
from decimal import Decimal
from pathlib import Path

import ccxt
import ccxt.async_support as ccxt_async
import ccxt.pro as ccxt_pro
import pytest

from libs.bus import Outgoing
from libs.bus.kafka import KafkaBus
from libs.messages import IndexPriceTick, encode
from libs.symbols import get_symbol
from libs.topics import Topics, symbol_partition
from tests.ccxt_gateway import gateway_urls
from tests.e2e.conftest import Trader

SYMBOL = "SOL/USDT:USDT"  # SOL-PERP: away from the other e2e tests' books
PRICE = 100.0  # the README test below gives SOL-PERP a mark of 100: test_security trades there
AMOUNT = 0.5


def keys(trader: Trader) -> dict[str, str]:
    made = trader.post("/api_keys", {"label": "ccxt"})
    assert made.status_code == 200, made.text
    return {"apiKey": made.json()["api_key"], "secret": made.json()["secret"]}


def client(stack, trader: Trader, kind=ccxt.binanceusdm, **config):
    return kind({**keys(trader), "urls": {"api": gateway_urls(stack.url, kind)}, **config})


def eventually(read, ok, seconds: float = 10):
    """What ``read()`` gives once ``ok`` of it holds: public data (the book, trades) reaches the
    read model a moment after the order's answer; only the user's own reads wait for it."""
    deadline = time.monotonic() + seconds
    while not ok(seen := read()):
        assert time.monotonic() < deadline, seen
        time.sleep(0.05)
    return seen


class Blocking:
    """ccxt's async client behind the sync client's calls: the same test runs against both.
    Every call runs to its end on the client's own event loop."""

    def __init__(self, client) -> None:
        object.__setattr__(self, "client", client)
        object.__setattr__(self, "loop", asyncio.new_event_loop())

    def __setattr__(self, name: str, value) -> None:
        setattr(self.client, name, value)  # the client's settings (its secret, say)

    def __getattr__(self, name: str):
        found = getattr(self.client, name)
        if not callable(found):
            return found

        def call(*args, **kwargs):
            result = found(*args, **kwargs)  # the implicit API methods return coroutines too
            return self.loop.run_until_complete(result) if inspect.isawaitable(result) else result

        return call

    def close(self) -> None:
        self.loop.run_until_complete(self.client.close())
        self.loop.close()


@pytest.fixture(params=["sync", "async"])
def connect(request, stack):
    """Make a user's ccxt client: the sync one, or the async one run to the end of each call."""
    made: list[Blocking] = []

    def make(user: Trader):
        if request.param == "sync":
            return client(stack, user)
        made.append(Blocking(client(stack, user, kind=ccxt_async.binanceusdm)))
        return made[-1]

    yield make
    for used in made:
        used.close()


@pytest.fixture
def pair(connect, trader):
    """A maker and a taker, each with ccxt and the original API's client."""
    maker, taker = trader(deposit="10000"), trader(deposit="10000")
    yield (maker, connect(maker)), (taker, connect(taker))
    for user in (maker, taker):
        user.post("/cancel_all", {"symbol": "SOL-PERP"})


def test_markets_time_and_a_bad_symbol(connect, trader):
    ex = connect(trader())
    markets = ex.load_markets()
    market = markets[SYMBOL]
    assert (market["id"], market["linear"], market["contract"]) == ("SOLUSDT", True, True)
    assert market["precision"]["price"] == 0.01 and market["precision"]["amount"] == 0.01
    assert market["limits"]["amount"]["min"] == 0.01
    assert abs(ex.fetch_time() - time.time() * 1000) < 5000
    with pytest.raises(ccxt.BadSymbol):
        ex.fapiPublicGetDepth({"symbol": "NOPEUSDT"})


def test_two_users_trade_and_ccxt_reads_what_the_original_api_reads(pair):
    (maker, mx), (taker, tx) = pair
    mx.load_markets()
    tx.load_markets()
    assert mx.set_leverage(10, SYMBOL)["leverage"] in (10, "10")
    rest = mx.create_order(SYMBOL, "limit", "sell", AMOUNT, PRICE)
    assert (rest["status"], rest["filled"]) == ("open", 0.0)
    eventually(lambda: tx.fetch_order_book(SYMBOL), lambda book: [PRICE, AMOUNT] in book["asks"])
    taken = tx.create_order(SYMBOL, "limit", "buy", AMOUNT, PRICE, {"timeInForce": "IOC"})
    assert (taken["status"], taken["filled"]) == ("closed", AMOUNT)
    assert mx.fetch_order(rest["id"], SYMBOL)["status"] == "closed"

    trades = eventually(lambda: tx.fetch_trades(SYMBOL), bool)
    assert trades[-1]["price"] == PRICE
    assert tx.fetch_ticker(SYMBOL)["last"] == PRICE
    assert tx.fetch_tickers([SYMBOL])[SYMBOL]["last"] == PRICE
    assert tx.fetch_ohlcv(SYMBOL, "1m")[-1][4] == PRICE  # the close of the last minute
    assert tx.fetch_funding_rate(SYMBOL)["symbol"] == SYMBOL
    # a market order takes what rests: the maker's second sell
    mx.create_order(SYMBOL, "limit", "sell", AMOUNT, PRICE + 1)
    eventually(lambda: tx.fetch_order_book(SYMBOL), lambda book: book["asks"])
    market = tx.create_order(SYMBOL, "market", "buy", AMOUNT)
    assert (market["status"], market["filled"]) == ("closed", AMOUNT)
    mine = tx.fetch_my_trades(SYMBOL)
    assert mine[-1]["order"] == market["id"]
    for user, ex in ((maker, mx), (taker, tx)):  # fills: ccxt's and the original API's agree
        fills = {f["trade_id"]: f for f in user.get("/fills").json() if f["symbol"] == "SOL-PERP"}
        trades = ex.fetch_my_trades(SYMBOL)
        assert {int(t["id"]) for t in trades} == set(fills)
        for t in trades:
            fill = fills[int(t["id"])]
            assert Decimal(str(t["price"])) == Decimal(fill["price"])
            assert Decimal(str(t["amount"])) == Decimal(fill["quantity"])
            assert Decimal(str(t["fee"]["cost"])) == Decimal(fill["fee"])

    for user, ex, side in ((maker, mx, "short"), (taker, tx, "long")):
        [position] = [p for p in ex.fetch_positions() if p["symbol"] == SYMBOL]
        [original] = [p for p in user.get("/positions").json() if p["symbol"] == "SOL-PERP"]
        assert position["side"] == side
        assert Decimal(str(position["contracts"])) == 2 * Decimal(str(AMOUNT))
        assert Decimal(str(position["contracts"])) == abs(Decimal(original["size"]))
        assert Decimal(str(position["entryPrice"])) == Decimal(original["entry_price"])
        balance = ex.fetch_balance()["USDT"]
        account = user.get("/account").json()
        assert Decimal(str(balance["free"])) == Decimal(account["available"])
        assert Decimal(str(balance["total"])) == Decimal(account["balance"]) + Decimal(
            account["unrealised_pnl"]
        )


def test_order_kinds_reads_and_cancels(pair):
    (_maker, mx), (_taker, tx) = pair
    mx.load_markets()
    tx.load_markets()
    far = mx.create_order(SYMBOL, "limit", "buy", AMOUNT, PRICE - 5)
    post_only = mx.create_order(SYMBOL, "limit", "buy", AMOUNT, PRICE - 6, {"postOnly": True})
    assert {far["status"], post_only["status"]} == {"open"}
    opened = {o["id"] for o in mx.fetch_open_orders(SYMBOL)}
    assert {far["id"], post_only["id"]} <= opened
    cancelled = mx.cancel_order(far["id"], SYMBOL)
    assert cancelled["status"] == "canceled"
    assert mx.fetch_order(far["id"], SYMBOL)["status"] == "canceled"
    mx.cancel_all_orders(SYMBOL)
    assert mx.fetch_open_orders(SYMBOL) == []
    history = {o["id"]: o["status"] for o in mx.fetch_orders(SYMBOL)}
    assert history[far["id"]] == history[post_only["id"]] == "canceled"
    # a reduce-only order with no position to reduce: Binance's -2022 (ccxt maps it to
    # InvalidOrder on binance.com's URL; away from it, to ExchangeError, InvalidOrder's base)
    with pytest.raises(ccxt.ExchangeError, match="-2022"):
        tx.create_order(SYMBOL, "limit", "sell", AMOUNT, PRICE + 5, {"reduceOnly": True})


def test_conditional_orders_and_edits(pair):
    """Stop-market and take-profit-market through Binance's algo endpoint, and edit_order."""
    (_maker, mx), (taker, tx) = pair
    mx.load_markets()
    tx.load_markets()
    # a position to protect: the taker buys from the maker
    mx.create_order(SYMBOL, "limit", "sell", AMOUNT, PRICE)
    tx.create_order(SYMBOL, "limit", "buy", AMOUNT, PRICE, {"timeInForce": "IOC"})
    reducing = tx.create_order(SYMBOL, "limit", "sell", AMOUNT, PRICE + 3, {"reduceOnly": True})
    assert (reducing["status"], reducing["reduceOnly"]) == ("open", True)  # it reduces: it rests
    tx.cancel_order(reducing["id"], SYMBOL)
    stop = tx.create_order(SYMBOL, "market", "sell", AMOUNT, None, {"stopLossPrice": PRICE - 8})
    take = tx.create_order(SYMBOL, "market", "sell", AMOUNT, None, {"takeProfitPrice": PRICE + 8})
    waiting = {o["id"] for o in tx.fetch_open_orders(SYMBOL, params={"trigger": True})}
    assert {stop["id"], take["id"]} <= waiting
    assert not waiting & {o["id"] for o in tx.fetch_open_orders(SYMBOL)}  # as Binance: apart
    assert tx.fetch_order(stop["id"], SYMBOL, {"trigger": True})["status"] == "open"
    tx.cancel_order(stop["id"], SYMBOL, {"trigger": True})
    assert tx.fetch_order(stop["id"], SYMBOL, {"trigger": True})["status"] == "canceled"
    tx.cancel_all_orders(SYMBOL, {"trigger": True})
    assert tx.fetch_open_orders(SYMBOL, params={"trigger": True}) == []
    # edit_order: a resting limit moved and resized, through Binance's PUT /fapi/v1/order
    rest = mx.create_order(SYMBOL, "limit", "buy", AMOUNT, PRICE - 5)
    edited = mx.edit_order(rest["id"], SYMBOL, "limit", "buy", AMOUNT * 2, PRICE - 4)
    assert (edited["id"], edited["price"], edited["amount"]) == (rest["id"], PRICE - 4, AMOUNT * 2)
    assert taker.get("/positions").json()  # the original API sees the same position
    mx.cancel_order(rest["id"], SYMBOL)


def test_errors_map_to_ccxts_exceptions(connect, trader):
    ex = connect(trader(deposit="100"))
    ex.load_markets()
    with pytest.raises(ccxt.InsufficientFunds):
        ex.create_order(SYMBOL, "limit", "buy", 1000, PRICE)
    with pytest.raises(ccxt.OrderNotFound):
        ex.cancel_order("123456789", SYMBOL)
    with pytest.raises(ccxt.OrderNotFound):
        ex.fetch_order("123456789", SYMBOL)
    with pytest.raises(ccxt.InvalidOrder):  # off the 0.01 grid: ccxt would round it, so raw
        ex.fapiPrivatePostOrder(
            {
                "symbol": "SOLUSDT",
                "side": "BUY",
                "type": "LIMIT",
                "quantity": "0.5",
                "price": "100.005",
                "timeInForce": "GTC",
            }
        )
    forged = connect(trader(deposit=""))
    forged.secret = "not the secret"
    with pytest.raises(ccxt.AuthenticationError):
        forged.fetch_balance()


def test_the_async_client_too(stack, trader):
    async def run() -> None:
        ex = client(stack, trader(deposit="1000"), kind=ccxt_async.binanceusdm)
        try:
            await ex.load_markets()
            order = await ex.create_order(SYMBOL, "limit", "buy", AMOUNT, PRICE - 7)
            assert order["status"] == "open"
            book = await ex.fetch_order_book(SYMBOL)
            while [PRICE - 7, AMOUNT] not in book["bids"]:  # public: a moment after the answer
                await asyncio.sleep(0.05)
                book = await ex.fetch_order_book(SYMBOL)
            assert (await ex.cancel_order(order["id"], SYMBOL))["status"] == "canceled"
            assert (await ex.fetch_balance())["USDT"]["used"] == 0
        finally:
            await ex.close()

    asyncio.run(run())


def test_ccxt_pro_watches_the_book_trades_candles_orders_balance_and_positions(stack, trader):
    async def soon(awaitable):
        return await asyncio.wait_for(awaitable, 20)

    async def run() -> None:
        maker = client(stack, trader(deposit="10000"), kind=ccxt_pro.binanceusdm)
        taker = client(stack, trader(deposit="10000"), kind=ccxt_pro.binanceusdm)
        price = PRICE + 2
        try:
            await maker.load_markets()
            await taker.load_markets()
            await soon(taker.watch_order_book(SYMBOL))  # subscribed, in sync with the snapshot
            orders = asyncio.create_task(maker.watch_orders(SYMBOL))
            trades = asyncio.create_task(taker.watch_trades(SYMBOL))
            candles = asyncio.create_task(taker.watch_ohlcv(SYMBOL, "1m"))
            balance = asyncio.create_task(taker.watch_balance())
            positions = asyncio.create_task(taker.watch_positions([SYMBOL]))
            await asyncio.sleep(1.5)  # every subscription live before anything happens
            rest = await maker.create_order(SYMBOL, "limit", "sell", AMOUNT, price)
            watched = [o for o in await soon(orders) if o["id"] == rest["id"]]
            assert watched and watched[-1]["status"] == "open"
            # ccxt keeps the watched book in sync through the diffs as they come
            deadline = time.monotonic() + 20
            while [price, AMOUNT] not in (book := taker.orderbooks[SYMBOL])["asks"]:
                assert time.monotonic() < deadline, book
                await asyncio.sleep(0.05)
            quiet = await taker.fetch_order_book(SYMBOL)  # nothing moves: the two agree
            assert (book["asks"][:20], book["bids"][:20]) == (
                quiet["asks"][:20],
                quiet["bids"][:20],
            )
            await taker.create_order(SYMBOL, "limit", "buy", AMOUNT, price, {"timeInForce": "IOC"})
            assert (await soon(trades))[-1]["price"] == price
            await soon(candles)  # the first may be the candle of an earlier trade
            deadline = time.monotonic() + 20
            while (candle := taker.ohlcvs[SYMBOL]["1m"][-1])[4] != price:  # the close
                assert time.monotonic() < deadline, candle
                await asyncio.sleep(0.05)
            assert "USDT" in await soon(balance)
            await soon(positions)  # the first ACCOUNT_UPDATE may tell only the fee's balance
            deadline = time.monotonic() + 20
            while not (
                held := [
                    p for cache in taker.positions.values() for p in cache if p["symbol"] == SYMBOL
                ]
            ):
                assert time.monotonic() < deadline, "no position watched"
                await asyncio.sleep(0.05)
            assert held[-1]["contracts"] == AMOUNT
        finally:
            await maker.close()
            await taker.close()

    asyncio.run(run())


def test_the_readmes_example_works_as_printed(stack):
    """The README's ccxt block, run as printed but for the gateway's address, after an index
    tick gave SOL-PERP a mark (``make up`` runs an index feed; this stack does not)."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = readme.split("<!-- ccxt-example", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    assert 'B = "http://127.0.0.1:8000"' in block
    tick = IndexPriceTick(
        symbol="SOL-PERP", price=get_symbol("SOL-PERP").price_to_ticks("100"), ts=time.time_ns()
    )
    topic = Topics(stack.prefix).index_prices
    bus = KafkaBus(stack.bootstrap)
    producer = bus.producer()
    producer.produce(Outgoing(topic, encode(tick), b"SOL-PERP", symbol_partition("SOL-PERP")))
    producer.flush(10)
    probe = ccxt.binanceusdm({"urls": {"api": gateway_urls(stack.url)}})
    deadline = time.monotonic() + 30
    while not probe.fetch_funding_rate(SYMBOL)["markPrice"]:
        assert time.monotonic() < deadline, "no mark for SOL-PERP"
        time.sleep(0.2)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(block.replace("http://127.0.0.1:8000", stack.url), {})
    order, balance = printed.getvalue().splitlines()
    assert "'status': 'open'" in order and "'free'" in balance
