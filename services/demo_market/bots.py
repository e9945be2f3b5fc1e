"""The bots' loops: enrolment, the market maker and the takers. Each runs on a thread of its
own; the decisions are ``core``'s, the calls ``client``'s.

Enrolment is idempotent: a bot signs up (or, already known, signs in), tops its balance up from
the faucet, replaces its API key (the secret of the old one is gone with the last process) and
sets its leverage. A bot whose key the gateway no longer knows enrols again.
"""

from __future__ import annotations

import itertools
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from services.demo_market.client import Api, AuthLost, Refused, Stopped
from services.demo_market.core import (
    BUY,
    SELL,
    LadderShape,
    Market,
    Quoted,
    Resting,
    Room,
    ladder,
    position_limit,
    quoted,
    reference_price,
    replacement,
    requote_reason,
    taker_limit,
    taker_order,
)

log = logging.getLogger("demo_market")
KEY_LABEL = "demo-market"
SETTLE_SECONDS = 0.2  # between reading the orders and the position: the read model's trail


@dataclass(frozen=True)
class Identity:
    bot: str  # maker, taker-1, ...
    email: str
    password: str


@dataclass(frozen=True)
class Plan:
    """What the bots are told (from the settings)."""

    deposit: Decimal
    leverage: int
    max_position: Decimal
    takers: int  # each gets taker_limit of the maker's limit
    shape: LadderShape
    taker_notional: Decimal
    requote_bps: int
    refresh_seconds: float
    poll_seconds: float
    taker_seconds: float
    ioc_bps: int
    references: dict[str, Decimal]


class Board:
    """What the bots share in this process: the markets, each one's price (ticks) as the maker
    last saw it, and the position limit (lots), fixed at the first price seen."""

    def __init__(self, markets: list[Market], max_position: Decimal) -> None:
        self.markets = markets
        self.max_position = max_position
        self._prices: dict[str, int] = {}
        self._live: dict[str, bool] = {}
        self._limits: dict[str, int] = {}
        self._lock = threading.Lock()

    def see(self, market: Market, ticks: int, live: bool) -> int:
        """Record a price (``live``: the exchange's own, not the configured one); return the
        symbol's position limit (lots)."""
        with self._lock:
            self._prices[market.symbol] = ticks
            self._live[market.symbol] = live
            if market.symbol not in self._limits:
                self._limits[market.symbol] = position_limit(market, self.max_position, ticks)
            return self._limits[market.symbol]

    def priced(self) -> list[tuple[Market, int, int, bool]]:
        """The markets with a price: (market, price ticks, limit lots, live)."""
        with self._lock:
            return [
                (m, self._prices[m.symbol], self._limits[m.symbol], self._live[m.symbol])
                for m in self.markets
                if m.symbol in self._prices
            ]


