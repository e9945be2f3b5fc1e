"""place_order through one gateway process, on the whole stack: latency at fixed rates.

Starts every service as its own process (tests/e2e/stack.py) on private topics, signs up
pairs of users, and sends open-loop load: request i is due at ``i / rate`` seconds, and its
latency runs from when it was due (so a stalled server is not hidden by a stalled client).
The orders of a pair cross each other at one price, so the book stays small. The client is a
minimal keep-alive HTTP/1.1 client on asyncio, in this process; everything shares 2 cores.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import statistics
import time
import urllib.request
from pathlib import Path

import httpx

from tests.e2e.stack import Stack

PAIRS = 20
CONNECTIONS = 64
STEP_SECONDS = 8
REQUIRED_RATES = (200, 1000)
SEARCH_RATES = (10, 25, 50, 75, 100, 150, 200, 300, 400, 600, 800, 1000)
SETTLE_SECONDS = 10  # after a step, the engines and the projector drain what it left behind
P99_BUDGET_MS = 50.0


class Connection:
    """One keep-alive HTTP/1.1 connection; reopened when the server has closed it (uvicorn
    drops connections idle for 5 s, which low rates over many connections reach)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, token: str, body: bytes) -> tuple[int, bytes]:
        for attempt in (1, 2):
            if self.writer is None:
                self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
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


class Load:
    def __init__(self, url: str, tokens: list[str]) -> None:
        self.host, self.port = url.removeprefix("http://").split(":")
        self.tokens = tokens

    def body(self, i: int) -> tuple[str, bytes]:
        pair = (i // 2) % (len(self.tokens) // 2)
        side = "Sell" if i % 2 == 0 else "Buy"
        token = self.tokens[2 * pair + (i % 2)]
        order = {
            "symbol": "BTC-PERP",
            "side": side,
            "order_type": "Limit",
            "price": "50000.0",
            "quantity": "0.003",
            "leverage": "10",
        }
        return token, json.dumps(order).encode()

    async def run(self, rate: float, seconds: float) -> dict:
        # Last in, first out: at low rates a few warm connections do the work.
        free: asyncio.LifoQueue[Connection] = asyncio.LifoQueue()
        for _ in range(CONNECTIONS):
            free.put_nowait(Connection(self.host, int(self.port)))
        total = int(rate * seconds)
        latencies: list[float] = []
        statuses: dict[str, int] = {}
        tasks = []
        started = time.perf_counter()

        async def one(i: int, due: float) -> None:
            connection = await free.get()
            token, body = self.body(i)
            status, reply = await connection.post("/place_order", token, body)
            latencies.append(time.perf_counter() - due)
            kind = json.loads(reply).get("status", str(status)) if status < 500 else str(status)
            statuses[kind] = statuses.get(kind, 0) + 1
            free.put_nowait(connection)

        for i in range(total):
            due = started + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i, due)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - started
        while not free.empty():
            free.get_nowait().close()
        latencies.sort()
        ms = [x * 1000 for x in latencies]
        return {
            "rate": rate,
            "achieved": total / elapsed,
            "p50": statistics.median(ms),
            "p99": ms[min(len(ms) - 1, int(len(ms) * 0.99))],
            "max": ms[-1],
            "statuses": statuses,
        }


def scrape(url: str) -> dict[str, float]:
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
    count = after.get(f"{name}_count", 0) - before.get(f"{name}_count", 0)
    total = after.get(f"{name}_sum", 0) - before.get(f"{name}_sum", 0)
    return 1000 * total / count if count else float("nan")


class CpuProbe:
    """CPU seconds used so far by each service process (with its children) and the broker."""

    def __init__(self, stack: Stack) -> None:
        self.pids: dict[str, list[int]] = {}
        for name, service in stack.services.items():
            pid = service.proc.pid
            children = Path(f"/proc/{pid}/task/{pid}/children")
            extra = [int(c) for c in children.read_text().split()] if children.exists() else []
            self.pids[name] = [pid, *extra]  # the matcher's pinned core is a child
        broker = _broker_pid(stack.bootstrap)
        if broker is not None:
            self.pids["kafka broker"] = [broker]
        self.pids["load client"] = [os.getpid()]

    def read(self) -> dict[str, float]:
        return {name: sum(_cpu_seconds(p) for p in pids) for name, pids in self.pids.items()}


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _broker_pid(bootstrap: str) -> int | None:
    """The local kafka.Kafka process listening on the bootstrap port, if there is one."""
    port = bootstrap.split(",")[0].rsplit(":", 1)[1]
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if b"kafka.Kafka" in argv and len(argv) > 1:
            props = Path(argv[-2].decode() if argv[-1] == b"" else argv[-1].decode())
            if props.is_file() and f":{port}\n" in props.read_text():
                return int(cmdline.parent.name)
    return None


def signup(url: str) -> list[str]:
    tokens = []
    with httpx.Client(base_url=url, timeout=30) as api:
        for n in range(2 * PAIRS):
            credentials = {"email": f"bench{n}-{time.time_ns()}@example.com", "password": "x" * 12}
            api.post("/signup", json=credentials).raise_for_status()
            token = api.post("/signin", json=credentials).json()["token"]
            headers = {"Authorization": f"Bearer {token}"}
            deposit = {"asset": "USDT", "amount": "1000000"}  # x 2 * PAIRS: inside MAX_INSIDE
            api.post("/deposit", json=deposit, headers=headers).raise_for_status()
            tokens.append(token)
    return tokens


