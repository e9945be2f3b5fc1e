"""The gateway's composition root: settings -> Postgres, Redis, Kafka -> FastAPI app."""

from __future__ import annotations

import functools
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from redis.asyncio import BlockingConnectionPool, Redis
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from libs.symbols import default_symbols
from libs.topics import Topics
from services.gateway import errors
from services.gateway.api import account, market, trading, users
from services.gateway.auth import Authenticator, limit_ip
from services.gateway.body_limit import BodyLimit
from services.gateway.db import migrate
from services.gateway.freshness import Outstanding
from services.gateway.ids import OrderIds
from services.gateway.kafka_io import ReplyListener, RequestProducer
from services.gateway.limits import RateLimiter
from services.gateway.reads import ReadModel
from services.gateway.security import TokenIssuer
from services.gateway.settings import GatewaySettings
from services.gateway.state import Gateway
from services.gateway.users import UserStore
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


def create_app(settings: GatewaySettings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        migrate(settings.database_url)
        # a request waits (up to 2 s) for a free connection instead of failing when a burst
        # has them all in use
        pool = BlockingConnectionPool.from_url(
            settings.redis_url, max_connections=128, timeout=2, decode_responses=True
        )
        redis = Redis(connection_pool=pool)
        store = UserStore.from_url(settings.database_url)
        tokens = TokenIssuer(settings.jwt_secret, settings.token_ttl_seconds)
        limiter = RateLimiter(redis)
        topics = Topics(settings.topic_prefix)
        requests = RequestProducer(
            settings.kafka_bootstrap_servers, topics.requests, settings.delivery_timeout_seconds
        )
        replies = ReplyListener(
            settings.kafka_bootstrap_servers, topics.matcher_events, topics.wallet_events
        )
        app.state.settings = settings
        app.state.limiter = limiter
        app.state.auth = Authenticator(tokens, store, limiter, settings.user_rate_per_second)
        app.state.hub = Hub(redis)
        app.state.gateway = Gateway(
            settings=settings,
            symbols=default_symbols(),
            ids=OrderIds(settings.gateway_instance),
            requests=requests,
            replies=replies,
            reads=ReadModel(redis, Outstanding(topics.prefix), settings.read_wait_seconds),
            users=store,
            tokens=tokens,
        )
        try:
            yield
        finally:
            await app.state.hub.close()
            replies.close()
            requests.close()
            store.close()
            await redis.aclose()

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
    for module in (users, trading, account, market):
        app.include_router(module.router)
    app.include_router(ws_router)

    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(Measured)  # added last: outermost, so it counts the 413s too

    @app.get("/metrics", include_in_schema=False, dependencies=[])
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict:
        return {"status": "ok"}

    return app
