"""Which process of the stack spends the CPU: each one's CPU time from /proc, before and after.

A process's ``utime + stime`` (every thread of it) is read at both ends of a step; the
difference over the orders of the step is its CPU per order, over the seconds of an idle
spell its share of one core. Processes count with their children (the matcher's pinned core,
Postgres's backends), found again at every read, but for children named on their own (the
load client started the services). The broker, Redis and Postgres are found by the port they
listen on (else by the pid files scripts/supervise.py writes); a process that cannot be
found is reported as unknown, never guessed.
"""

from __future__ import annotations

import os
import re
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from tests.e2e.stack import Stack

ROOT = Path(__file__).resolve().parent.parent
PID_DIRS = (ROOT / ".run" / "test", ROOT / ".run")  # make test / make bench, then make up
INFRA = {"kafka broker": "kafka", "redis": "redis", "postgres": "postgres"}  # -> pid file


def stat_times(stat: str) -> tuple[float, float]:
    """(user, system) CPU seconds from the text of a /proc ``stat`` file (a process's or a
    thread's); the name before them is in parentheses and may hold spaces."""
    fields = stat.rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def _stat_seconds(stat: str) -> float:
    """User + system CPU seconds from the text of a /proc ``stat`` file."""
    return sum(stat_times(stat))


def cpu_seconds(pid: int) -> float | None:
    """CPU seconds the process has used so far (user + system, all threads); None if gone."""
    try:
        return _stat_seconds(Path(f"/proc/{pid}/stat").read_text())
    except OSError:
        return None


def compiler_seconds(pid: int) -> float | None:
    """CPU seconds the JVM ``pid``'s JIT compiler threads (C1 and C2) have used so far; None
    if it is gone. A broker just started spends as much CPU compiling its hot paths as
    serving them (matcher bench: 6.3 of 11.3 broker seconds in its first 10 s at 5,000
    commands/s), and a broker that has run a while does not."""
    total, found = 0.0, False
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            stat = (task / "stat").read_text()
        except OSError:
            continue
        found = True
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        if re.fullmatch(r"C[12] CompilerThre\w*", name):
            total += _stat_seconds(stat)
    return total if found else None


def children(pid: int) -> list[int]:
    """The live children of every thread of ``pid``."""
    found: list[int] = []
    for path in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            found += [int(c) for c in path.read_text().split()]
        except OSError:
            continue
    return found


def listening_pid(port: int) -> int | None:
    """The process holding a listening TCP socket on ``port``, if this user may see it."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # LISTEN
                inodes.add(f"socket:[{fields[9]}]")
    if not inodes:
        return None
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        try:
            for fd in fd_dir.iterdir():
                if os.readlink(fd) in inodes:
                    return int(fd_dir.parent.name)
        except OSError:
            continue
    return None


def pid_file(name: str) -> int | None:
    """The live pid of ``name`` in the first supervise pid file that names a running process."""
    for directory in PID_DIRS:
        try:
            pid = int((directory / f"{name}.pid").read_text().strip())
        except (OSError, ValueError):
            continue
        if cpu_seconds(pid) is not None:
            return pid
    return None


def infra_ports(env: Mapping[str, str]) -> dict[str, int | None]:
    """The port of the broker, Redis and Postgres from the environment the stack uses."""
    broker = env.get("KAFKA_BOOTSTRAP_SERVERS", "").split(",")[0]
    ports: dict[str, int | None] = {
        "kafka broker": int(broker.rsplit(":", 1)[1]) if ":" in broker else None
    }
    for name, variable in (("redis", "REDIS_URL"), ("postgres", "DATABASE_URL")):
        ports[name] = urlsplit(env[variable]).port if env.get(variable) else None
    return ports


def find_infra(env: Mapping[str, str]) -> dict[str, int | None]:
    """The pid of the broker, Redis and Postgres: the listener on their port, else a pid file."""
    found = {}
    for name, port in infra_ports(env).items():
        found[name] = (listening_pid(port) if port else None) or pid_file(INFRA[name])
    return found


class CpuProbe:
    """CPU seconds used so far by each named process with its children (but for children
    named on their own: the load client started the services); None: unknown."""

    def __init__(self, pids: Mapping[str, int | None]) -> None:
        self.pids = dict(pids)
        self.named = {pid for pid in self.pids.values() if pid is not None}

    @classmethod
    def of_stack(cls, stack: Stack, extra: Mapping[str, int] | None = None) -> CpuProbe:
        """Every service of ``stack``, the infrastructure, this process (the load client) and
        ``extra``."""
        pids: dict[str, int | None] = {n: s.proc.pid for n, s in stack.services.items()}
        pids |= find_infra(os.environ)
        pids["load client"] = os.getpid()
        return cls(pids | dict(extra or {}))

    def read(self) -> dict[str, float | None]:
        return {name: self._tree(pid) for name, pid in self.pids.items()}

    def compiling(self) -> dict[str, float | None]:
        """CPU seconds the broker's JIT compiler has used so far (``compiler_seconds``)."""
        broker = self.pids.get("kafka broker")
        return {"kafka broker": compiler_seconds(broker) if broker else None}

    def _tree(self, pid: int | None) -> float | None:
        if pid is None:
            return None
        own = cpu_seconds(pid)
        if own is None:
            return None
        mine = [c for c in children(pid) if c not in self.named]
        return own + sum(cpu_seconds(c) or 0.0 for c in mine)


