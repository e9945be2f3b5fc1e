"""The operations endpoint every engine serves on its own port: /metrics, /digest, /healthz.

A tiny stdlib HTTP server on a daemon thread, so an engine's main loop stays synchronous.
``digest`` is the service's callable: given the query parameters, it returns the JSON body
(e.g. ``{"symbol": ..., "digest": ..., "offset": ...}``) or raises ``LookupError``.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import signal
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

from libs import codes

DigestFn = Callable[[dict[str, str]], dict]


class OpsServer:
    """Serve /metrics, /digest and /healthz on 127.0.0.1:``port`` until ``close()``."""

    def __init__(
        self,
        port: int,
        digest: DigestFn | None = None,
        registry: CollectorRegistry = REGISTRY,
        host: str = "127.0.0.1",
    ) -> None:
        handler = _handler(digest, registry)
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _handler(digest: DigestFn | None, registry: CollectorRegistry) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlparse(self.path)
            if url.path == "/metrics":
                self._send(200, generate_latest(registry), CONTENT_TYPE_LATEST)
            elif url.path == "/healthz":
                self._json(200, {"status": "ok"})
            elif url.path == "/digest" and digest is not None:
                query = {k: v[-1] for k, v in parse_qs(url.query).items()}
                try:
                    self._json(200, digest(query))
                except LookupError as error:
                    self._json(404, {"code": codes.INVALID_SYMBOL, "msg": str(error)})
            else:
                self._json(404, {"code": 404, "msg": "not found"})

        def _json(self, status: int, body: dict) -> None:
            self._send(status, json.dumps(body).encode(), "application/json")

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return None  # scrapes every few seconds would drown the service log

    return Handler


def configure_logging() -> None:
    """One log format for every engine process."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")


def stop_on_signals() -> threading.Event:
    """Return an event that SIGTERM or SIGINT sets, so the main loop finishes its turn and
    shuts down cleanly. Call it after forking helpers, which keep the default handlers."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    return stop


OFF_REPLY_PATH_NICENESS = 10
"""The niceness of the engines no reply waits for (position engine, projector): on two shared
cores, the scheduler then runs the gateway, the wallet and the matcher first when they wake,
and these batch what came meanwhile (issue 12: p99 at 300-400 orders/s about halved)."""


def lower_priority(niceness: int) -> None:
    """Add ``niceness`` to this process's. Call it before any thread starts: Linux keeps a
    niceness per thread, and a new thread takes its creator's."""
    if niceness:
        os.nice(niceness)


GC_THRESHOLDS = (50_000, 20, 100)
"""Young collections every 50,000 net allocations instead of CPython's 700 (and older ones
accordingly rarer): a request's or a turn's objects then mostly die by reference counting
before a collection promotes them, so full collections come seldom."""


def calm_gc() -> None:
    """Take what start-up built (modules, the app, its schemas) out of the cyclic collector's
    reach and make its collections rare. Call it when start-up is done, before any fork.

    With CPython's defaults, at 400 orders/s the gateway ran a full collection every 3 s or
    so over about 145,000 objects, 110-140 ms each with every request in flight waiting, and
    the other engines 40-90 ms ones (issue 12, ``gc.callbacks`` timings)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
