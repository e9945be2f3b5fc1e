"""Run the matcher service as a real process against real Kafka, on topics of its own."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from libs.bus import Outgoing
from libs.bus.kafka import KafkaBus
from libs.messages import ANY, BatchCompleted, encode
from libs.symbols import SymbolSpec, default_symbols, get_symbol
from libs.topics import COMPACTED, Topics
from services.matcher.core import MatchingCore
from tests.processes import LOG_DIR, ROOT, free_port

BTC = get_symbol("BTC-PERP")


@dataclass
class MatcherRun:
    """Topics, settings and the process of one matcher under test."""

    bootstrap: str
    max_batch: int = 256
    max_poll: int = 2_048
    snapshot_every: int = 5_000
    name: str = field(default_factory=lambda: f"m-{uuid.uuid4().hex[:10]}")
    symbols: str | None = "BTC-PERP"  # None: the consumer group assigns the symbols
    instance: str = "0"
    stall_seconds: float = 20
    process: subprocess.Popen | None = None

    def __post_init__(self) -> None:
        self.bus = KafkaBus(self.bootstrap)
        self.group = f"{self.name}.matcher"  # shared by the instances of one run only
        self.port = free_port()
        self.topics = Topics(f"{self.name}.")
        self.commands, self.events, self.snapshots = (
            self.topics.commands,
            self.topics.matcher_events,
            self.topics.matcher_snapshots,
        )
        self.bus.create_topic(self.commands, len(default_symbols()))  # one per symbol
        self.bus.create_topic(self.events, len(default_symbols()))
        self.bus.create_topic(self.snapshots, 1, COMPACTED)

    def env(self) -> dict[str, str]:
        env = os.environ | {
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "TOPIC_PREFIX": self.topics.prefix,
            "MATCHER_INSTANCE": f"{self.name}-{self.instance}",
            "MATCHER_GROUP_ID": self.group,
            "MATCHER_SYMBOLS": self.symbols or "",
            "METRICS_PORT": str(self.port),
            "MATCHER_MAX_BATCH": str(self.max_batch),
            "MATCHER_MAX_POLL": str(self.max_poll),
            "MATCHER_SNAPSHOT_EVERY": str(self.snapshot_every),
            "MATCHER_RING_BYTES": str(1 << 22),
            "MATCHER_OUT_RING_BYTES": str(1 << 24),
            "STALL_SECONDS": str(self.stall_seconds),
        }
        return env

    def produce(self, commands: list) -> None:
        producer = self.bus.producer()
        for command in commands:
            spec = default_symbols()[command.symbol]
            producer.produce(
                Outgoing(self.commands, encode(command), spec.name.encode(), spec.index)
            )
        producer.flush()

    def start(self) -> subprocess.Popen:
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        # the child keeps its own copy of the log file's descriptor
        with open(LOG_DIR / f"{self.name}-{self.instance}.log", "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "services.matcher"],
                cwd=ROOT,
                env=self.env(),
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        return self.process

    def core_pid(self) -> int | None:
        """Return the pid of the pinned core process (the service's child), once it exists."""
        assert self.process is not None
        path = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        try:
            children = path.read_text().split()
        except OSError:
            return None
        for child in children:  # multiprocessing's resource tracker is a child too
            try:
                cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
            except OSError:
                continue
            if b"resource_tracker" not in cmdline:
                return int(child)
        return None

    def kill(self, target: str) -> None:
        """kill -9 the 'core' process, the 'io' process, or 'both'."""
        assert self.process is not None
        core = self.core_pid()
        if target in ("core", "both") and core:
            os.kill(core, signal.SIGKILL)
        if target in ("io", "both"):
            self.process.send_signal(signal.SIGKILL)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if core:  # an orphaned core notices its parent is gone within a second
            deadline = time.monotonic() + 10
            while Path(f"/proc/{core}").exists() and time.monotonic() < deadline:
                time.sleep(0.1)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def applied(self, partition: int = 0) -> int:
        tp = (self.commands, partition)
        return max(self.bus.group_offsets(self.group, [tp])[tp], 0)

    def wait_applied(self, count: int, timeout: float = 240, partition: int = 0) -> None:
        deadline = time.monotonic() + timeout
        while (applied := self.applied(partition)) < count:
            assert time.monotonic() < deadline, f"matcher applied {applied} of {count}"
            assert self.process is None or self.process.poll() is None, "the matcher died"
            time.sleep(0.5)

    def wait_events(self, count: int, timeout: float = 240, partition: int = 0) -> None:
        """Wait until the events partition holds ``count`` records: what the service has
        applied by now (its committed offsets trail that by up to a commit interval, in which
        a fast matcher may finish the whole flow)."""
        deadline = time.monotonic() + timeout
        while (held := self.bus.end_offsets(self.events)[partition]) < count:
            assert time.monotonic() < deadline, f"matcher wrote {held} of {count} events"
            assert self.process is None or self.process.poll() is None, "the matcher died"
            time.sleep(0.02)

    def serves(self, symbol: str) -> bool:
        """Whether this instance holds ``symbol``'s book now (its digest answers for it)."""
        url = f"http://127.0.0.1:{self.port}/digest?symbol={symbol}"
        try:
            with urllib.request.urlopen(url, timeout=30) as response:
                return json.loads(response.read())["symbol"] == symbol
        except urllib.error.HTTPError as error:
            assert error.code == 404, error
            return False
        except urllib.error.URLError:  # still starting: its port is not open yet
            return False

    def read_events(self, partition: int = 0) -> list:
        return [ANY.decode(r.value) for r in self.bus.replay(self.events, partition)]

    def live_digest(self, symbol: str = "BTC-PERP") -> dict:
        deadline = time.monotonic() + 30
        while True:
            try:
                url = f"http://127.0.0.1:{self.port}/digest?symbol={symbol}"
                with urllib.request.urlopen(url, timeout=30) as response:
                    return json.loads(response.read())
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)

    def rebuilt_digest(self) -> dict:
        out = subprocess.run(
            [sys.executable, "-m", "services.matcher", "rebuild", "--symbol", "BTC-PERP"],
            cwd=ROOT,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        )
        return json.loads(out.stdout.strip().splitlines()[-1])


def reference_events(commands: list, events: list, spec: SymbolSpec = BTC) -> list:
    """The in-process core's events for the flow, in the batches the service recorded."""
    core = MatchingCore(spec)
    out = []
    for event in events:
        if isinstance(event, BatchCompleted):
            batch = [(o, commands[o]) for o in range(event.first_offset, event.cmd_offset + 1)]
            out += core.process_batch(batch)
    return out


def one_by_one(commands: list) -> list:
    """The in-process core's events when every command is a batch of its own."""
    core = MatchingCore(BTC)
    out = []
    for offset, command in enumerate(commands):
        out += core.process_batch([(offset, command)])
    return out
