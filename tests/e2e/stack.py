"""The whole exchange as real processes on private topics: what the end-to-end tests drive.

Every service runs as ``python -m services.<name>``, with its topics, consumer groups and
transactional ids under a random prefix, and its own ports, so an e2e run shares the
broker, Postgres and Redis of `make test` with nothing else.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import psycopg2
import redis

from libs.bus.kafka import KafkaBus
from libs.topics import exchange_topics

ROOT = Path(__file__).resolve().parents[2]
LOG_DIR = ROOT / ".run" / "e2e"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Service:
    """One service process: started, waited for (an HTTP URL answers), stopped or killed."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], ready_url: str) -> None:
        self.name, self.argv, self.env, self.ready_url = name, argv, env, ready_url
        self.proc: subprocess.Popen | None = None
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        self.log_path = LOG_DIR / f"{env.get('TOPIC_PREFIX', '')}{name}.log"

    def start(self, timeout: float = 90) -> None:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, *self.argv], cwd=ROOT, env=self.env, stdout=log, stderr=log
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}: {self.tail()}")
            try:
                with urllib.request.urlopen(self.ready_url, timeout=2):
                    return
            except (urllib.error.URLError, OSError):
                time.sleep(0.2)
        raise RuntimeError(f"{self.name} not ready after {timeout} s: {self.tail()}")

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(15)

    def stop(self) -> None:
        if self.alive():
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()


class Stack:
    """Matcher, wallet, positions, the gateway projector and a gateway on private topics."""

    def __init__(self, bootstrap: str, database_url: str, redis_url: str) -> None:
        self.prefix = f"e2e{uuid.uuid4().hex[:8]}."
        self.bootstrap = bootstrap
        self.database_url = _fresh_database(database_url, self.prefix.rstrip(".").lower())
        self.redis_url = _fresh_redis_db(redis_url)
        self.gateway_port = free_port()
        self.url = f"http://127.0.0.1:{self.gateway_port}"
        bus = KafkaBus(bootstrap)
        for topic in exchange_topics():
            bus.create_topic(self.prefix + topic.name, topic.partitions, topic.config)
        p = self.prefix
        common = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "REDIS_URL": self.redis_url,
            "DATABASE_URL": self.database_url,
            "TOPIC_PREFIX": p,
            "STALL_SECONDS": "60",
        }

        def service(name: str, module: str, ready_path: str = "/metrics", **env: str) -> Service:
            port = free_port()
            return Service(
                name,
                ["-m", module],
                {**common, "METRICS_PORT": str(port), "PORT": str(port), **env},
                f"http://127.0.0.1:{port}{ready_path}",
            )

        self.services = {
            "matcher": service(
                "matcher",
                "services.matcher",
                COMMANDS_TOPIC=f"{p}orders.commands",
                EVENTS_TOPIC=f"{p}matcher.events",
                SNAPSHOTS_TOPIC=f"{p}matcher.snapshots",
                MATCHER_INSTANCE=f"{p}matcher-0",
                MATCHER_GROUP_ID=f"{p}matcher",
                MATCHER_SYMBOLS="BTC-PERP,ETH-PERP,SOL-PERP",
            ),
            "wallet": service(
                "wallet",
                "services.wallet",
                WALLET_GROUP_ID=f"{p}wallet",
                WALLET_TRANSACTIONAL_ID=f"{p}wallet-0",
            ),
            "positions": service(
                "positions",
                "services.positions",
                POSITIONS_GROUP_ID=f"{p}positions",
                POSITIONS_TRANSACTIONAL_ID=f"{p}positions-0",
            ),
            "projector": service("projector", "services.gateway.projector"),
        }
        self.services["gateway"] = Service(
            "gateway",
            ["-m", "services.gateway"],
            {
                **common,
                "PORT": str(self.gateway_port),
                "JWT_SECRET": uuid.uuid4().hex + uuid.uuid4().hex,
                "IP_RATE_PER_MINUTE": "1000000",
                "USER_RATE_PER_SECOND": "100000",
            },
            f"{self.url}/healthz",
        )

    def start(self) -> None:
        for service in self.services.values():
            service.start()

    def stop(self) -> None:
        for service in reversed(self.services.values()):
            service.stop()

    def check_alive(self) -> None:
        dead = [s.name for s in self.services.values() if not s.alive()]
        assert not dead, f"services died: {dead}: " + " | ".join(
            self.services[n].tail(10) for n in dead
        )


def _fresh_database(database_url: str, name: str) -> str:
    """Create an empty database next to the fixture's one; return its URL."""
    connection = psycopg2.connect(database_url)
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    connection.close()
    base, _, _ = database_url.rpartition("/")
    return f"{base}/{name}"


def _fresh_redis_db(redis_url: str) -> str:
    """Use Redis database 9 (flushed) so user ids from a fresh Postgres never meet old keys."""
    base = redis_url.rsplit("/", 1)[0] if redis_url.count("/") > 2 else redis_url
    url = f"{base}/9"
    redis.Redis.from_url(url).flushdb()
    return url
