"""The trading page (services/gateway/web) in a real Chromium against the real stack, with the
demo market (``python -m services.demo_market``) quoting and trading BTC-PERP beside it.

One page for the module, its steps in order, as a user would go: sign up, deposit, watch the
book and the trades move, rest a limit order and cancel it, take liquidity, place a stop, get
a rejection, then live through a gateway restart. Screenshots (1440x900, full page) go to
docs/screenshots/. Chromium is Debian's (/usr/bin/chromium, ``make deps`` installs it):
Playwright downloads no browser, and a missing one fails the module.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.e2e.stack import Stack, index_feed
from tests.e2e.stack import demo_market as demo_market_process
from tests.processes import ROOT, ServiceProcess

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = ROOT / "docs" / "screenshots"
SYMBOL = "BTC-PERP"
TICK = Decimal("0.1")
WAIT_MS = 20_000
EMPTY = "\u2013"  # what the page shows for a figure it does not have

expect.set_options(timeout=WAIT_MS)


@pytest.fixture(scope="module")
def demo_market(stack: Stack) -> Iterator[ServiceProcess]:
    """The index feed, as `make up` runs it (the page's mark and index, the demo market's
    reference), and the demo market on the stack's gateway: quotes on both sides of BTC-PERP,
    and takers trading about twice a second (three, each every 1.5 s on average)."""
    feed = index_feed(stack)
    market = demo_market_process(
        stack,
        DEMO_SYMBOLS=SYMBOL,
        DEMO_TAKER_SECONDS="1.5",
        DEMO_POLL_SECONDS="0.5",
        DEMO_RATE="40",
        DEMO_BURST="20",
    )
    feed.start()
    try:
        market.start()
        yield market
    finally:
        market.stop()
        feed.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert CHROMIUM.exists(), (
        f"{CHROMIUM} is missing: the trading page's tests need Debian's chromium "
        "(`make browser` installs it, and `make test` runs that first)"
    )
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="module")
def page(browser: Browser, stack: Stack, demo_market: ServiceProcess) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    opened = context.new_page()
    problems: list[str] = []
    opened.on("pageerror", lambda error: problems.append(str(error)))
    opened.goto(stack.url + "/")
    yield opened
    context.close()
    assert not problems, f"the page threw: {problems}"


@pytest.fixture(scope="module")
def me() -> dict[str, str]:
    return {
        "email": f"page-{uuid.uuid4().hex[:10]}@example.com",
        "password": "correct horse battery",
    }


@pytest.fixture(scope="module")
def rest(stack: Stack) -> Iterator[httpx.Client]:
    """The API beside the page."""
    with httpx.Client(base_url=stack.url, timeout=10) as client:
        yield client


def bearer(rest: httpx.Client, me: dict[str, str]) -> dict[str, str]:
    token = rest.post("/signin", json=me).json()["token"]
    return {"Authorization": f"Bearer {token}"}


def screenshot(page: Page, name: str) -> None:
    """Take a full-page screenshot once the ladder shows both sides (the demo maker re-quotes)."""
    expect(page.get_by_test_id("book-ask-row").first).to_be_visible()
    expect(page.get_by_test_id("book-bid-row").first).to_be_visible()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / name), full_page=True)


def place(
    page: Page,
    side: str,
    order_type: str,
    quantity: str,
    *,
    tif: str = "GTC",
    reduce_only: bool = False,
    **fields: str,
) -> None:
    """Fill in the order form and send it."""
    page.get_by_test_id(f"side-{side.lower()}").check()
    page.get_by_test_id("order-type").select_option(order_type)
    for name, value in fields.items():
        page.get_by_test_id(f"order-{name.replace('_', '-')}").fill(value)
    page.get_by_test_id("order-quantity").fill(quantity)
    if page.get_by_test_id("order-tif").is_visible():
        page.get_by_test_id("order-tif").select_option(tif)
    page.get_by_test_id("order-reduce-only").set_checked(reduce_only)
    page.get_by_test_id("place-order").click()


def placed(page: Page, status: str) -> int:
    """Wait for the order form's answer; return the order's id."""
    result = page.get_by_test_id("order-result")
    expect(result).to_have_attribute("data-status", status)
    return int(result.get_attribute("data-order-id") or 0)


def take(page: Page, side: str, quantity: str) -> int:
    """Send a market order until one fills (the demo maker re-quotes now and then, and a market
    order meeting an empty side expires); return the filled order's id."""
    result = page.get_by_test_id("order-result")
    for _ in range(10):
        expect(
            page.get_by_test_id(f"book-{'ask' if side == 'Buy' else 'bid'}-row").first
        ).to_be_visible()
        place(page, side, "Market", quantity, leverage="10")
        expect(result).to_have_attribute("data-status", re.compile(r"^(Filled|Expired)$"))
        if result.get_attribute("data-status") == "Filled":
            return int(result.get_attribute("data-order-id") or 0)
        time.sleep(0.5)
    raise AssertionError(f"no market order filled: {result.inner_text()}")


