"""The gateway's composition root: settings and adapters (Postgres, Redis, Kafka) -> FastAPI app."""

from __future__ import annotations

import functools
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from libs.symbols import default_symbols
from services.gateway import errors, pages
from services.gateway.adapters import Adapters, build_adapters
from services.gateway.api import account, klines, market, trading, users
from services.gateway.api.status import router as status_router
from services.gateway.auth import Authenticator, limit_ip
from services.gateway.binance import account as binance_account
from services.gateway.binance import algo as binance_algo
from services.gateway.binance import candles as binance_candles
from services.gateway.binance import market as binance_market
from services.gateway.binance import orders as binance_orders
from services.gateway.binance import streams as binance_streams
from services.gateway.body_limit import BodyLimit
from services.gateway.freshness import Outstanding
from services.gateway.ids import OrderIds
from services.gateway.limits import RateLimiter
from services.gateway.reads import ReadModel
from services.gateway.security import TokenIssuer
from services.gateway.settings import GatewaySettings
from services.gateway.state import Gateway
from services.gateway.ws import Hub
from services.gateway.ws import router as ws_router

REQUESTS = Counter("gateway_requests_total", "HTTP requests", ["route", "status"])
LATENCY = Histogram(
    "gateway_request_seconds",
    "HTTP request latency",
    ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
# Labelled once per route (and status): labels() validates and locks on every call. Both are
# bounded: route templates, not raw paths, and the statuses the API answers.
_latency = functools.cache(LATENCY.labels)
_requests = functools.cache(REQUESTS.labels)


class Measured:
    """Count and time every HTTP request by route: a plain ASGI middleware (Starlette's
    BaseHTTPMiddleware cost more CPU per request than the whole place_order handler)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        status = 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            name = getattr(scope.get("route"), "path", "unmatched")  # set by the router
            _latency(name).observe(time.perf_counter() - started)
            _requests(name, status).inc()


def create_app(settings: GatewaySettings, adapters: Adapters | None = None) -> FastAPI:
    """Build the gateway's app. It connects as it starts (its lifespan): to ``adapters`` when
    given (the caller's to close), else to the real ones, which it builds and closes itself."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        outside = adapters if adapters is not None else build_adapters(settings)
        redis = outside.redis
        tokens = TokenIssuer(settings.jwt_secret, settings.token_ttl_seconds)
        limiter = RateLimiter(redis)
        app.state.settings = settings
        app.state.limiter = limiter
        users = outside.users
        app.state.auth = Authenticator(tokens, users, limiter, settings.user_rate_per_second)
        app.state.hub = Hub(redis)
        symbols = default_symbols()
        app.state.gateway = Gateway(
            settings=settings,
            symbols=symbols,
            ids=OrderIds(settings.gateway_instance),
            requests=outside.requests,
            replies=outside.replies,
            reads=ReadModel(
                redis, Outstanding(settings.topic_prefix), settings.read_wait_seconds, symbols
            ),
            users=users,
            tokens=tokens,
        )
        try:
            yield
        finally:
            await app.state.hub.close()
            if adapters is None:
                await outside.aclose()

    app = FastAPI(
        title="Perpetual-futures exchange",
        summary="REST and WebSocket API of the exchange (amounts are decimal strings).",
        version="1.0",
        lifespan=lifespan,
        dependencies=[Depends(limit_ip)],
        # The gateway's metrics are Prometheus (/metrics); FastAPI's OpenTelemetry hooks would
        # look for a configured provider on every request (3% of the gateway's CPU under load).
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    errors.install(app)
    for module in (users, trading, account, market, klines):
        app.include_router(module.router)
    # the Binance USDⓈ-M face (docs/BINANCE-API.md), beside the original API
    binance = (
        binance_market,
        binance_candles,
        binance_orders,
        binance_algo,
        binance_account,
        binance_streams,
    )
    for module in binance:
        app.include_router(module.router)
    app.include_router(ws_router)
    app.include_router(status_router)  # GET /status (api/status.py)
    pages.install(app)  # the trading page at / (services/gateway/web)

    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(Measured)  # added last: outermost, so it counts the 413s too

    @app.get("/metrics", include_in_schema=False, dependencies=[])
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict:
        return {"status": "ok"}

    return app
