"""Run the demo market: ``python -m services.demo_market`` (settings from the environment).

The one composition root: settings, the ops endpoint, the HTTP transport, the request budget,
the board the bots share and the bots themselves, each on a thread. SIGTERM or SIGINT stops
the bots; the maker then cancels its quotes. With ``DEMO_MARKET=off`` the process only serves
``/healthz`` and ``/metrics``.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid

from prometheus_client import CollectorRegistry

from libs.ops import OpsServer, configure_logging, stop_on_signals
from libs.settings import load_settings
from services.demo_market.bots import Board, Bot, Identity, Maker, Plan, Taker
from services.demo_market.client import Api, Budget, Metrics, Stopped, Transport, UrllibTransport
from services.demo_market.core import (
    LadderShape,
    Market,
    market_of,
    parse_reference_prices,
    select_markets,
)
from services.demo_market.settings import DemoMarketSettings

log = logging.getLogger("demo_market")


def plan_of(settings: DemoMarketSettings) -> Plan:
    return Plan(
        deposit=settings.demo_deposit,
        leverage=settings.demo_leverage,
        max_position=settings.demo_max_position,
        takers=settings.demo_takers,
        shape=LadderShape(
            levels=settings.demo_levels,
            spread_bps=settings.demo_spread_bps,
            step_bps=settings.demo_step_bps,
            level_notional=settings.demo_order_notional,
        ),
        taker_notional=settings.demo_taker_notional,
        requote_bps=settings.demo_requote_bps,
        refresh_seconds=settings.demo_refresh_seconds,
        poll_seconds=settings.demo_poll_seconds,
        taker_seconds=settings.demo_taker_seconds,
        ioc_bps=settings.demo_ioc_bps,
        references=parse_reference_prices(settings.demo_reference_prices),
    )


def load_markets(api: Api, wanted: str) -> list[Market]:
    """The markets to trade, from ``exchangeInfo`` (asked until the gateway answers)."""
    info = api.public("/fapi/v1/exchangeInfo")
    return select_markets((market_of(s) for s in info["symbols"]), wanted)


def build(
    settings: DemoMarketSettings,
    stop: threading.Event,
    registry: CollectorRegistry,
    transport: Transport | None = None,
    run_id: str | None = None,
    seed: int | None = None,
) -> list[Bot]:
    """Wire the bots: one budget and one board for all, an ``Api`` each."""
    transport = transport or UrllibTransport()
    run_id = run_id or uuid.uuid4().hex[:8]
    rng = random.Random(seed)
    metrics = Metrics(registry)
    budget = Budget(settings.demo_rate, settings.demo_burst)
    plan = plan_of(settings)

    def api(bot: str) -> Api:
        return Api(
            settings.gateway_url,
            bot,
            transport,
            budget,
            stop,
            metrics,
            timeout=settings.demo_request_timeout,
        )

    markets = load_markets(api("market"), settings.demo_symbols)
    log.info("trading %s", ", ".join(m.name for m in markets))
    board = Board(markets, settings.demo_max_position)
    prefix, domain, password = (
        settings.demo_user_prefix,
        settings.demo_email_domain,
        settings.demo_password,
    )

    def identity(bot: str) -> Identity:
        return Identity(bot, f"{prefix}-{bot}@{domain}", password)

    bots: list[Bot] = [
        Maker(identity("maker"), api("maker"), board, plan, run_id, random.Random(rng.random()))
    ]
    for n in range(1, settings.demo_takers + 1):
        name = f"taker-{n}"
        bots.append(
            Taker(identity(name), api(name), board, plan, run_id, random.Random(rng.random()))
        )
    return bots


def run(bots: list[Bot], stop: threading.Event) -> None:
    """Run every bot on a thread until ``stop``; then let the maker cancel its quotes."""
    threads = [threading.Thread(target=b.run, name=b.bot, daemon=True) for b in bots]
    for thread in threads:
        thread.start()
    stop.wait()
    deadline = time.monotonic() + 12  # a call in flight ends within its request timeout
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()))
    for bot in bots:
        if isinstance(bot, Maker):
            bot.close()


def main() -> int:
    configure_logging()
    settings = load_settings(DemoMarketSettings)
    stop = stop_on_signals()
    registry = CollectorRegistry()
    ops = OpsServer(settings.metrics_port, registry=registry, host=settings.metrics_host)
    print("demo_market ready", flush=True)
    try:
        if not settings.demo_market:
            log.info("DEMO_MARKET is off: not trading")
            stop.wait()
            return 0
        try:
            bots = build(settings, stop, registry)
        except Stopped:
            return 0
        except ValueError as error:  # DEMO_SYMBOLS names a symbol the exchange does not list
            log.error("%s", error)
            return 2
        run(bots, stop)
        log.info("stopped")
        return 0
    finally:
        ops.close()


if __name__ == "__main__":  # tests import the root without running it
    raise SystemExit(main())
