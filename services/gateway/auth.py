"""Who is calling: a session token (``Authorization: Bearer``) or a signed API-key request.

Signed requests (bots) follow Binance: header ``X-API-KEY``; query parameters ``timestamp``
(ms), optional ``recvWindow`` (ms, default 5000) and ``signature``, the hex HMAC-SHA256 with
the key's secret of the query string without ``signature`` followed by the raw body.
Both paths also count the caller against the per-user rate limit. A request whose route
names a caller and that carries a session token counts its per-IP limit with the per-user one,
in one Redis round trip, once the token is checked (``limit_ip`` leaves it to ``caller``); the
answers are the same as counting the IP first: a 429 for the IP before a 401 for the token.
"""

from __future__ import annotations

import time
from typing import Annotated
from urllib.parse import parse_qsl

from fastapi import Depends, Request
from fastapi.dependencies.models import Dependant
from fastapi.security import APIKeyHeader, HTTPBearer
from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection

from libs import codes
from services.gateway.adapters import Users
from services.gateway.errors import ApiError, unauthorized
from services.gateway.limits import Limit, RateLimiter
from services.gateway.security import (
    BadRecvWindow,
    InvalidToken,
    StaleRequest,
    TokenIssuer,
    check_timestamp,
    signature_ok,
)

DEFAULT_RECV_WINDOW_MS = 5000


class Authenticator:
    def __init__(
        self,
        tokens: TokenIssuer,
        users: Users,
        limiter: RateLimiter,
        user_rate_per_second: int,
    ) -> None:
        self.tokens, self.users, self.limiter = tokens, users, limiter
        self.user_rate_per_second = user_rate_per_second

    async def caller(self, request: Request) -> int:
        ip: Limit | None = request.scope.pop(_IP_LIMIT, None)  # left by limit_ip
        header = request.headers.get("authorization")
        try:
            if header is not None:
                user_id = self._bearer(header)
            elif (key := request.headers.get("x-api-key")) is not None:
                user_id = await self._signed(request, key)
            else:
                raise unauthorized(
                    "Send Authorization: Bearer <token>, or X-API-KEY with a signature."
                )
        except ApiError:
            if ip is not None and (wait := await self.limiter.hit(*ip)) is not None:
                raise too_many(wait) from None
            raise
        user = (f"user:{user_id}", self.user_rate_per_second, 1)
        wait = await self.limiter.hit_all(*((ip, user) if ip is not None else (user,)))
        if wait is not None:
            raise too_many(wait)
        return user_id

    def _bearer(self, header: str) -> int:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise unauthorized("Authorization must be 'Bearer <token>'.")
        try:
            return self.tokens.verify(token.strip())
        except InvalidToken as error:
            raise unauthorized(f"Invalid token: {error}") from None

    async def _signed(self, request: Request, key: str) -> int:
        query = request.url.query
        parts = [p for p in query.split("&") if p]
        signatures = [p for p in parts if p.startswith("signature=")]
        if len(signatures) != 1:
            raise ApiError(401, codes.BAD_SIGNATURE, "Send exactly one 'signature' parameter.")
        params = dict(parse_qsl(query))
        try:
            timestamp = int(params["timestamp"])
            window = int(params.get("recvWindow", DEFAULT_RECV_WINDOW_MS))
        except (KeyError, ValueError):
            raise ApiError(
                401, codes.STALE_TIMESTAMP, "Send 'timestamp' (ms) with a signed request."
            ) from None
        try:
            check_timestamp(timestamp, window, time.time_ns() // 1_000_000)
        except (StaleRequest, BadRecvWindow) as error:
            raise ApiError(401, codes.STALE_TIMESTAMP, str(error)) from None
        api_key = await run_in_threadpool(self.users.find_active_api_key, key)
        payload = "&".join(p for p in parts if not p.startswith("signature=")) + (
            await request.body()
        ).decode("utf-8", "replace")
        signature = signatures[0].removeprefix("signature=")
        if api_key is None or not signature_ok(api_key.secret, payload, signature):
            raise ApiError(401, codes.BAD_SIGNATURE, "Signature for this request is not valid.")
        return api_key.user_id


def too_many(wait: float) -> ApiError:
    seconds = max(1, int(wait + 0.999))
    return ApiError(
        429,
        codes.TOO_MANY_REQUESTS,
        f"Too many requests; retry in {seconds} s.",
        {"Retry-After": str(seconds)},
    )


# Declared so the OpenAPI schema shows both ways in; ``Authenticator`` reads the headers itself.
_bearer = HTTPBearer(auto_error=False, description="a token from POST /signin")
_api_key = APIKeyHeader(
    name="X-API-KEY",
    auto_error=False,
    description="with timestamp, recvWindow and signature query parameters",
)


async def current_user(
    request: Request, _token: object = Depends(_bearer), _key: object = Depends(_api_key)
) -> int:
    return await request.app.state.auth.caller(request)


_IP_LIMIT = "gateway.ip_limit"  # in the ASGI scope: the per-IP hit ``caller`` still owes


async def limit_ip(connection: HTTPConnection) -> None:
    """Count every request (and WebSocket connection) against its client IP's budget.

    A session-token request to a route that names its caller leaves the count to
    ``Authenticator.caller``, which does it with the per-user one in a single round trip
    (before anything else when the token is refused). Signed requests are counted here,
    before their API key is looked up in Postgres."""
    state = connection.app.state
    host = connection.client.host if connection.client else "unknown"
    limit = (f"ip:{host}", state.settings.ip_rate_per_minute, 60)
    if "authorization" in connection.headers and _names_caller(connection.scope.get("route")):
        connection.scope[_IP_LIMIT] = limit
        return
    wait = await state.limiter.hit(*limit)
    if wait is not None:
        raise too_many(wait)


# id(route) -> (the route, whether it depends on current_user); the route is kept so that its
# id cannot be reused (routes are not hashable)
_NAMES_CALLER: dict[int, tuple[object, bool]] = {}


def _names_caller(route: object) -> bool:
    known = _NAMES_CALLER.get(id(route))
    if known is not None and known[0] is route:
        return known[1]
    dependant = getattr(route, "dependant", None)
    names = dependant is not None and _depends_on(dependant, current_user)
    _NAMES_CALLER[id(route)] = (route, names)
    return names


def _depends_on(dependant: Dependant, call: object) -> bool:
    return any(d.call is call or _depends_on(d, call) for d in dependant.dependencies)


Caller = Annotated[int, Depends(current_user)]


def same_user(caller: int, claimed: int | None) -> None:
    """A body's ``user_id``, when present, must be the caller's (the original API sends it)."""
    if claimed is not None and claimed != caller:
        raise ApiError(403, codes.FORBIDDEN, "user_id does not match the authenticated user.")
