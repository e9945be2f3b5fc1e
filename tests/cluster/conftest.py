"""The three-broker stack (infra/stack-cluster-test.toml): `make test` runs tests/cluster on it
after the rest of the suite, as ``STACK=infra/stack-cluster-test.toml scripts/with-test-stack.sh``.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

RUN_DIR = Path(__file__).resolve().parents[2] / ".run" / "test-cluster"
NODES = (1, 2, 3)


def node_pid(node: int) -> int:
    """The pid of the cluster's node ``node`` (1-3), as its supervisor wrote it."""
    return int((RUN_DIR / f"kafka-{node}.pid").read_text())


def kill_node(node: int) -> None:
    """kill -9 node ``node``; its supervisor starts it again."""
    os.kill(node_pid(node), signal.SIGKILL)


@pytest.fixture(scope="session")
def cluster_bootstrap() -> str:
    """The bootstrap list of the three-broker stack; fails (never skips) without it."""
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "")
    if len(bootstrap.split(",")) != 3 or not (RUN_DIR / "kafka-1.pid").exists():
        pytest.fail(
            "tests/cluster need the three-broker stack: run them as "
            "`STACK=infra/stack-cluster-test.toml scripts/with-test-stack.sh "
            ".venv/bin/python -m pytest tests/cluster` (make test does)"
        )
    return bootstrap
