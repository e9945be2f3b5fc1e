"""Who is calling a signed endpoint, Binance's way, and with which parameters.

Binance USDⓈ-M signs *totalParams*: the query string exactly as received, immediately followed
by the raw body (``application/x-www-form-urlencoded`` on POST, PUT and DELETE), with the
``signature`` parameter and its ``&`` taken out of whichever of the two carries it. The key's
public id travels in ``X-MBX-APIKEY``; ``timestamp`` (ms) is mandatory and ``recvWindow``
(ms, default 5000, at most 60000) bounds its age. Binance's answers: -2014 (no or malformed
key), -2015 (unknown key), -1102 (no timestamp), -1021 (outside the window), -1022 (bad
signature). The parameters are the query's and the body's together, as Binance reads them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import parse_qsl

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from libs import codes
from services.gateway.auth import too_many
from services.gateway.binance.names import mandatory
from services.gateway.errors import ApiError
from services.gateway.security import (
    DEFAULT_RECV_WINDOW_MS,
    BadRecvWindow,
    StaleRequest,
    check_timestamp,
    signature_ok,
)

MAX_KEY_LENGTH = 128


@dataclass(frozen=True, slots=True)
class Signed:
    """A verified caller and the request's parameters (``signature`` left out)."""

    user_id: int
    params: dict[str, str]


def _without_signature(raw: str) -> tuple[str, list[str]]:
    """Return ``raw`` without its ``signature`` parameter, and the signatures it held."""
    parts = raw.split("&") if raw else []
    kept = [p for p in parts if not p.startswith("signature=")]
    return "&".join(kept), [p.removeprefix("signature=") for p in parts if p not in kept]


def _stale(msg: str) -> ApiError:
    return ApiError(400, codes.STALE_TIMESTAMP, msg)


async def signed_call(request: Request) -> Signed:
    """Verify a Binance-signed request; return its caller and parameters."""
    key = request.headers.get("x-mbx-apikey", "")
    if not key or len(key) > MAX_KEY_LENGTH or not key.isascii():
        raise ApiError(401, codes.NO_SUCH_API_KEY, "API-key format invalid.")
    query, in_query = _without_signature(request.url.query)
    body = (await request.body()).decode("utf-8", "replace")
    body, in_body = _without_signature(body)
    signatures = in_query + in_body
    if len(signatures) != 1:
        raise mandatory("signature")
    params = dict(parse_qsl(query)) | dict(parse_qsl(body))
    if "timestamp" not in params:
        raise mandatory("timestamp")
    try:
        timestamp = int(params["timestamp"])
        window = int(params.get("recvWindow", DEFAULT_RECV_WINDOW_MS))
    except ValueError:
        raise ApiError(
            400, codes.INVALID_PARAM, "Illegal characters found in parameter 'timestamp'."
        ) from None
    try:
        check_timestamp(timestamp, window, time.time_ns() // 1_000_000)
    except StaleRequest:
        raise _stale("Timestamp for this request is outside of the recvWindow.") from None
    except BadRecvWindow as error:
        raise _stale(str(error)) from None
    auth = request.app.state.auth
    api_key = await run_in_threadpool(auth.users.find_active_api_key, key)
    if api_key is None:
        raise ApiError(
            401, codes.INVALID_API_KEY, "Invalid API-key, IP, or permissions for action."
        )
    if not signature_ok(api_key.secret, query + body, signatures[0]):
        raise ApiError(400, codes.BAD_SIGNATURE, "Signature for this request is not valid.")
    wait = await auth.limiter.hit(f"user:{api_key.user_id}", auth.user_rate_per_second, 1)
    if wait is not None:
        raise too_many(wait)
    params.pop("signature", None)
    return Signed(api_key.user_id, params)


SignedCall = Annotated[Signed, Depends(signed_call)]
