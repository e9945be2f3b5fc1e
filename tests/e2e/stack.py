"""The whole exchange as real processes on private topics: what the end-to-end tests drive.

Every service runs as ``python -m services.<name>``, with its topics, consumer groups and
transactional ids under a random prefix, and its own ports, so an e2e run shares the
broker, Postgres and Redis of `make test` with nothing else.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator

import psycopg2

from exchange.stack import Target
from libs.bus.kafka import KafkaBus
from libs.symbols import default_symbols
from libs.topics import exchange_topics, user_partitions
from tests.processes import ServiceProcess, free_port, fresh_redis_db


class Stack:
    """Matcher, wallet, positions, the projector and a gateway on private topics; with
    ``instances`` > 1, that many of each but the projector (the matchers then split the symbols
    and the wallets and position engines the user shards, ``USER_PARTITIONS``, by their
    groups). The first instance of each is ``services[name]``, the others ``name.1``, ..."""

    def __init__(
        self,
        bootstrap: str,
        database_url: str,
        redis_url: str,
        redis_db: int = 9,
        instances: int = 1,
    ) -> None:
        self.prefix = f"e2e{uuid.uuid4().hex[:8]}."
        self.bootstrap = bootstrap
        self.database_url = _fresh_database(database_url, self.prefix.rstrip(".").lower())
        self.redis_url = fresh_redis_db(redis_url, redis_db)
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

        def service(name: str, module: str, **env: str) -> ServiceProcess:
            port = free_port()
            return ServiceProcess(
                name,
                module,
                {**common, "METRICS_PORT": str(port), **env},
                port=port,
                ready_url=f"http://127.0.0.1:{port}/metrics",
                log_name=f"{p}{name}",
            )

        def named(name: str, i: int) -> str:
            return name if i == 0 else f"{name}.{i}"

        # one instance reads its books by name; several split them by their group
        books = ",".join(default_symbols()) if instances == 1 else ""
        self.services = {}
        for i in range(instances):
            self.services[named("matcher", i)] = service(
                named("matcher", i),
                "services.matcher",
                MATCHER_INSTANCE=f"{p}matcher-{i}",
                MATCHER_GROUP_ID=f"{p}matcher",
                MATCHER_SYMBOLS=books,
            )
        for i in range(instances):
            self.services[named("wallet", i)] = service(
                named("wallet", i),
                "services.wallet",
                WALLET_GROUP_ID=f"{p}wallet",
                WALLET_TRANSACTIONAL_ID=f"{p}wallet-0",
            )
        for i in range(instances):
            self.services[named("positions", i)] = service(
                named("positions", i),
                "services.positions",
                POSITIONS_GROUP_ID=f"{p}positions",
                POSITIONS_TRANSACTIONAL_ID=f"{p}positions-0",
            )
        self.services["projector"] = service("projector", "services.projector")
        gateway_env = {
            **common,
            "JWT_SECRET": uuid.uuid4().hex + uuid.uuid4().hex,
            "IP_RATE_PER_MINUTE": "1000000",
            "USER_RATE_PER_SECOND": "100000",
            # GET /status reads these engines' /metrics pages
            "STATUS_SOURCES": ",".join(
                f"{name}=http://127.0.0.1:{self.services[name].port}/metrics"
                for name in ("matcher", "wallet", "positions", "projector")
            ),
        }
        self.urls = [self.url]
        self.services["gateway"] = gateway(self.gateway_port, gateway_env, name=f"{p}gateway")
        for i in range(1, instances):
            port = free_port()
            self.urls.append(f"http://127.0.0.1:{port}")
            self.services[named("gateway", i)] = gateway(
                port, {**gateway_env, "GATEWAY_INSTANCE": str(i)}, name=f"{p}gateway.{i}"
            )

    def start(self) -> None:
        for service in self.services.values():
            service.start()

    def stop(self) -> None:
        for service in reversed(self.services.values()):
            service.stop()

    def target(self) -> Target:
        """Where ``python -m exchange`` finds this stack: its broker, Redis, prefix and the
        engines' ops endpoints (of several instances, every one's)."""
        urls = {
            engine: ",".join(
                f"http://127.0.0.1:{service.port}"
                for name, service in self.services.items()
                if name.split(".")[0] == engine
            )
            for engine in ("matcher", "wallet", "positions", "projector")
        }
        return Target(
            self.bootstrap, self.redis_url, self.prefix, urls, user_partitions=user_partitions()
        )

    def cli_args(self) -> list[str]:
        """The same as ``python -m exchange`` flags (put before the command)."""
        target = self.target()
        args = ["--bootstrap", target.bootstrap, "--prefix", target.prefix]
        if target.redis_url:
            args += ["--redis", target.redis_url]
        for name, url in target.digest_urls.items():
            args += ["--digest-url", f"{name}={url}"]
        return args

    def check_alive(self) -> None:
        dead = [s.name for s in self.services.values() if not s.alive()]
        assert not dead, f"services died: {dead}: " + " | ".join(
            self.services[n].tail(10) for n in dead
        )


@contextlib.contextmanager
def running(stack: Stack) -> Iterator[Stack]:
    """``stack`` started for the length of a ``with``, stopped even if starting failed."""
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()


def demo_market(stack: Stack, **settings: str) -> ServiceProcess:
    """The demo market (``services.demo_market``, not started) on ``stack``'s gateway, with
    bots of its own (a fresh ``DEMO_USER_PREFIX``) and ``settings`` (``DEMO_*``) over its
    defaults; ready when its ``/healthz`` answers."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEMO_")}
    return ServiceProcess(
        "demo_market",
        "services.demo_market",
        {
            **env,
            "GATEWAY_URL": stack.url,
            "METRICS_PORT": str(port),
            "DEMO_USER_PREFIX": f"demo{uuid.uuid4().hex[:8]}",
            **settings,
        },
        port=port,
        ready_url=f"http://127.0.0.1:{port}/healthz",
        log_name=f"{stack.prefix}demo_market",
    )


def index_feed(stack: Stack) -> ServiceProcess:
    """The simulated index feed (``services.index_feed``, not started) on ``stack``'s topics,
    as `make up` runs it."""
    return ServiceProcess(
        "index_feed",
        "services.index_feed",
        {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": stack.bootstrap, "TOPIC_PREFIX": stack.prefix},
        log_name=f"{stack.prefix}index_feed",
    )


def gateway(port: int, env: dict[str, str], name: str) -> ServiceProcess:
    """A gateway on ``port``, ready when ``/healthz`` answers."""
    return ServiceProcess(
        "gateway",
        "services.gateway",
        {**env, "PORT": str(port)},
        port=port,
        ready_url=f"http://127.0.0.1:{port}/healthz",
        log_name=name,
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
