"""The Binance face's user data stream keys: ``POST``/``PUT``/``DELETE /fapi/v1/listenKey``.

As Binance: the calls carry ``X-MBX-APIKEY`` only (no signature); a key is 64 random
characters, valid for 60 minutes after its creation or last keep-alive, and one per API key
(``POST`` while it is valid returns the same key and extends it). ``/ws/<listenKey>`` (or
``/private/ws?listenKey=``) then streams that user's events (``streams.py``).

The keys live in Redis, written by the gateway alone (``LISTEN_KEY_PREFIX``, among
``services/gateway/limits.py``'s ``OWNED_PATTERNS``), so every gateway process knows them:
``listenkey:key:{listenKey}`` -> user id and ``listenkey:api:{api key id}`` -> listenKey,
both expiring together.
"""

from __future__ import annotations

import secrets
import string
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import APIRouter, Request
from redis.asyncio import Redis
from starlette.concurrency import run_in_threadpool

from libs import codes
from services.gateway.auth import too_many
from services.gateway.binance.signed import MAX_KEY_LENGTH
from services.gateway.errors import ApiError
from services.gateway.limits import LISTEN_KEY_PREFIX as KEY_PREFIX

VALIDITY_SECONDS = 3600
KEY_LENGTH = 64
_ALPHABET = string.ascii_letters + string.digits

router = APIRouter(tags=["binance"])


def random_key() -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(KEY_LENGTH))


def looks_like_key(text: str) -> bool:
    return len(text) == KEY_LENGTH and text.isascii() and text.isalnum()


def _user_key(listen_key: str) -> str:
    return f"{KEY_PREFIX}key:{listen_key}"


def _api_key(api_key_id: int) -> str:
    return f"{KEY_PREFIX}api:{api_key_id}"


class ListenKeys:
    """The listen keys in Redis; ``new_key`` makes a fresh one (random by default)."""

    def __init__(
        self,
        redis: Redis,
        validity_seconds: int = VALIDITY_SECONDS,
        new_key: Callable[[], str] = random_key,
    ) -> None:
        self.redis, self.validity, self.new_key = redis, validity_seconds, new_key

    async def open(self, api_key_id: int, user_id: int) -> str:
        """Return the API key's listen key, extended, or a new one when it has none."""
        current = await self.keep_alive(api_key_id)
        if current is not None:
            return current
        listen_key = self.new_key()
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(_user_key(listen_key), user_id, ex=self.validity)
            pipe.set(_api_key(api_key_id), listen_key, ex=self.validity)
            await pipe.execute()
        return listen_key

    async def keep_alive(self, api_key_id: int) -> str | None:
        """Extend the API key's listen key by the validity; None when it has none."""
        listen_key = await self._of_api_key(api_key_id)
        if listen_key is None or not await self.redis.expire(_user_key(listen_key), self.validity):
            return None
        await self.redis.expire(_api_key(api_key_id), self.validity)
        return listen_key

    async def close(self, api_key_id: int) -> None:
        listen_key = await self._of_api_key(api_key_id)
        if listen_key is not None:
            await self.redis.delete(_user_key(listen_key), _api_key(api_key_id))

    async def _of_api_key(self, api_key_id: int) -> str | None:
        found = await self.redis.get(_api_key(api_key_id))
        return found.decode() if isinstance(found, bytes) else found

    async def user_of(self, listen_key: str) -> int | None:
        """The user whose events ``listen_key`` streams; None when it is unknown or expired."""
        if not looks_like_key(listen_key):
            return None
        user = await self.redis.get(_user_key(listen_key))
        return None if user is None else int(user)


def listen_keys(app: object) -> ListenKeys:
    """The listen keys on the app's Redis (the read model's client: the gateway has one)."""
    return ListenKeys(app.state.gateway.reads.redis)  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class Caller:
    api_key_id: int
    user_id: int


async def _caller(request: Request) -> Caller:
    """The API key in ``X-MBX-APIKEY`` (Binance's answers: -2014, -2015), rate limited as a
    signed call."""
    key = request.headers.get("x-mbx-apikey", "")
    if not key or len(key) > MAX_KEY_LENGTH or not key.isascii():
        raise ApiError(401, codes.NO_SUCH_API_KEY, "API-key format invalid.")
    auth = request.app.state.auth
    api_key = await run_in_threadpool(auth.users.find_active_api_key, key)
    if api_key is None:
        raise ApiError(
            401, codes.INVALID_API_KEY, "Invalid API-key, IP, or permissions for action."
        )
    wait = await auth.limiter.hit(f"user:{api_key.user_id}", auth.user_rate_per_second, 1)
    if wait is not None:
        raise too_many(wait)
    return Caller(api_key.id, api_key.user_id)


def _no_such_key() -> ApiError:
    return ApiError(400, codes.NO_SUCH_LISTEN_KEY, "This listenKey does not exist.")


@router.post("/fapi/v1/listenKey")
async def create(request: Request) -> dict:
    """Start (or extend) the caller's user data stream."""
    caller = await _caller(request)
    return {"listenKey": await listen_keys(request.app).open(caller.api_key_id, caller.user_id)}


@router.put("/fapi/v1/listenKey")
async def keep_alive(request: Request) -> dict:
    """Keep the caller's user data stream alive for another 60 minutes."""
    caller = await _caller(request)
    listen_key = await listen_keys(request.app).keep_alive(caller.api_key_id)
    if listen_key is None:
        raise _no_such_key()
    return {"listenKey": listen_key}


@router.delete("/fapi/v1/listenKey")
async def close(request: Request) -> dict:
    """Close the caller's user data stream: its connections get ``listenKeyExpired``."""
    caller = await _caller(request)
    await listen_keys(request.app).close(caller.api_key_id)
    return {}