def tab(page: Page, name: str) -> None:
    page.get_by_test_id(f"tab-{name}").click()


def book_in_step(page: Page, rest: httpx.Client) -> None:
    """Assert the page's ladder is the gateway's book at the same update id (tried until the
    two are read at one id: the demo market keeps moving it)."""
    deadline = time.monotonic() + 20
    while True:
        shown = page.evaluate(
            """() => {
                const book = window.tradingPage.state.book;
                return {id: book.updateId, syncing: book.syncing,
                        bids: [...book.bids.entries()], asks: [...book.asks.entries()]};
            }"""
        )
        snapshot = rest.get(f"/orderbook/{SYMBOL}", params={"limit": 1000}).json()
        if shown["id"] == snapshot["update_id"] and not shown["syncing"]:
            assert dict(shown["bids"]) == dict(map(tuple, snapshot["bids"]))
            assert dict(shown["asks"]) == dict(map(tuple, snapshot["asks"]))
            return
        assert time.monotonic() < deadline, (shown["id"], snapshot["update_id"])
        time.sleep(0.05)


def free_bid_price(rest: httpx.Client) -> str:
    """A price 1% under the best bid where no order rests: out of the takers' reach (the demo
    market's IOC orders reach 0.5% through the price), still on the ladder (a few levels)."""
    book = rest.get(f"/orderbook/{SYMBOL}").json()
    taken = {Decimal(p) for p, _ in book["bids"]}
    price = (max(taken) * Decimal("0.99")).quantize(TICK)
    while price in taken:
        price -= TICK
    return str(price)


# --- the steps --------------------------------------------------------------------------


def test_a_new_user_signs_up_and_deposits(page: Page, rest: httpx.Client, me: dict) -> None:
    page.get_by_test_id("email").fill(me["email"])
    page.get_by_test_id("password").fill(me["password"])
    page.get_by_test_id("signup").click()
    expect(page.get_by_test_id("user-label")).to_contain_text(me["email"])
    expect(page.get_by_test_id("balance")).to_have_text(re.compile(r"^0(\.0+)?$"))
    assert page.evaluate("JSON.parse(sessionStorage.getItem('session')).token")

    page.get_by_test_id("deposit-amount").fill("25000")
    page.get_by_test_id("deposit").click()
    expect(page.get_by_test_id("balance")).to_have_text(re.compile(r"^25000(\.0+)?$"))
    account = rest.get("/account", headers=bearer(rest, me)).json()
    expect(page.get_by_test_id("available")).to_have_text(account["available"])


def test_the_demo_markets_book_and_trades_move(page: Page, rest: httpx.Client) -> None:
    expect(page.get_by_test_id("ws-status")).to_have_text("live")
    expect(page.get_by_test_id("book-bid-row").first).to_be_visible()
    expect(page.get_by_test_id("book-ask-row").first).to_be_visible()
    first_id = int(page.get_by_test_id("book-update-id").inner_text())
    first_trade = page.get_by_test_id("trade-row").first
    expect(first_trade).to_be_visible()
    trade_id = first_trade.get_attribute("data-trade-id")
    expect(page.get_by_test_id("book-update-id")).not_to_have_text(str(first_id))
    expect(page.get_by_test_id("trade-row").first).not_to_have_attribute(
        "data-trade-id", trade_id or ""
    )
    assert int(page.get_by_test_id("book-update-id").inner_text()) > first_id
    expect(page.get_by_test_id("chart-candles")).not_to_have_text("0")
    expect(page.get_by_test_id("last-price")).not_to_have_text(EMPTY)
    expect(page.get_by_test_id("funding-countdown")).to_have_text(re.compile(r"^\d\d:\d\d:\d\d$"))
    book_in_step(page, rest)