def machine_seconds() -> tuple[float, float]:
    """The machine's CPU seconds so far, summed over its cores: (all, stolen).

    Stolen time is when the hypervisor ran something else while this VM's cores had work
    (the ``steal`` column of /proc/stat). On this VM it reaches 10-30% of the machine under
    load: a step that lost that much ran on a smaller machine, whatever the code did."""
    first = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    values = [int(v) for v in first[1:9]]  # user nice system idle iowait irq softirq steal
    tick = os.sysconf("SC_CLK_TCK")
    return sum(values) / tick, values[7] / tick


# --- the arithmetic (pure) ---------------------------------------------------------------


def stolen_percent(before: tuple[float, float], after: tuple[float, float]) -> float:
    """The share of the machine's CPU time stolen between two ``machine_seconds`` reads."""
    elapsed = after[0] - before[0]
    return 100.0 * (after[1] - before[1]) / elapsed if elapsed > 0 else 0.0


def spent(
    before: Mapping[str, float | None], after: Mapping[str, float | None], per: float, scale: float
) -> dict[str, float | None]:
    """Each process's CPU seconds between two reads, times ``scale``, divided by ``per``;
    None for a process unknown (or gone) at either read, or when ``per`` is not positive."""
    result: dict[str, float | None] = {}
    for name, end in after.items():
        start = before.get(name)
        known = start is not None and end is not None and per > 0
        result[name] = scale * (end - start) / per if known else None
    return result


def ms_per_order(before, after, orders: int) -> dict[str, float | None]:
    """CPU milliseconds each process spent per order between two reads."""
    return spent(before, after, orders, 1000.0)


def percent_of_core(before, after, seconds: float) -> dict[str, float | None]:
    """Each process's CPU between two reads as a percentage of one core over ``seconds``."""
    return spent(before, after, seconds, 100.0)


def total(values: Mapping[str, float | None]) -> float:
    """The sum of the known values."""
    return sum(v for v in values.values() if v is not None)


def verdict(met: bool) -> str:
    """How a figure stands against its target, in a section's words."""
    return "meets" if met else "misses"


def table(values: Mapping[str, float | None], unit: str, digits: int = 2) -> list[str]:
    """A Markdown table of ``values`` (largest first, unknown last) with a total row."""
    known = sorted(((n, v) for n, v in values.items() if v is not None), key=lambda x: -x[1])
    unknown = sorted(n for n, v in values.items() if v is None)
    rows = [f"| process | {unit} |", "| --- | ---: |"]
    rows += [f"| {name} | {value:.{digits}f} |" for name, value in known]
    rows += [f"| {name} | unknown (process not found) |" for name in unknown]
    label = "total" if not unknown else "total of the known"
    rows.append(f"| {label} | {total(values):.{digits}f} |")
    return rows


# --- Kafka requests per order, by process (libs.bus.stats) ----------------------------------

_REQUESTS = re.compile(r'^kafka_client_requests_total\{client="([^"]+)",request="([^"]+)"\} (\S+)$')


class RequestProbe:
    """The Kafka requests each service's clients have sent so far, by type, from its
    ``/metrics`` (librdkafka reports them every ``STATS_INTERVAL_MS``, 5 s: read one after
    a settle of at least that)."""

    def __init__(self, urls: Mapping[str, str]) -> None:
        self.urls = dict(urls)

    @classmethod
    def of_stack(cls, stack: Stack) -> RequestProbe:
        return cls({n: f"http://127.0.0.1:{s.port}/metrics" for n, s in stack.services.items()})

    def read(self) -> dict[str, dict[str, float]]:
        found: dict[str, dict[str, float]] = {}
        for name, url in self.urls.items():
            counts: dict[str, float] = {}
            with urllib.request.urlopen(url, timeout=10) as response:
                for line in response.read().decode().splitlines():
                    if match := _REQUESTS.match(line):
                        request = match.group(2)
                        counts[request] = counts.get(request, 0.0) + float(match.group(3))
            found[name] = counts
        return found


def requests_per_order(
    before: Mapping[str, Mapping[str, float]], after: Mapping[str, Mapping[str, float]], orders: int
) -> dict[str, dict[str, float]]:
    """Each process's requests of each type between two reads, per order."""
    if orders <= 0:
        return {}
    return {
        name: {
            request: (n - before.get(name, {}).get(request, 0.0)) / orders
            for request, n in counts.items()
            if n > before.get(name, {}).get(request, 0.0)
        }
        for name, counts in after.items()
    }


def request_table(per_order: Mapping[str, Mapping[str, float]]) -> list[str]:
    """A Markdown table: per process, produce, fetch and other requests per order."""
    rows = ["| process | produce | fetch | other | all |", "| --- | ---: | ---: | ---: | ---: |"]
    sums = [0.0, 0.0, 0.0]
    for name, counts in sorted(per_order.items(), key=lambda kv: -sum(kv[1].values())):
        produce, fetch = counts.get("Produce", 0.0), counts.get("Fetch", 0.0)
        other = sum(counts.values()) - produce - fetch
        sums = [sums[0] + produce, sums[1] + fetch, sums[2] + other]
        every = produce + fetch + other
        rows.append(f"| {name} | {produce:.2f} | {fetch:.2f} | {other:.2f} | {every:.2f} |")
    rows.append(f"| total | {sums[0]:.2f} | {sums[1]:.2f} | {sums[2]:.2f} | {sum(sums):.2f} |")
    return rows
