"""The three-broker stack (infra/stack-cluster-test.toml): `make test` runs tests/cluster on it
after the rest of the suite, as ``STACK=infra/stack-cluster-test.toml scripts/with-test-stack.sh``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

RUN_DIR = Path(__file__).resolve().parents[2] / ".run" / "test-cluster"


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