def row(result: dict) -> str:
    pending = result["statuses"].get("Pending", 0)
    other = sum(v for k, v in result["statuses"].items() if k not in ("New", "Filled", "Pending"))
    return (
        f"| {result['rate']:,.0f} | {result['achieved']:,.0f} | {result['p50']:.1f} | "
        f"{result['p99']:.1f} | {result['max']:.1f} | {pending} | {other} |"
    )


async def step(load: Load, url: str, probe: CpuProbe, rate: float) -> dict:
    """One rate for STEP_SECONDS, with the latency breakdown and CPU per order of that step."""
    before, cpu_before = scrape(url), probe.read()
    result = await load.run(rate, STEP_SECONDS)
    after, cpu_after = scrape(url), probe.read()
    result["breakdown"] = {k: mean_ms(before, after, k) for k in ("http", "produce", "answer")}
    orders = result["achieved"] * STEP_SECONDS
    result["cpu"] = {k: 1000 * (cpu_after[k] - cpu_before[k]) / orders for k in cpu_after}
    await asyncio.sleep(SETTLE_SECONDS)
    return result


def passes(result: dict) -> bool:
    return result["p99"] <= P99_BUDGET_MS and result["achieved"] >= 0.95 * result["rate"]


async def measure(url: str, tokens: list[str], probe: CpuProbe) -> tuple[list[dict], list[dict]]:
    """The search for the best rate first (from low rates up), then the required rates."""
    load = Load(url, tokens)
    await load.run(50, 3)  # warm-up: connections, caches, the first Kafka batches
    await asyncio.sleep(SETTLE_SECONDS)
    search = []
    for rate in SEARCH_RATES:
        search.append(await step(load, url, probe, rate))
        if not passes(search[-1]):
            break
    required = [await step(load, url, probe, rate) for rate in REQUIRED_RATES]
    return required, search


def run() -> str:
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per setup request
    stack = Stack(
        os.environ["KAFKA_BOOTSTRAP_SERVERS"], os.environ["DATABASE_URL"], os.environ["REDIS_URL"]
    )
    try:
        stack.start()
        tokens = signup(stack.url)
        import uvloop

        required, search = uvloop.run(measure(stack.url, tokens, CpuProbe(stack)))
    finally:
        stack.stop()
    passing = [r for r in search if passes(r)]
    best = max((r["rate"] for r in passing), default=0)
    shown = passing[-1] if passing else search[0]
    breakdown = shown["breakdown"]
    saturated = required[0]
    header = [
        "| target orders/s | achieved | p50 ms | p99 ms | max ms | Pending | rejected |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    return "\n".join(
        [
            "## Gateway",
            "",
            "`POST /place_order` through one gateway process with every service running "
            "(matcher with its pinned core, wallet, positions, projector, Kafka, Postgres, "
            "Redis, and the load client: all on this machine's cores). Open-loop load from "
            f"{CONNECTIONS} keep-alive connections, {2 * PAIRS} users whose limit orders cross "
            f"in pairs; {STEP_SECONDS} s per rate; latency from when each request was due to "
            "its reply, which comes after the matcher's batch (HTTP -> Kafka -> wallet -> "
            "Kafka -> matcher -> Kafka -> gateway). `bench/gateway.py`.",
            "",
            *header,
            *(row(r) for r in required),
            "",
            f"Highest rate with p99 under {P99_BUDGET_MS:.0f} ms: **{best:,} orders/s** "
            f"(rates tried from low to high, {SETTLE_SECONDS} s apart, stopping at the first "
            "miss):",
            "",
            *header,
            *(row(r) for r in search),
            "",
            f"Where the time goes at {shown['rate']:,.0f} orders/s (means, from the gateway's "
            f"own histograms): whole request {breakdown['http']:.1f} ms = produce to "
            f"`orders.requests` and wait for the broker's acknowledgement "
            f"{breakdown['produce']:.1f} ms + from there to the matcher's answer "
            f"{breakdown['answer']:.1f} ms (two transactional hops: the wallet's and the "
            "matcher's commits) + the rest (HTTP, auth, validation). The original design's "
            "< 5 ms target was an in-process channel to the engine; here every hop is a "
            "durable, exactly-once Kafka transaction.",
            "",
            f"CPU per order at saturation (the {saturated['rate']:,.0f} orders/s step, which "
            f"achieved {saturated['achieved']:,.0f}/s), by process, in ms of CPU time on "
            f"this {os.cpu_count()}-core machine; idle work (consumers polling, the index "
            "feed's marks) is spread over the orders:",
            "",
            "| process | CPU ms per order |",
            "| --- | ---: |",
            *(
                f"| {name} | {ms:.2f} |"
                for name, ms in sorted(saturated["cpu"].items(), key=lambda x: -x[1])
            ),
            f"| total | {sum(saturated['cpu'].values()):.2f} |",
            "",
        ]
    )


if __name__ == "__main__":
    print(run())
