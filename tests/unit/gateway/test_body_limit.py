"""The real gateway app (composition root, no stack behind it) refuses oversized bodies with
413 {"code", "msg"} on every endpoint, without reading them: driven as raw ASGI, so the test
sees exactly how much of the body the app asked for."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Iterator

import pytest

from services.gateway.app import create_app
from services.gateway.errors import unauthorized
from services.gateway.settings import GatewaySettings

LIMIT = 65536
CHUNK = 16 * 1024


class OpenLimiter:
    async def hit(self, bucket: str, limit: int, window: int) -> None:
        return None


class NobodyAuth:
    async def caller(self, request) -> int:
        raise unauthorized("No such user.")


@pytest.fixture(scope="module")
def app():
    settings = GatewaySettings(
        kafka_bootstrap_servers="127.0.0.1:1",
        database_url="postgresql://nobody@127.0.0.1:1/none",
        redis_url="redis://127.0.0.1:1/0",
        jwt_secret="s" * 40,
    )
    app = create_app(settings)  # the lifespan (Postgres, Redis, Kafka) is never started
    app.state.settings, app.state.limiter, app.state.auth = settings, OpenLimiter(), NobodyAuth()
    return app


def call(app, path: str, chunks: Iterator[bytes], length: int | str | None = None):
    """POST one request (chunked when ``length`` is None); return (status, body as JSON,
    chunks the app read, the Connection header)."""
    headers = [(b"host", b"test"), (b"content-type", b"application/json")]
    if length is None:
        headers.append((b"transfer-encoding", b"chunked"))
    else:
        headers.append((b"content-length", str(length).encode()))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
    }
    read = 0
    sent: list[dict] = []

    async def receive() -> dict:
        nonlocal read
        chunk = next(chunks, None)
        if chunk is None:
            return {"type": "http.request", "body": b"", "more_body": False}
        read += 1
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    [start] = [m for m in sent if m["type"] == "http.response.start"]
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], json.loads(body), read, dict(start["headers"]).get(b"connection")


@pytest.mark.parametrize("path", ["/place_order", "/deposit", "/signup", "/cancel", "/nowhere"])
def test_a_declared_body_over_the_limit_is_refused_before_a_byte_is_read(app, path):
    ten_mb = 10 * 1024 * 1024
    status, body, read, connection = call(app, path, iter([b"x" * ten_mb]), length=ten_mb)
    assert status == 413
    assert body == {"code": -1413, "msg": f"Request body larger than {LIMIT} bytes."}
    assert read == 0
    assert connection == b"close"


@pytest.mark.parametrize("path", ["/place_order", "/signup", "/deposit", "/amend"])
def test_a_chunked_body_is_counted_and_refused_at_the_chunk_that_passes_the_limit(app, path):
    ten_mb = itertools.repeat(b"{" * CHUNK, 640)  # 10 MB, and no Content-Length
    status, body, read, connection = call(app, path, ten_mb)
    assert status == 413
    assert body == {"code": -1413, "msg": f"Request body larger than {LIMIT} bytes."}
    assert read == LIMIT // CHUNK + 1  # what passed the limit, not a byte more
    assert connection == b"close"


def test_a_route_that_never_reads_its_body_never_counts_it(app):
    status, _, read, _ = call(app, "/nowhere", itertools.repeat(b"{" * CHUNK, 640))
    assert (status, read) == (404, 0)


def test_a_body_at_the_limit_still_reaches_the_route_and_one_byte_more_does_not(app):
    head, tail = b'{"symbol": "BTC-PERP", "pad": "', b'"}'
    body = head + b" " * (LIMIT - len(head) - len(tail)) + tail
    assert len(body) == LIMIT
    for length in (LIMIT, None):  # declared, and chunked
        status, answer, _, _ = call(app, "/place_order", iter([body]), length=length)
        assert status == 401 and set(answer) == {"code", "msg"}  # the route's own answer
        status, _, _, _ = call(app, "/place_order", iter([body + b" "]), length=length)
        assert status == 413


def test_an_invalid_content_length_is_a_400_with_code_and_msg(app):
    status, body, read, _ = call(app, "/place_order", iter([b"{}"]), length="12x")
    assert (status, body["code"], read) == (400, -1130, 0)
