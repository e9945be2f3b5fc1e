"""Every error leaves the gateway as ``{"code": ..., "msg": ...}`` with a 4xx status.

The codes are ``libs.codes``: Binance USDⓈ-M's where one exists (the engines' rejections
already use them) and a few of the gateway's own; a 5xx is -1000 (a bug), or -1001 with a 503
when the request did not reach the log or Redis cannot serve (safe to retry).
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError
from starlette.exceptions import HTTPException

from libs import codes

log = logging.getLogger("services.gateway")


class ApiError(Exception):
    """A refusal: its status, code and message; ``field``, the request's field it is about
    (the Binance face words a refusal by it, in Binance's names)."""

    def __init__(
        self,
        status: int,
        code: int,
        msg: str,
        headers: dict[str, str] | None = None,
        *,
        field: str | None = None,
    ) -> None:
        super().__init__(msg)
        self.status, self.code, self.msg, self.headers = status, code, msg, headers
        self.field = field


def unauthorized(msg: str) -> ApiError:
    return ApiError(401, codes.UNAUTHORIZED, msg, {"WWW-Authenticate": "Bearer"})


def invalid(msg: str, field: str | None = None) -> ApiError:
    return ApiError(400, codes.INVALID_PARAM, msg, field=field)


def missing(field: str, msg: str) -> ApiError:
    return ApiError(400, codes.MANDATORY_PARAM, msg, field=field)


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
        code = codes.MANDATORY_PARAM if missing else codes.INVALID_PARAM
        return JSONResponse(_body(code, f"{where}: {first.get('msg', 'invalid')}"), 400)

    @app.exception_handler(HTTPException)
    async def http_error(_request: Request, error: HTTPException) -> JSONResponse:
        # FastAPI's 400 is a body it could not parse (not UTF-8, nested too deep, an integer
        # too long): an invalid parameter like malformed JSON. Unknown paths and methods keep
        # their HTTP status as the code: Binance has none for them.
        status = error.status_code
        code = codes.INVALID_PARAM if status == 400 else status
        return JSONResponse(_body(code, str(error.detail)), status, headers=error.headers)

    @app.exception_handler(RedisError)
    async def redis_error(request: Request, error: RedisError) -> JSONResponse:
        # the limiter or the read model is unreachable or out of connections: an outage of
        # ours, not a bug; nothing reached the log, so the client may retry
        log.warning("redis unavailable on %s %s: %s", request.method, request.url.path, error)
        return JSONResponse(
            _body(codes.DISCONNECTED, codes.MESSAGES[codes.DISCONNECTED]),
            503,
            headers={"Retry-After": "1"},
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return JSONResponse(_body(codes.UNEXPECTED, codes.MESSAGES[codes.UNEXPECTED]), 500)