def test_a_limit_order_shows_in_the_book_and_in_open_orders(page: Page, rest: httpx.Client) -> None:
    price = free_bid_price(rest)
    place(page, "Buy", "Limit", "0.007", price=price, leverage="10", tif="GTC")
    order_id = placed(page, "New")
    level = page.locator(f'[data-testid="book-bid-row"][data-price="{price}"]')
    expect(level).to_have_attribute("data-qty", "0.007")
    tab(page, "open")
    row = page.locator(f'[data-testid="open-order-row"][data-order-id="{order_id}"]')
    expect(row).to_contain_text(price)
    expect(row).to_contain_text("Limit")
    screenshot(page, "trading-page.png")

    page.get_by_test_id(f"cancel-{order_id}").click()
    expect(row).to_have_count(0)
    expect(level).to_have_count(0)
    tab(page, "history")
    cancelled = page.locator(f'[data-testid="history-row"][data-order-id="{order_id}"]')
    expect(cancelled).to_have_attribute("data-status", "Cancelled")


def test_an_open_order_is_amended_in_place(page: Page, rest: httpx.Client) -> None:
    price = free_bid_price(rest)
    place(page, "Buy", "Limit", "0.005", price=price, leverage="10")
    order_id = placed(page, "New")
    tab(page, "open")
    page.get_by_test_id(f"amend-{order_id}").click()
    lower = str(Decimal(price) - 10 * TICK)
    page.get_by_test_id("amend-price").fill(lower)
    page.get_by_test_id("amend-quantity").fill("0.003")
    page.get_by_test_id("amend-submit").click()
    row = page.locator(f'[data-testid="open-order-row"][data-order-id="{order_id}"]')
    expect(row).to_contain_text(lower)
    expect(row).to_contain_text("0.003")
    level = page.locator(f'[data-testid="book-bid-row"][data-price="{lower}"]')
    expect(level).to_have_attribute("data-qty", "0.003")
    page.get_by_test_id(f"cancel-{order_id}").click()
    expect(row).to_have_count(0)


def test_switching_symbols_shows_the_other_book(page: Page, rest: httpx.Client) -> None:
    page.get_by_test_id("symbol-select").select_option("ETH-PERP")
    expect(page.get_by_test_id("book-bid-row")).to_have_count(0)  # nobody quotes ETH-PERP
    expect(page.get_by_test_id("trade-row")).to_have_count(0)
    page.get_by_test_id("symbol-select").select_option(SYMBOL)
    expect(page.get_by_test_id("book-bid-row").first).to_be_visible()
    book_in_step(page, rest)


def test_taking_liquidity_fills_and_moves_the_position_and_balance(
    page: Page, rest: httpx.Client, me: dict
) -> None:
    balance = page.get_by_test_id("balance").inner_text()
    available = page.get_by_test_id("available").inner_text()
    order_id = take(page, "Buy", "0.004")
    tab(page, "fills")
    fill = page.locator(f'[data-testid="fill-row"][data-order-id="{order_id}"]').first
    expect(fill).to_contain_text("taker")
    tab(page, "positions")
    position = page.locator(f'[data-testid="position-row"][data-symbol="{SYMBOL}"]')
    expect(position).to_have_attribute("data-size", "0.004")
    expect(page.get_by_test_id("balance")).not_to_have_text(balance)  # the taker fee
    expect(page.get_by_test_id("available")).not_to_have_text(available)  # the margin
    held = rest.get("/positions", headers=bearer(rest, me)).json()
    ours = next(p for p in held if p["symbol"] == SYMBOL)
    expect(position).to_contain_text(ours["entry_price"])
    expect(position.get_by_test_id("position-liq")).to_have_text(ours["liquidation_price"] or EMPTY)
    screenshot(page, "trading-page-filled.png")


def test_a_stop_order_waits_in_open_orders(page: Page, rest: httpx.Client) -> None:
    last = Decimal(page.get_by_test_id("last-price").inner_text())
    stop = str((last * Decimal("0.9")).quantize(TICK))
    place(page, "Sell", "StopMarket", "0.004", reduce_only=True, stop_price=stop, leverage="10")
    order_id = placed(page, "New")
    tab(page, "open")
    row = page.locator(f'[data-testid="open-order-row"][data-order-id="{order_id}"]')
    expect(row).to_have_attribute("data-type", "StopMarket")
    expect(row).to_contain_text(stop)


