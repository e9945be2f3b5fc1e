"""ccxt pointed at this exchange's gateway: its Binance URLs rewritten to the gateway's, and a
requests session that sends its calls into the in-process app (the unit tests' gateway)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import ccxt
import requests
from requests.structures import CaseInsensitiveDict


def gateway_urls(base: str, kind: Any = ccxt.binanceusdm) -> dict:
    """Every Binance URL the client knows (REST, and WebSocket for ccxt.pro), pointed at the
    gateway: the same path on the gateway's host."""
    sockets = base.replace("http://", "ws://", 1)

    def point(url: str) -> str:
        scheme, rest = url.split("://", 1)
        path = rest.partition("/")[2]
        return f"{sockets if scheme.startswith('ws') else base}/{path}"

    def walk(urls: Any) -> Any:
        return {k: walk(v) for k, v in urls.items()} if isinstance(urls, dict) else point(urls)

    return walk(kind().urls["api"])


class InProcess(requests.Session):
    """A requests session that sends ccxt's requests to the in-process app of ``stack``
    (``stack.client``, an httpx client) and nowhere else; ``seen`` lists them."""

    def __init__(self, stack: Any) -> None:
        super().__init__()
        self.stack = stack
        self.seen: list[str] = []

    def request(  # type: ignore[override]
        self, method: str, url: str, data: Any = None, headers: Any = None, **_: Any
    ) -> requests.Response:
        parts = urlsplit(url)
        assert parts.netloc == "gateway", url
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        self.seen.append(f"{method} {parts.path}")
        reply = self.stack.client.request(method, path, content=data, headers=headers)
        response = requests.Response()
        response.status_code = reply.status_code
        response.reason = reply.reason_phrase
        response.headers = CaseInsensitiveDict(reply.headers)
        response._content = reply.content
        response.url = url
        return response
