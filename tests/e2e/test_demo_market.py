"""The demo market on an exchange of its own: `python -m services.demo_market` as a process,
an outside bot of the stack's gateway. Within a bounded time every symbol has a two-sided book
and trades, and the books stay two-sided from then on; every bot's position, read through the
API with the bot's own credentials, stays within its limit (small here, so the takers meet
it); and after the gateway restarts under it the market comes back by itself."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from decimal import Decimal

import httpx
import pytest

from tests.e2e.stack import Stack, demo_market, running

BOTS = ["maker", "taker-1", "taker-2", "taker-3"]
MAX_POSITION = Decimal(2400)  # USDT, the maker's: each taker's is a sixth, a few orders reach half
PASSWORD = "demo-market-e2e-password"
SYMBOLS = {"BTCUSDT": "BTC-PERP", "ETHUSDT": "ETH-PERP", "SOLUSDT": "SOL-PERP"}


class Demo:
    """The demo market process, and the test's view of its bots through the API."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.process = demo_market(
            stack,
            DEMO_SYMBOLS=",".join(SYMBOLS.values()),
            DEMO_PASSWORD=PASSWORD,
            DEMO_MAX_POSITION=str(MAX_POSITION),
            # takers four times as busy as by default, a quote level two taker orders
            DEMO_ORDER_NOTIONAL="260",
            DEMO_TAKER_NOTIONAL="120",
            DEMO_POLL_SECONDS="0.5",
            DEMO_TAKER_SECONDS="1.0",
            DEMO_RATE="40",
        )
        self.prefix = self.process.env["DEMO_USER_PREFIX"]
        self.api = httpx.Client(base_url=stack.url, timeout=10)
        self.tokens: dict[str, str] = {}

    def email(self, bot: str) -> str:
        return f"{self.prefix}-{bot}@example.com"

    def as_bot(self, bot: str, method: str, path: str, **kw) -> httpx.Response:
        """A call of the original API with the bot's own session (signed in on first use)."""
        if bot not in self.tokens:
            me = {"email": self.email(bot), "password": PASSWORD}
            signed_in = self.api.post("/signin", json=me)
            assert signed_in.status_code == 200, signed_in.text
            self.tokens[bot] = signed_in.json()["token"]
        headers = {"Authorization": f"Bearer {self.tokens[bot]}"}
        return self.api.request(method, path, headers=headers, **kw)

    def positions(self, bot: str) -> dict[str, Decimal]:
        answer = self.as_bot(bot, "GET", "/positions")
        assert answer.status_code == 200, answer.text
        return {p["symbol"]: Decimal(p["size"]) for p in answer.json()}

    def limits(self) -> dict[tuple[str, str], Decimal]:
        """Each bot's position limit on each symbol (base units), as the process states it."""
        found = {}
        for line in self.process.metrics().splitlines():
            if line.startswith("demo_position_limit{"):
                bot = line.split('bot="', 1)[1].split('"', 1)[0]
                symbol = line.split('symbol="', 1)[1].split('"', 1)[0]
                found[(bot, symbol)] = Decimal(line.split()[-1])
        return found

    def book(self, symbol: str) -> dict:
        answer = self.api.get("/fapi/v1/depth", params={"symbol": symbol, "limit": 5})
        assert answer.status_code == 200, answer.text
        return answer.json()

    def last_trade(self, symbol: str) -> dict:
        answer = self.api.get("/fapi/v1/trades", params={"symbol": symbol, "limit": 1})
        assert answer.status_code == 200, answer.text
        return answer.json()[-1] if answer.json() else {"id": 0, "price": "0"}

    def last_trade_id(self, symbol: str) -> int:
        return self.last_trade(symbol)["id"]

    def close(self) -> None:
        self.process.stop()  # SIGTERM: the maker cancels its quotes on the way out
        for bot in self.tokens:
            for symbol in SYMBOLS.values():
                self.as_bot(bot, "POST", "/cancel_all", json={"symbol": symbol})
        self.api.close()


@pytest.fixture(scope="module")
def own_stack(kafka_bootstrap: str, database_url: str, redis_url: str) -> Iterator[Stack]:
    """An exchange of this module's own: the session's carries other tests' resting orders
    at prices of their own, which a market-wide check (every book two-sided) would read."""
    with running(Stack(kafka_bootstrap, database_url, redis_url, redis_db=13)) as exchange:
        yield exchange


@pytest.fixture
def demo(own_stack: Stack) -> Iterator[Demo]:
    market = Demo(own_stack)
    market.process.start()
    try:
        yield market
    finally:
        market.close()


def eventually(what: str, check: Callable[[], bool], seconds: float, watch: Demo) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert watch.process.alive(), watch.process.tail()
        assert time.monotonic() < deadline, f"{what} not within {seconds}s: {watch.process.tail()}"
        time.sleep(0.25)


def test_the_demo_market_quotes_trades_keeps_its_limits_and_survives_a_gateway_restart(
    own_stack: Stack, demo: Demo
) -> None:
    started = {s: demo.last_trade_id(s) for s in SYMBOLS}

    def two_sided() -> bool:
        return all(demo.book(s)["bids"] and demo.book(s)["asks"] for s in SYMBOLS)

    def traded_since(before: dict[str, int]) -> Callable[[], bool]:
        return lambda: all(demo.last_trade_id(s) > before[s] for s in SYMBOLS)

    eventually("a two-sided book on every symbol", two_sided, 45, demo)
    eventually("trades on every symbol", traded_since(started), 45, demo)

    eventually("every bot's limit stated", lambda: len(demo.limits()) == 12, 30, demo)
    limits = demo.limits()
    assert {symbol for _, symbol in limits} == set(SYMBOLS.values())
    for binance, symbol in SYMBOLS.items():
        price = Decimal(demo.last_trade(binance)["price"])
        # DEMO_MAX_POSITION at the price the bots started at, as a quantity; a taker a sixth
        assert 0 < limits[("maker", symbol)] * price <= MAX_POSITION * Decimal("1.1"), limits
        for taker in BOTS[1:]:
            assert limits[(taker, symbol)] <= limits[("maker", symbol)] / 6, limits

    reached = Decimal(0)  # the largest share of its limit any bot's position reached

    def within_limits(seconds: float) -> None:
        """Positions within their limits, and every book two-sided, all along."""
        nonlocal reached
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            for bot in BOTS:
                for symbol, size in demo.positions(bot).items():
                    limit = limits[(bot, symbol)]
                    assert abs(size) <= limit, (bot, symbol, size, limit)
                    if limit:
                        reached = max(reached, abs(size) / limit)
            assert two_sided(), {s: demo.book(s) for s in SYMBOLS}
            assert demo.process.alive(), demo.process.tail()
            time.sleep(0.3)

    within_limits(20)

    gateway = own_stack.services["gateway"]
    gateway.stop()
    time.sleep(3)  # the bots meet a closed port for a while
    gateway.start()
    after_restart = {s: demo.last_trade_id(s) for s in SYMBOLS}
    eventually("trades after the gateway restart", traded_since(after_restart), 45, demo)
    eventually("a two-sided book after the gateway restart", two_sided, 30, demo)
    within_limits(10)

    assert reached >= Decimal("0.5"), f"no bot came near its limit ({reached:.2f} of it)"
    log = demo.process.tail(400)
    assert "retrying" in log and "answers again" in log, log