def test_a_rejected_order_shows_the_engines_code_and_message(
    page: Page, rest: httpx.Client
) -> None:
    place(page, "Buy", "Limit", "50", price="60000.0", leverage="1")  # 3,000,000 USDT
    placed(page, "Rejected")
    banner = page.get_by_test_id("error-banner")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("-2019")
    expect(banner).to_contain_text("Margin is insufficient.")
    expect(page.get_by_test_id("order-result")).to_contain_text("-2019")

    place(page, "Buy", "Limit", "0.001", price="60000.05", leverage="10")  # off the 0.1 tick
    placed(page, "Rejected")
    expect(banner).to_contain_text("-1130")
    expect(banner).to_contain_text("price")


def test_the_status_panel_shows_the_status_figures(page: Page, rest: httpx.Client) -> None:
    answer = rest.get("/status")
    if answer.status_code == 404:
        expect(page.get_by_test_id("status-unavailable")).to_have_text("status unavailable")
    else:
        assert answer.status_code == 200, answer.text
        expect(page.get_by_test_id("status-row").first).to_be_visible()


def test_a_flood_of_depth_updates_is_drawn_in_a_few_frames(page: Page, rest: httpx.Client) -> None:
    """Ten thousand updates (a busy minute and more) in one go: the page applies them at once
    and redraws the ladder once, not ten thousand times; then a resync puts the real book back."""
    flood = page.evaluate(
        """(symbol) => {
            const page = window.tradingPage, book = page.state.book;
            const frames = page.state.frames, started = performance.now();
            let id = book.updateId;
            for (let n = 0; n < 10000; n += 1) {
                id += 1;
                const qty = n === 9999 ? "0.000" : `${(n % 9) + 1}.000`;
                page.onMessage({channel: `depth:${symbol}`, type: "update", data: {
                    first_update_id: id, update_id: id, bids: [["2.0", qty]], asks: []}});
            }
            return {ms: performance.now() - started, frames: page.state.frames - frames,
                    id: book.updateId, expected: id};
        }""",
        SYMBOL,
    )
    assert flood["id"] == flood["expected"]  # every update applied, in order
    assert flood["frames"] == 0  # nothing drawn while they came
    assert flood["ms"] < 1000, flood
    page.evaluate("() => window.tradingPage.resyncDepth()")
    book_in_step(page, rest)
    expect(page.locator('[data-testid="book-bid-row"][data-price="2.0"]')).to_have_count(0)


def test_a_gap_in_the_depth_stream_resyncs_from_the_rest_snapshot(
    page: Page, rest: httpx.Client
) -> None:
    """Lost messages, as the page sees them: its book five updates behind (and holding a level
    the exchange does not have), so the stream's next update does not follow on."""
    resyncs = int(page.get_by_test_id("book-resyncs").inner_text())
    page.evaluate(
        """() => {
            const book = window.tradingPage.state.book;
            book.updateId -= 5;
            book.bids.set("1.0", "9.999");
        }"""
    )
    expect(page.get_by_test_id("book-resyncs")).to_have_text(str(resyncs + 1))
    expect(page.locator('[data-testid="book-bid-row"][data-price="1.0"]')).to_have_count(0)
    book_in_step(page, rest)


def test_after_a_gateway_restart_the_page_reconnects_and_resyncs_depth(
    page: Page, stack: Stack, rest: httpx.Client
) -> None:
    reconnects = int(page.get_by_test_id("ws-reconnects").inner_text())
    resyncs = int(page.get_by_test_id("book-resyncs").inner_text())
    gateway = stack.services["gateway"]
    gateway.stop()
    try:
        expect(page.get_by_test_id("ws-status")).to_have_text("reconnecting")
    finally:
        gateway.start()
    expect(page.get_by_test_id("ws-status")).to_have_text("live")
    expect(page.get_by_test_id("ws-reconnects")).to_have_text(str(reconnects + 1))
    expect(page.get_by_test_id("book-resyncs")).not_to_have_text(str(resyncs))  # it counts up
    expect(page.get_by_test_id("user-label")).not_to_have_text("signed out")
    book_in_step(page, rest)
    # the stream is live again, not only the snapshot: the demo market moves the book
    moved_from = page.get_by_test_id("book-update-id").inner_text()
    expect(page.get_by_test_id("book-update-id")).not_to_have_text(moved_from)
