"""Shared pytest fixtures.

# Services: Kafka, Postgres, Redis

`make test` starts a throw-away stack (infra/stack-test.toml) and exports KAFKA_BOOTSTRAP_SERVERS,
DATABASE_URL and REDIS_URL; the fixtures below hand those to the tests that ask for them. Without
them, and with a Docker engine answering, the fixtures start containers (testcontainers) instead.
With neither, a test that needs a service fails, naming what is missing: it never skips.
Tests that request none of these fixtures (all of tests/unit) need nothing running.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

KAFKA_IMAGE = "apache/kafka:4.1.1"
POSTGRES_IMAGE = "postgres:16"
REDIS_IMAGE = "redis:7"


def _docker_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        done = subprocess.run(["docker", "info"], capture_output=True, timeout=15, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def _missing(variable: str) -> str:
    return (
        f"{variable} is not set and no Docker engine answers `docker info`: this test needs a "
        f"real service. Run `make test` (it starts Kafka, Postgres and Redis and sets "
        f"KAFKA_BOOTSTRAP_SERVERS, DATABASE_URL, REDIS_URL), or export {variable}, or start Docker."
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def _containers() -> Iterator[ExitStack]:
    """Own the containers started for this session; stop them at its end."""
    with ExitStack() as stack:
        yield stack


def _start_kafka(containers: ExitStack) -> str:
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.waiting_utils import wait_for_logs

    # The broker advertises the host port, so map a fixed free one instead of a random one.
    port = _free_port()
    kafka = (
        DockerContainer(KAFKA_IMAGE)
        .with_bind_ports(9092, port)
        .with_envs(
            KAFKA_NODE_ID="1",
            KAFKA_PROCESS_ROLES="broker,controller",
            KAFKA_LISTENERS="PLAINTEXT://:9092,CONTROLLER://:9093",
            KAFKA_ADVERTISED_LISTENERS=f"PLAINTEXT://127.0.0.1:{port}",
            KAFKA_LISTENER_SECURITY_PROTOCOL_MAP="PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            KAFKA_CONTROLLER_LISTENER_NAMES="CONTROLLER",
            KAFKA_CONTROLLER_QUORUM_VOTERS="1@localhost:9093",
            KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR="1",
            KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR="1",
            KAFKA_TRANSACTION_STATE_LOG_MIN_ISR="1",
            KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS="0",
            KAFKA_AUTO_CREATE_TOPICS_ENABLE="false",
        )
    )
    containers.enter_context(kafka)
    wait_for_logs(kafka, "Kafka Server started", timeout=120)
    bootstrap = f"127.0.0.1:{port}"
    _create_topics(bootstrap)
    return bootstrap


def _create_topics(bootstrap: str) -> None:
    """Create the exchange's topics, as the local stack's `topics` step does."""
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap}
    deadline = time.monotonic() + 60
    while True:
        done = subprocess.run(
            [sys.executable, "-m", "libs.topics", "create"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode == 0:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"`python -m libs.topics create` failed on {bootstrap}:\n{done.stderr}")
        time.sleep(1)


@pytest.fixture(scope="session")
def kafka_bootstrap(_containers: ExitStack) -> str:
    """Return host:port of a Kafka 4.x broker whose exchange topics exist."""
    value = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if value:
        return value
    if not _docker_answers():
        pytest.fail(_missing("KAFKA_BOOTSTRAP_SERVERS"))
    return _start_kafka(_containers)


@pytest.fixture(scope="session")
def database_url(_containers: ExitStack) -> str:
    """Return a postgresql:// URL of an empty-to-start database the tests may write to."""
    value = os.environ.get("DATABASE_URL")
    if value:
        return value
    if not _docker_answers():
        pytest.fail(_missing("DATABASE_URL"))
    from testcontainers.postgres import PostgresContainer

    postgres = PostgresContainer(
        POSTGRES_IMAGE, username="exchange", password="exchange", dbname="exchange", driver=None
    )
    _containers.enter_context(postgres)
    return postgres.get_connection_url()


@pytest.fixture(scope="session")
def redis_url(_containers: ExitStack) -> str:
    """Return a redis:// URL."""
    value = os.environ.get("REDIS_URL")
    if value:
        return value
    if not _docker_answers():
        pytest.fail(_missing("REDIS_URL"))
    from testcontainers.redis import RedisContainer

    redis = RedisContainer(REDIS_IMAGE)
    _containers.enter_context(redis)
    return f"redis://{redis.get_container_host_ip()}:{redis.get_exposed_port(6379)}/0"