class Bot:
    """What the maker and the takers share: enrolment, positions, orders, the loop."""

    def __init__(
        self,
        identity: Identity,
        api: Api,
        board: Board,
        plan: Plan,
        run_id: str,
        rng: random.Random,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.identity, self.api, self.board, self.plan = identity, api, board, plan
        self.rng, self.clock = rng, clock
        self.bot = identity.bot
        self.metrics = api.metrics
        self.enrolled = False
        self._ids = itertools.count()
        self._id_prefix = f"dm{run_id}{identity.bot.replace('-', '')}"

    # -- the loop ----------------------------------------------------------------------
    def run(self) -> None:
        """Run until the process stops; an error is one log line and a pause, never an end."""
        failures = 0
        while not self.api.stop.is_set():
            try:
                if not self.enrolled:
                    self.enrol()
                    self.enrolled = True
                self.turn()
                failures = 0
            except Stopped:
                return
            except AuthLost as error:
                log.warning("%s: %s; enrolling again", self.bot, error)
                self.enrolled = False
                failures += 1
            except Exception as error:  # a bot never takes the process down
                log.warning("%s: %s: %s", self.bot, type(error).__name__, error)
                failures += 1
            if failures and self.api.stop.wait(min(30.0, 0.5 * 2 ** min(failures, 6))):
                return

    def turn(self) -> None:
        raise NotImplementedError

    # -- enrolment ---------------------------------------------------------------------
    def enrol(self) -> None:
        me = {"email": self.identity.email, "password": self.identity.password}
        api = self.api
        api.token = None
        try:
            api.session("POST", "/signup", me)
            log.info("%s: signed up as %s", self.bot, me["email"])
        except Refused as refused:
            if refused.status != 409:  # 409: known already
                raise
        api.token = api.session("POST", "/signin", me)["token"]
        for key in api.session("GET", "/api_keys"):
            if key.get("label") == KEY_LABEL and not key.get("revoked"):
                api.session("DELETE", f"/api_keys/{key['id']}")
        made = api.session("POST", "/api_keys", {"label": KEY_LABEL})
        api.key, api.secret = made["api_key"], made["secret"]
        balance = Decimal(api.signed("GET", "/fapi/v2/balance")[0]["balance"])
        if balance < self.plan.deposit / 2:
            amount = self.plan.deposit - balance
            try:
                api.session(
                    "POST", "/deposit", {"asset": "USDT", "amount": str(amount)}, pending_ok=True
                )
                balance += amount
            except Refused as refused:
                log.warning("%s: no deposit: %s", self.bot, refused)
        for market in self.board.markets:
            try:
                api.signed(
                    "POST", "/fapi/v1/leverage", symbol=market.symbol, leverage=self.plan.leverage
                )
            except Refused as refused:
                log.warning("%s: leverage on %s: %s", self.bot, market.name, refused)
        log.info("%s: ready (%s, balance %s USDT)", self.bot, self.identity.email, balance)

    # -- reads and orders --------------------------------------------------------------
    def positions(self, market: Market | None = None) -> dict[str, int]:
        """The bot's positions in lots, by Binance symbol."""
        params = {"symbol": market.symbol} if market else {}
        rows = self.api.signed("GET", "/fapi/v2/positionRisk", **params)
        by_symbol = {m.symbol: m for m in self.board.markets}
        held = {}
        for row in rows:
            found = by_symbol.get(row["symbol"])
            if found is not None:
                held[found.symbol] = found.lots(Decimal(row["positionAmt"]))
                self.metrics.position.labels(self.bot, found.name).set(
                    float(Decimal(row["positionAmt"]))
                )
        return held

    def place(
        self,
        market: Market,
        side: str,
        lots: int,
        ticks: int | None,
        tif: str,
        reduce_only: bool = False,
    ) -> dict | None:
        """Place an order and wait for what matching did; None when it was refused. Sent
        again, with the same client order id, until the answer is known."""
        params: dict[str, object] = {
            "symbol": market.symbol,
            "side": side,
            "type": "LIMIT" if ticks is not None else "MARKET",
            "quantity": market.qty_text(lots),
            "newClientOrderId": f"{self._id_prefix}x{next(self._ids)}",
            "newOrderRespType": "RESULT",
        }
        if ticks is not None:
            params |= {"price": market.price_text(ticks), "timeInForce": tif}
        if reduce_only:
            params["reduceOnly"] = "true"
        try:
            order = self.api.signed("POST", "/fapi/v1/order", **params)
        except Refused as refused:
            self.metrics.orders.labels(self.bot, "rejected").inc()
            log.info(
                "%s: %s %s %s refused: %s", self.bot, side, market.name, params["quantity"], refused
            )
            return None
        self.metrics.orders.labels(self.bot, str(order.get("status", "unknown")).lower()).inc()
        return order


class Maker(Bot):
    """Quotes ``shape.levels`` a side on every market around its reference price, and
    replaces them when the price moved, fills ate into them, the limit's half was crossed,
    or they are old."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.quotes: dict[str, Quoted] = {}

    def enrol(self) -> None:
        super().enrol()
        self.quotes.clear()  # whatever rests from before is cancelled before the next quote

    def turn(self) -> None:
        prices = self.prices()
        held = self.positions()
        for market in self.board.markets:
            if market.symbol not in prices:
                continue
            price, live = prices[market.symbol]
            mid = market.ticks(price)
            limit = self.board.see(market, mid, live)
            self.metrics.limit.labels(self.bot, market.name).set(float(market.lot * limit))
            position = held.get(market.symbol, 0)
            reason = requote_reason(
                self.quotes.get(market.symbol),
                mid,
                position,
                limit,
                self.clock(),
                self.plan.requote_bps,
                self.plan.refresh_seconds,
            )
            if reason is not None:
                self.requote(market, mid, limit, reason)
        self.api.stop.wait(self.plan.poll_seconds)

    def prices(self) -> dict[str, tuple[Decimal, bool]]:
        """Each market's reference: index, else mark, else last trade, else the configured
        price; and whether it is the exchange's own (live) rather than the configured one."""
        premium = {p["symbol"]: p for p in self.api.public("/fapi/v1/premiumIndex")}
        found: dict[str, tuple[Decimal, bool]] = {}
        missing = []
        for market in self.board.markets:
            row = premium.get(market.symbol, {})
            price = reference_price(
                Decimal(row.get("indexPrice") or 0), Decimal(row.get("markPrice") or 0)
            )
            if price is None:
                missing.append(market)
            else:
                found[market.symbol] = (price, True)
        if missing:
            last = {t["symbol"]: t for t in self.api.public("/fapi/v1/ticker/price")}
            for market in missing:
                traded = reference_price(Decimal(last.get(market.symbol, {}).get("price") or 0))
                configured = reference_price(
                    self.plan.references.get(market.name),
                    self.plan.references.get(market.symbol),
                )
                if traded is not None:
                    found[market.symbol] = (traded, True)
                elif configured is not None:
                    found[market.symbol] = (configured, False)
        return found

    def requote(self, market: Market, mid: int, limit: int, reason: str) -> None:
        """Replace the symbol's quotes level by level with a ladder around ``mid``, within the
        room the position leaves (``core.Room``): the book stays two-sided meanwhile."""
        last = self.quotes.pop(market.symbol, None)
        resting = self.resting(market)  # before the position: see core.Room
        self.api.stop.wait(SETTLE_SECONDS)
        position = self.positions(market).get(market.symbol, 0)
        quotes = ladder(market, mid, position, limit, self.plan.shape)
        room = Room(position, limit, resting)
        first = SELL if last is not None and mid > last.mid else BUY
        for step in replacement(resting, quotes, first):
            if step.cancel is not None:
                room.cancelled(step.cancel.side, self.cancel(market, step.cancel))
            if step.place is not None:
                lots = room.take(step.place, market.min_lots_at(step.place.ticks))
                if lots:
                    self.place(market, step.place.side, lots, step.place.ticks, "GTX")
        self.quotes[market.symbol] = quoted(quotes, mid, position, limit, self.clock())
        self.metrics.requotes.labels(market.name, reason).inc()

    def resting(self, market: Market) -> list[Resting]:
        """The maker's limit orders on the symbol's book, with what is left of each."""
        rows = self.api.signed("GET", "/fapi/v1/openOrders", symbol=market.symbol)
        return [
            Resting(
                int(row["orderId"]),
                row["side"],
                market.ticks(Decimal(row["price"])),
                market.lots(Decimal(row["origQty"])) - market.lots(Decimal(row["executedQty"])),
            )
            for row in rows
            if row.get("type") == "LIMIT"
        ]

    def cancel(self, market: Market, order: Resting) -> int:
        """Cancel one quote; return the lots it took off the book (0: it had filled)."""
        try:
            row = self.api.signed(
                "DELETE", "/fapi/v1/order", symbol=market.symbol, orderId=order.order_id
            )
        except Refused:  # -2011: filled or cancelled meanwhile, nothing left to take off
            return 0
        return market.lots(Decimal(row["origQty"])) - market.lots(Decimal(row["executedQty"]))

    def close(self, seconds: float = 5.0) -> None:
        """Take the quotes off the books on the way out, trying for ``seconds`` at most."""
        if not self.enrolled:
            return
        give_up = threading.Event()
        timer = threading.Timer(seconds, give_up.set)
        timer.start()
        self.api.stop = give_up  # the process's stop is set already
        try:
            for market in self.board.markets:
                self.api.signed("DELETE", "/fapi/v1/allOpenOrders", symbol=market.symbol)
            log.info("%s: quotes cancelled", self.bot)
        except (Stopped, Refused, AuthLost) as error:
            log.warning("%s: quotes may be left on the books: %s", self.bot, error)
        finally:
            timer.cancel()


class Taker(Bot):
    """Now and then sends a small market or IOC order on a random market, at a random side,
    within its limit (a share of the maker's, ``core.taker_limit``; past half of it,
    reduce-only toward flat)."""

    def turn(self) -> None:
        pause = self.rng.expovariate(1 / self.plan.taker_seconds)
        if self.api.stop.wait(min(max(pause, 0.2), 5 * self.plan.taker_seconds)):
            raise Stopped
        priced = self.board.priced()
        if not priced:
            return
        for shown, _, lots, _ in priced:
            mine = taker_limit(lots, self.plan.takers)
            self.metrics.limit.labels(self.bot, shown.name).set(float(shown.lot * mine))
        market, mid, maker_limit, live = self.rng.choice(priced)
        limit = taker_limit(maker_limit, self.plan.takers)
        position = self.positions(market).get(market.symbol, 0)
        size = market.lots_for(self.plan.taker_notional, mid)
        order = taker_order(
            self.rng, position, limit, size, market.min_lots_at(mid), mid, self.plan.ioc_bps, live
        )
        if order is not None:
            self.place(market, order.side, order.lots, order.ticks, "IOC", order.reduce_only)
