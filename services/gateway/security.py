"""Passwords, session tokens and signed requests: pure functions, no I/O.

Passwords are hashed with argon2id (argon2-cffi's RFC 9106 low-memory profile).

Sessions are HS256 JWTs carrying ``sub`` (the user id as a string), ``iat``, ``exp`` and
``aud`` = ``TOKEN_AUDIENCE``; the audience keeps any other JWT signed with the same secret from
passing as a session. Expiry is checked against the issuer's injected clock, with no leeway.
A token that verified is remembered (the exact string, with its user and expiry) so that the
next requests with it skip the signature check; its expiry is still checked on every request.

Bots sign requests the way Binance's USD-M futures API does:

- the API key's public id travels in the ``X-API-KEY`` header;
- the query string carries ``timestamp`` (ms since the epoch), optionally ``recvWindow`` (ms,
  1..60000, default 5000) and, last, ``signature``;
- the signed payload is Binance's *totalParams*: the raw query string exactly as sent (still
  percent-encoded, in the client's order) with the ``signature`` parameter and its ``&``
  removed, immediately followed by the raw request body (no separator; empty when there is
  none), both as UTF-8;
- ``signature`` is the lower- or upper-case hex HMAC-SHA256 of that payload under the key's
  secret.

A request is accepted when the signature matches (``signature_ok``) and ``check_timestamp``
passes: not more than ``CLOCK_SKEW_MS`` ahead of the server, not older than ``recvWindow``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Callable

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import VerificationError

TOKEN_AUDIENCE = "perp-exchange:session"
MIN_TOKEN_SECRET_BYTES = 32  # RFC 7518 §3.2: an HS256 key at least as long as the hash

DEFAULT_RECV_WINDOW_MS = 5_000
MAX_RECV_WINDOW_MS = 60_000
CLOCK_SKEW_MS = 1_000

_HEX_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
_USER_ID = re.compile(r"[1-9][0-9]*")  # a positive integer in canonical form

_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    """Return the argon2id hash of ``password`` (PHC string, salt included)."""
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """Return True when ``password`` matches; False on a mismatch or a malformed hash."""
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, ValueError):  # ValueError: InvalidHashError, non-ASCII hash
        return False


def needs_rehash(password_hash: str) -> bool:
    """Return True when the hash was made with other parameters (or is malformed): store anew."""
    try:
        return _hasher.check_needs_rehash(password_hash)
    except ValueError:
        return True


class InvalidToken(Exception):
    """The session token is not one this gateway issued, or it has expired."""


VERIFIED_TOKENS = 10_000
"""Verified tokens remembered per issuer (about 350 bytes each, so a few MB): the sessions of
the users active on one gateway; past that the oldest are checked in full again."""


class TokenIssuer:
    """Issue and verify session tokens (HS256 JWTs) that live ``ttl_seconds``."""

    def __init__(
        self,
        secret: str,
        ttl_seconds: int,
        clock: Callable[[], float] = time.time,
        remembered: int = VERIFIED_TOKENS,
    ) -> None:
        size = len(secret.encode())
        if size < MIN_TOKEN_SECRET_BYTES:
            raise ValueError(
                f"token secret is {size} bytes; HS256 needs at least {MIN_TOKEN_SECRET_BYTES} "
                "(make one: python -c 'import secrets; print(secrets.token_urlsafe(48))')"
            )
        if ttl_seconds <= 0:
            raise ValueError(f"token ttl must be positive, got {ttl_seconds} s")
        self._secret = secret
        self._ttl = ttl_seconds
        self._clock = clock
        self._remembered = remembered
        # token -> (user id, exp), oldest first. Only tokens whose signature matched get in,
        # so the same string is the same signed claims: nothing to check again but the time.
        self._verified: dict[str, tuple[int, int]] = {}

    def issue(self, user_id: int) -> str:
        """Return a token for ``user_id``, valid from now for the configured ttl."""
        now = int(self._clock())
        claims = {"sub": str(user_id), "iat": now, "exp": now + self._ttl, "aud": TOKEN_AUDIENCE}
        return jwt.encode(claims, self._secret, algorithm="HS256")

    def verify(self, token: str) -> int:
        """Return the user id the token was issued for, or raise ``InvalidToken`` saying why."""
        known = self._verified.get(token)
        if known is not None:
            user_id, exp = known
            if self._clock() >= exp:
                del self._verified[token]
                raise InvalidToken("token has expired")
            return user_id
        user_id, exp = self._check(token)
        self._verified[token] = (user_id, exp)
        if len(self._verified) > self._remembered:
            del self._verified[next(iter(self._verified))]
        return user_id

    def _check(self, token: str) -> tuple[int, int]:
        """The full check: signature, audience, claims, expiry; the user id and expiry."""
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=["HS256"],
                audience=TOKEN_AUDIENCE,
                options={
                    "require": ["sub", "iat", "exp", "aud"],
                    # Time is checked below against the injected clock, not PyJWT's own.
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                },
            )
        except jwt.InvalidSignatureError:
            raise InvalidToken("token signature does not match") from None
        except jwt.InvalidAudienceError:
            raise InvalidToken("token is not a session token of this exchange") from None
        except jwt.MissingRequiredClaimError as error:
            raise InvalidToken(f"token lacks the {error.claim!r} claim") from None
        except jwt.InvalidTokenError as error:
            raise InvalidToken(f"malformed token: {error}") from None
        exp = claims["exp"]
        if not isinstance(exp, int) or isinstance(exp, bool):
            raise InvalidToken("token expiry is not an integer")
        if self._clock() >= exp:
            raise InvalidToken("token has expired")
        sub = claims["sub"]
        if not isinstance(sub, str) or not _USER_ID.fullmatch(sub):
            raise InvalidToken("token subject is not a user id")
        return int(sub), exp


class StaleRequest(Exception):
    """The signed request's timestamp is outside the accepted window."""


class BadRecvWindow(Exception):
    """recvWindow is not within 1..MAX_RECV_WINDOW_MS."""


def sign(secret: str, payload: str) -> str:
    """Return the lower-case hex HMAC-SHA256 of ``payload`` under ``secret``."""
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def signature_ok(secret: str, payload: str, signature: str) -> bool:
    """Return True when ``signature`` is the hex HMAC of ``payload``; compare in constant time."""
    if not _HEX_SHA256.fullmatch(signature):
        return False
    return hmac.compare_digest(sign(secret, payload), signature.lower())


def check_timestamp(timestamp_ms: int, recv_window_ms: int, now_ms: int) -> None:
    """Raise unless the request was made at most ``recv_window_ms`` before ``now_ms``.

    A timestamp up to ``CLOCK_SKEW_MS`` ahead of the server is accepted: client clocks drift.
    """
    if not 1 <= recv_window_ms <= MAX_RECV_WINDOW_MS:
        raise BadRecvWindow(f"recvWindow must be 1..{MAX_RECV_WINDOW_MS} ms, got {recv_window_ms}")
    if timestamp_ms > now_ms + CLOCK_SKEW_MS:
        raise StaleRequest(
            f"timestamp {timestamp_ms} is {timestamp_ms - now_ms} ms ahead of the server "
            f"(at most {CLOCK_SKEW_MS} ms allowed)"
        )
    if now_ms - timestamp_ms > recv_window_ms:
        raise StaleRequest(
            f"timestamp {timestamp_ms} is {now_ms - timestamp_ms} ms old, "
            f"outside recvWindow {recv_window_ms} ms"
        )
