"""Refuse request bodies over a size limit with 413, before reading them whole.

A plain ASGI middleware: a declared ``Content-Length`` above the limit is answered at once,
without reading a byte of the body; a body without one (chunked) is counted as it arrives
and refused at the first chunk that passes the limit. The rest is never read: the server
closes the connection after the answer.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from libs import codes

DEFAULT_MAX_BODY_BYTES = 64 * 1024
"""Far above any request of the API (an order is a few hundred bytes), far below a flood."""


class BodyTooLarge(Exception):
    """Raised into the app's body read when the body passes the limit."""


class BodyLimit:
    """Answer 413 ``{"code", "msg"}`` to any HTTP request whose body passes ``max_bytes``."""

    def __init__(self, app: ASGIApp, max_bytes: int = DEFAULT_MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = _content_length(scope)
        if declared is None:
            return await _refuse(send, 400, codes.INVALID_PARAM, "Invalid Content-Length.")
        if declared > self.max_bytes:
            return await self._too_large(send)
        received = 0
        over = False
        started = False

        async def counted() -> Message:
            nonlocal received, over
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    over = True
                    raise BodyTooLarge
            return message

        async def guarded(message: Message) -> None:
            nonlocal started
            if over:  # the app answered the failed read (FastAPI turns it into a 400): ours
                if message["type"] == "http.response.start" and not started:
                    started = True
                    await self._too_large(send)
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted, guarded)
        except BodyTooLarge:
            if not started:
                await self._too_large(send)

    async def _too_large(self, send: Send) -> None:
        msg = f"Request body larger than {self.max_bytes} bytes."
        await _refuse(send, 413, codes.PAYLOAD_TOO_LARGE, msg)


def _content_length(scope: Scope) -> int | None:
    """Return the declared body length (0 when none is declared), or None if it is invalid."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() and len(text) <= 18 else None
    return 0


async def _refuse(send: Send, status: int, code: int, msg: str) -> None:
    body = json.dumps({"code": code, "msg": msg}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),  # the unread rest of the body ends the connection
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
