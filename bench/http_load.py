"""The gateway benches' shared parts: a lean open-loop HTTP client, the stack and its users,
one measured step (latency, the gateway's own breakdown, CPU per order by process).

Request i is due at ``i / rate`` seconds and its latency runs from when it was due, so a
stalled server is not hidden by a stalled client. The client is a minimal keep-alive
HTTP/1.1 client on asyncio. A request may name a client address (any 127.x.y.z works on
Linux loopback) to be sent from: each address has a pool of connections of its own, so the
gateway sees as many client IPs as the workload uses.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import sys
import time
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

import httpx

from bench.stack_cpu import (
    CpuProbe,
    RequestProbe,
    machine_seconds,
    ms_per_order,
    requests_per_order,
    stolen_percent,
)
from services.gateway.security import TokenIssuer
from tests.e2e.stack import Stack

TOKEN_TTL_SECONDS = 3600  # a bench run is minutes long
# Before anything is measured: connections, caches, and the broker's JIT. A fresh broker
# compiles its hot paths over its first minute or so of traffic (its C2 compiler thread took
# half a core at 50 orders/s, and the broker 20 ms of CPU per order against 11.6 ms warm):
# a running exchange is warm, so the figures are taken warm.
WARMUP_RATE, WARMUP_SECONDS = 50, 30


class Connection:
    """One keep-alive HTTP/1.1 connection; reopened when the server has closed it (uvicorn
    drops connections idle for 5 s, which low rates over many connections reach)."""

    def __init__(self, host: str, port: int, source: str | None = None) -> None:
        self.host, self.port, self.source = host, port, source
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, token: str, body: bytes) -> tuple[int, bytes]:
        for attempt in (1, 2):
            if self.writer is None:
                local = (self.source, 0) if self.source else None
                self.reader, self.writer = await asyncio.open_connection(
                    self.host, self.port, local_addr=local
                )
            try:
                return await self._exchange(path, token, body)
            except (asyncio.IncompleteReadError, ConnectionError):
                self.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def _exchange(self, path: str, token: str, body: bytes) -> tuple[int, bytes]:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        self.writer.write(head.encode() + body)
        status_line = await self.reader.readuntil(b"\r\n")
        length = 0
        while (line := await self.reader.readuntil(b"\r\n")) != b"\r\n":
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        return int(status_line.split()[1]), await self.reader.readexactly(length)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


@dataclass(frozen=True)
class Request:
    path: str
    token: str
    body: bytes
    source: str | None = None  # the client address to send from; None: the default one


def status_of(status: int, reply: bytes) -> str:
    """Name a reply by its JSON ``status`` (``New``, ``Filled``, ``Pending``...), else its HTTP
    status."""
    if status >= 500:
        return str(status)
    try:
        found = json.loads(reply)
    except ValueError:
        return str(status)
    return found.get("status", str(status)) if isinstance(found, dict) else str(status)


CONNECTION_ERROR = "connection error"


def quantile(ms: list[float], q: float) -> float:
    """The ``q`` quantile of sorted ``ms`` (the value at rank ``int(n * q)``), nan if empty."""
    return ms[min(len(ms) - 1, int(len(ms) * q))] if ms else float("nan")


class OpenLoop:
    """Open-loop load over keep-alive connections, ``connections`` of them per client address."""

    def __init__(self, url: str, connections: int) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.host, self.port, self.connections = host, int(port), connections

    async def run(
        self,
        rate: float,
        seconds: float,
        request: Callable[[int], Request],
        classify: Callable[[Request, int, bytes], str] | None = None,
    ) -> dict:
        """Send ``request(i)`` for i in 0 .. rate * seconds, each when due; return the rate
        achieved (requests over the time to the last reply), the rate offered (over the time to
        the last send: below ``rate`` only when this client fell behind its schedule), latency
        quantiles (ms from due to reply) and the count of each outcome (``classify(request,
        status, body)``, by default ``status_of``)."""
        # Last in, first out: at low rates a few warm connections do the work.
        pools: dict[str | None, asyncio.LifoQueue[Connection]] = {}
        total = int(rate * seconds)
        latencies: list[float] = []
        statuses: dict[str, int] = {}
        tasks = []
        started = time.perf_counter()

        def pool(source: str | None) -> asyncio.LifoQueue[Connection]:
            if source not in pools:
                pools[source] = asyncio.LifoQueue()
                for _ in range(self.connections):
                    pools[source].put_nowait(Connection(self.host, self.port, source))
            return pools[source]

        async def one(i: int, due: float) -> None:
            wanted = request(i)
            free = pool(wanted.source)
            connection = await free.get()
            try:
                status, reply = await connection.post(wanted.path, wanted.token, wanted.body)
            except (OSError, asyncio.IncompleteReadError):
                kind = CONNECTION_ERROR
            else:
                kind = classify(wanted, status, reply) if classify else status_of(status, reply)
            latencies.append(time.perf_counter() - due)
            statuses[kind] = statuses.get(kind, 0) + 1
            free.put_nowait(connection)

        for i in range(total):
            due = started + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i, due)))
        sending = time.perf_counter() - started
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - started
        for free in pools.values():
            while not free.empty():
                free.get_nowait().close()
        ms = sorted(x * 1000 for x in latencies)
        return {
            "rate": rate,
            "achieved": total / elapsed,
            "offered": total / sending if sending > 0 else float("inf"),
            "sent": total,
            "p50": quantile(ms, 0.5),
            "p90": quantile(ms, 0.9),
            "p99": quantile(ms, 0.99),
            "max": ms[-1] if ms else float("nan"),
            "statuses": statuses,
        }


def start_stack() -> Stack:
    """Every service as a process on private topics, on the broker, Postgres and Redis of the
    environment (``make bench`` starts them)."""
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per setup request
    stack = Stack(
        os.environ["KAFKA_BOOTSTRAP_SERVERS"], os.environ["DATABASE_URL"], os.environ["REDIS_URL"]
    )
    try:
        stack.start()
    except BaseException:
        stack.stop()
        raise
    return stack


async def signup(stack: Stack, users: int, deposit: str, concurrency: int = 4) -> list[str]:
    """Sign up ``users`` users, each with a ``deposit`` of USDT; return their tokens in order.
    The tokens are issued here with the stack's secret, as its gateway would at sign-in, to
    spare a second password hash per user; a few users at a time, since each waits on its
    password hash and on its deposit's way through Kafka."""
    started = time.perf_counter()
    tokens = TokenIssuer(stack.services["gateway"].env["JWT_SECRET"], TOKEN_TTL_SECONDS)
    gate = asyncio.Semaphore(concurrency)
    stamp = time.time_ns()

    async def one(api: httpx.AsyncClient, n: int) -> str:
        async with gate:
            credentials = {"email": f"bench{n}-{stamp}@example.com", "password": "x" * 12}
            user = (await api.post("/signup", json=credentials)).raise_for_status().json()
            token = tokens.issue(user["user_id"])
            headers = {"Authorization": f"Bearer {token}"}
            body = {"asset": "USDT", "amount": deposit}
            (await api.post("/deposit", json=body, headers=headers)).raise_for_status()
            return token

    async with httpx.AsyncClient(base_url=stack.url, timeout=30) as api:
        found = list(await asyncio.gather(*(one(api, n) for n in range(users))))
    log(f"signed up {users} users in {time.perf_counter() - started:.0f} s")
    return found


