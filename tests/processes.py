"""Services as real processes for the integration, end-to-end and chaos tests.

``ServiceProcess`` runs ``python -m <module>`` with the test's environment, waits until it
is ready, and stops it or kills it with SIGKILL. Ready means a line on stdout (the engines
print ``<name> ready`` once recovered) or an HTTP URL that answers. Logs go to
``.run/test-logs/``.
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parents[1]
LOG_DIR = ROOT / ".run" / "test-logs"


def fresh_redis_db(redis_url: str, db: int) -> str:
    """The URL of Redis database ``db``, flushed: a test's keys never meet an earlier test's
    (the engines' key names carry no topic prefix, and user ids restart with every stack)."""
    base = redis_url.rsplit("/", 1)[0] if redis_url.count("/") > 2 else redis_url
    url = f"{base}/{db}"
    redis.Redis.from_url(url).flushdb()
    return url


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServiceProcess:
    """One service process: started, waited for, stopped or killed, asked over HTTP."""

    def __init__(
        self,
        name: str,
        module: str,
        env: dict[str, str],
        *,
        port: int | None = None,
        ready_line: bytes | None = None,
        ready_url: str | None = None,
        log_name: str | None = None,
    ) -> None:
        self.name, self.module, self.env, self.port = name, module, env, port
        self.ready_line, self.ready_url = ready_line, ready_url
        self.proc: subprocess.Popen | None = None
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        self.log_path = LOG_DIR / f"{log_name or name}.log"

    def start(self, timeout: float = 90) -> None:
        with open(self.log_path, "ab") as log:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(
                [sys.executable, "-m", self.module],
                cwd=ROOT,
                env=self.env,
                stdout=subprocess.PIPE if self.ready_line else log,
                stderr=log,
            )
        deadline = time.monotonic() + timeout
        if self.ready_line:
            self._wait_for_line(deadline)
        elif self.ready_url:
            self._wait_for_url(deadline)

    def _wait_for_line(self, deadline: float) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if self.ready_line in line:
                self._drain_stdout()
                return
            if not line and self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}: {self.tail()}")
        raise RuntimeError(f"{self.name} not ready: {self.tail()}")

    def _drain_stdout(self) -> None:
        """Copy the rest of stdout to the log, so a full pipe never blocks the service."""
        stdout = self.proc.stdout if self.proc is not None else None

        def copy() -> None:
            with open(self.log_path, "ab") as log:
                shutil.copyfileobj(stdout, log)

        threading.Thread(target=copy, daemon=True).start()

    def _wait_for_url(self, deadline: float) -> None:
        assert self.proc is not None and self.ready_url is not None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}: {self.tail()}")
            try:
                with urllib.request.urlopen(self.ready_url, timeout=2):
                    return
            except (urllib.error.URLError, OSError):
                time.sleep(0.2)
        raise RuntimeError(f"{self.name} not ready: {self.tail()}")

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(15)

    def stop(self) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()

    # -- the service's HTTP side (metrics, digest) and its rebuild CLI --------------------
    def get(self, path: str) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
            return r.read().decode()

    def metrics(self) -> str:
        return self.get("/metrics")

    def metric(self, name: str, labels: str = "") -> float:
        for line in self.metrics().splitlines():
            if line.startswith(f"{name}{labels} "):
                return float(line.split()[-1])
        return 0.0

    def digest(self) -> dict:
        return json.loads(self.get("/digest"))

    def rebuild(self) -> dict:
        done = subprocess.run(
            [sys.executable, "-m", self.module, "rebuild"],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        return json.loads(done.stdout.strip().splitlines()[-1])
