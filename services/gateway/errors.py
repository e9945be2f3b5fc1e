"""Every error leaves the gateway as ``{"code": ..., "msg": ...}`` with a 4xx status.

Codes follow Binance USDⓈ-M where one exists (the engines' rejections already do); the
gateway's own: -1002 unauthorized, -1003 too many requests, -1021 stale timestamp,
-1022 bad signature, -1102 missing parameter, -1130 invalid parameter, -2013 no such order,
-4000 forbidden, -4090 conflict, -1413 body too large (413), -1000 unexpected (a 5xx: a bug),
and -1001 with a 503 when the request did not reach the log or Redis cannot serve (safe to
retry).
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError
from starlette.exceptions import HTTPException

log = logging.getLogger("services.gateway")

UNAUTHORIZED = -1002
TOO_MANY_REQUESTS = -1003
DISCONNECTED = -1001
DISCONNECTED_MSG = "Internal error; unable to process your request. Please try again."
STALE_TIMESTAMP = -1021
BAD_SIGNATURE = -1022
MANDATORY_PARAM = -1102
INVALID_PARAM = -1130
NO_SUCH_ORDER = -2013
FORBIDDEN = -4000
CONFLICT = -4090
PAYLOAD_TOO_LARGE = -1413


class ApiError(Exception):
    def __init__(
        self, status: int, code: int, msg: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(msg)
        self.status, self.code, self.msg, self.headers = status, code, msg, headers


def unauthorized(msg: str) -> ApiError:
    return ApiError(401, UNAUTHORIZED, msg, {"WWW-Authenticate": "Bearer"})


def invalid(msg: str) -> ApiError:
    return ApiError(400, INVALID_PARAM, msg)


def _body(code: int, msg: str) -> dict:
    return {"code": code, "msg": msg}


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_request: Request, error: ApiError) -> JSONResponse:
        return JSONResponse(_body(error.code, error.msg), error.status, headers=error.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, error: RequestValidationError) -> JSONResponse:
        problems = error.errors()
        first = problems[0] if problems else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "body"
        missing = first.get("type") == "missing"
        code = MANDATORY_PARAM if missing else INVALID_PARAM
        return JSONResponse(_body(code, f"{where}: {first.get('msg', 'invalid')}"), 400)

    @app.exception_handler(HTTPException)
    async def http_error(_request: Request, error: HTTPException) -> JSONResponse:
        return JSONResponse(
            _body(error.status_code, str(error.detail)), error.status_code, headers=error.headers
        )

    @app.exception_handler(RedisError)
    async def redis_error(request: Request, error: RedisError) -> JSONResponse:
        # the limiter or the read model is unreachable or out of connections: an outage of
        # ours, not a bug; nothing reached the log, so the client may retry
        log.warning("redis unavailable on %s %s: %s", request.method, request.url.path, error)
        return JSONResponse(
            _body(-1001, "Internal error; unable to process your request. Please try again."),
            503,
            headers={"Retry-After": "1"},
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return JSONResponse(_body(-1000, "An unexpected error occurred."), 500)
