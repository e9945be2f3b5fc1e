"""One bot's HTTP calls to the gateway, as an outside bot makes them: the original API with a
session token for signing up and the faucet, the Binance face with an API key for the rest.

Every call takes a token from the shared request budget, and is sent again after a backoff
while the answer says nothing happened yet: no connection, a timeout, a 5xx, a 429, a 202
``Pending``. Orders carry a client order id, so sending one again is answered with the
original. A bot logs one line when the gateway starts failing it and one when it is back.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import urlencode

from prometheus_client import CollectorRegistry, Counter, Gauge

from services.demo_market.core import TokenBucket, Verdict, backoff, verdict

log = logging.getLogger("demo_market")
RECV_WINDOW_MS = 10_000


class TransportError(Exception):
    """No answer: the connection failed or timed out."""


class Transport(Protocol):
    def send(
        self, method: str, url: str, headers: dict[str, str], body: bytes | None, timeout: float
    ) -> tuple[int, bytes, dict[str, str]]:
        """Send one request; return (status, body, headers) or raise ``TransportError``."""
        ...


class UrllibTransport:
    """HTTP with the standard library (the service needs no client package)."""

    def send(
        self, method: str, url: str, headers: dict[str, str], body: bytes | None, timeout: float
    ) -> tuple[int, bytes, dict[str, str]]:
        request = urllib.request.Request(url, data=body, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as answer:
                return answer.status, answer.read(), dict(answer.headers)
        except urllib.error.HTTPError as error:
            with error:
                return error.code, error.read(), dict(error.headers)
        except (urllib.error.URLError, OSError, ValueError) as error:
            raise TransportError(f"{type(error).__name__}: {error}") from None


class Refused(Exception):
    """The gateway answered no (a 4xx other than 401 and 429)."""

    def __init__(self, status: int, code: object, msg: object) -> None:
        super().__init__(f"HTTP {status} {code}: {msg}")
        self.status, self.code, self.msg = status, code, msg


class AuthLost(Exception):
    """The gateway does not know the bot's token or key any more (401)."""


class Stopped(Exception):
    """The process is stopping: a call gave up waiting."""


class Metrics:
    """The demo market's Prometheus metrics, on its own registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.orders = Counter(
            "demo_orders",
            "orders sent, by what became of them",
            ["bot", "outcome"],
            registry=registry,
        )
        self.requests = Counter(
            "demo_requests",
            "HTTP requests sent, by their answer",
            ["bot", "outcome"],
            registry=registry,
        )
        self.requotes = Counter(
            "demo_requotes", "quote ladders replaced", ["symbol", "reason"], registry=registry
        )
        self.position = Gauge(
            "demo_position", "a bot's position (base units)", ["bot", "symbol"], registry=registry
        )
        self.limit = Gauge(
            "demo_position_limit",
            "a bot's position limit (base units)",
            ["bot", "symbol"],
            registry=registry,
        )


class Budget:
    """The request budget all bots share (a ``TokenBucket`` behind a lock)."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._bucket = TokenBucket(rate, burst, clock())
        self._lock = threading.Lock()

    def wait(self, stop: threading.Event) -> None:
        with self._lock:
            delay = self._bucket.reserve(self._clock())
        if delay > 0 and stop.wait(delay):
            raise Stopped


class Api:
    """A bot's calls; ``token`` (session) and ``key``/``secret`` (API key) once enrolled."""

    def __init__(
        self,
        base_url: str,
        bot: str,
        transport: Transport,
        budget: Budget,
        stop: threading.Event,
        metrics: Metrics,
        timeout: float = 10.0,
        wall_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.bot, self.transport, self.budget, self.stop = bot, transport, budget, stop
        self.metrics, self.timeout, self.wall_ms = metrics, timeout, wall_ms
        self.token: str | None = None
        self.key: str | None = None
        self.secret: str | None = None
        self._failing = 0  # retries since the last answer that was not trouble

    def public(self, path: str, **params: object) -> Any:
        query = f"?{urlencode(params)}" if params else ""
        return self._call("GET", lambda: (f"{self.base_url}{path}{query}", {}, None))

    def session(self, method: str, path: str, body: dict | None = None, **kw: Any) -> Any:
        """A call of the original API, with the session token when there is one."""

        def build() -> tuple[str, dict[str, str], bytes | None]:
            headers = {"Content-Type": "application/json"}
            if self.token:
                headers["Authorization"] = f"Bearer {self.token}"
            data = json.dumps(body).encode() if body is not None else None
            return f"{self.base_url}{path}", headers, data

        return self._call(method, build, **kw)

    def signed(self, method: str, path: str, **params: object) -> Any:
        """A Binance-signed call: parameters in the query, HMAC-SHA256 of it with the secret,
        signed afresh (a new timestamp) on every attempt."""

        def build() -> tuple[str, dict[str, str], bytes | None]:
            if self.key is None or self.secret is None:
                raise AuthLost("no API key yet")
            query = urlencode({**params, "recvWindow": RECV_WINDOW_MS, "timestamp": self.wall_ms()})
            signature = hmac.new(self.secret.encode(), query.encode(), hashlib.sha256).hexdigest()
            url = f"{self.base_url}{path}?{query}&signature={signature}"
            return url, {"X-MBX-APIKEY": self.key}, None

        return self._call(method, build)

    def _call(
        self,
        method: str,
        build: Callable[[], tuple[str, dict[str, str], bytes | None]],
        pending_ok: bool = False,
    ) -> Any:
        """Send until an answer that is not trouble: return its JSON body, or raise."""
        attempt = 0
        while True:
            self.budget.wait(self.stop)
            url, headers, body = build()
            path = url.removeprefix(self.base_url).split("?", 1)[0]
            status: int | None = None
            retry_after = None
            try:
                status, raw, answer_headers = self.transport.send(
                    method, url, headers, body, self.timeout
                )
                data = _json(raw)
                retry_after = _seconds(answer_headers.get("Retry-After"))
                trouble = f"HTTP {status} {_said(data)}"
            except TransportError as error:
                data, trouble = None, str(error)
            outcome = verdict(status)
            if outcome is Verdict.RETRY and status == 202 and pending_ok:
                outcome = Verdict.OK
            self.metrics.requests.labels(self.bot, outcome.value).inc()
            if outcome is Verdict.RETRY:
                if not self._failing:
                    log.warning("%s: %s %s: %s; retrying", self.bot, method, path, trouble)
                self._failing += 1
                if self.stop.wait(retry_after or backoff(attempt)):
                    raise Stopped
                attempt += 1
                continue
            if self._failing:
                log.info(
                    "%s: the gateway answers again (after %d retries)", self.bot, self._failing
                )
                self._failing = 0
            if outcome is Verdict.AUTH:
                raise AuthLost(f"{method} {path}: {trouble}")
            if outcome is Verdict.REFUSED:
                assert status is not None
                said = data if isinstance(data, dict) else {}
                raise Refused(status, said.get("code"), said.get("msg") or said.get("detail"))
            return data


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return raw[:200].decode(errors="replace")


def _said(data: Any) -> str:
    if isinstance(data, dict):
        return f"{data.get('code', '')} {data.get('msg') or data.get('status') or ''}".strip()
    return str(data)[:120] if data else ""


def _seconds(text: str | None) -> float | None:
    try:
        return min(30.0, max(0.0, float(text))) if text else None
    except ValueError:
        return None