def log(line: str) -> None:
    """Progress on stderr (python -m bench passes it through; the section is stdout)."""
    print(f"bench: {line}", file=sys.stderr, flush=True)


def scrape(url: str) -> dict[str, float]:
    """The sums and counts of the gateway's own histograms for ``/place_order``."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
        text = response.read().decode()
    wanted = {
        "http": r'gateway_request_seconds_(sum|count)\{route="/place_order"\}',
        "produce": r"gateway_produce_seconds_(sum|count)",
        "answer": r'gateway_answer_seconds_(sum|count)\{kind="place"\}',
    }
    found: dict[str, float] = {}
    for name, pattern in wanted.items():
        for match in re.finditer(pattern + r" ([0-9.e+-]+)", text):
            found[f"{name}_{match.group(1)}"] = float(match.group(2))
    return found


def mean_ms(before: dict, after: dict, name: str) -> float:
    """The mean of histogram ``name`` between two scrapes, in ms (nan if nothing was seen)."""
    count = after.get(f"{name}_count", 0) - before.get(f"{name}_count", 0)
    total = after.get(f"{name}_sum", 0) - before.get(f"{name}_sum", 0)
    return 1000 * total / count if count else float("nan")


P99_BUDGET_MS = 100.0  # "sustained" (issue 12): p99 within this, at least 95% of the rate achieved


def passes(result: dict) -> bool:
    """The step's offered rate was sustained."""
    return result["p99"] <= P99_BUDGET_MS and result["achieved"] >= 0.95 * result["rate"]


def saturated(result: dict) -> bool:
    """Past the knee: more offered load only queues."""
    return result["achieved"] < 0.9 * result["rate"] or result["p50"] > 1_000


class Steppable(Protocol):
    def run(self, rate: float, seconds: float) -> Awaitable[dict]: ...


async def step(
    load: Steppable,
    url: str,
    probe: CpuProbe,
    rate: float,
    seconds: float,
    settle: float,
    requests: RequestProbe | None = None,
) -> dict:
    """One rate for ``seconds``, with the gateway's latency breakdown, each process's CPU per
    order over it (and the broker's JIT compiler's, in it) and the share of the machine's CPU
    the hypervisor took meanwhile; then ``settle`` seconds for the engines and the projector
    to drain what it left behind. With ``requests``, also each process's Kafka requests per
    order, from the step's start to the settle's end (the drain included)."""
    sent_before = requests.read() if requests is not None else {}
    before, cpu_before, machine_before = scrape(url), probe.read(), machine_seconds()
    jit_before = probe.compiling()
    result = await load.run(rate, seconds)
    after, cpu_after, machine_after = scrape(url), probe.read(), machine_seconds()
    result["breakdown"] = {k: mean_ms(before, after, k) for k in ("http", "produce", "answer")}
    result["cpu"] = ms_per_order(cpu_before, cpu_after, result["sent"])
    result["broker_jit"] = ms_per_order(jit_before, probe.compiling(), result["sent"])[
        "kafka broker"
    ]
    result["steal"] = stolen_percent(machine_before, machine_after)
    log(
        f"{rate:,.0f}/s offered: achieved {result['achieved']:,.0f}/s, p50 {result['p50']:.1f} "
        f"ms, p99 {result['p99']:.1f} ms, {result['steal']:.0f}% of the machine stolen"
    )
    await asyncio.sleep(settle)
    if requests is not None:
        result["requests"] = requests_per_order(sent_before, requests.read(), result["sent"])
    return result
