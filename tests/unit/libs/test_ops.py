import json
import subprocess
import sys
import urllib.error
import urllib.request

import pytest
from prometheus_client import CollectorRegistry, Counter

from libs.ops import OFF_REPLY_PATH_NICENESS, OpsServer


@pytest.fixture
def server():
    registry = CollectorRegistry()
    Counter("commands", "commands applied", registry=registry).inc(3)

    def digest(query: dict[str, str]) -> dict:
        if query.get("symbol") != "BTC-PERP":
            raise LookupError(f"not served here: {query.get('symbol')}")
        return {"symbol": "BTC-PERP", "digest": "ab", "offset": 7}

    ops = OpsServer(0, digest, registry)
    yield f"http://127.0.0.1:{ops.port}"
    ops.close()


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_metrics_are_served_in_prometheus_text_format(server):
    status, body = _get(f"{server}/metrics")
    assert status == 200
    assert b"commands_total 3.0" in body


def test_digest_answers_with_the_service_json(server):
    status, body = _get(f"{server}/digest?symbol=BTC-PERP")
    assert status == 200
    assert json.loads(body) == {"symbol": "BTC-PERP", "digest": "ab", "offset": 7}


def test_digest_of_something_not_served_is_a_404_with_a_reason(server):
    status, body = _get(f"{server}/digest?symbol=DOGE-PERP")
    assert status == 404
    assert "DOGE-PERP" in json.loads(body)["msg"]


def in_child(program: str) -> list[str]:
    """Run ``program`` in a fresh interpreter (what it changes stays there); return the words
    it printed."""
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, check=True
    )
    return done.stdout.split()


def test_lower_priority_applies_to_the_threads_started_after_it() -> None:
    """In a child process (the test runner keeps its own priority): the main thread and a
    thread started afterwards both run at the added niceness."""
    program = (
        "import os, threading\n"
        "from libs.ops import lower_priority\n"
        "before = os.getpriority(os.PRIO_PROCESS, 0)\n"
        "lower_priority(3)\n"
        "seen = []\n"
        "t = threading.Thread(target=lambda: seen.append("
        "os.getpriority(os.PRIO_PROCESS, threading.get_native_id())))\n"
        "t.start(); t.join()\n"
        "print(before, os.getpriority(os.PRIO_PROCESS, 0), seen[0])\n"
    )
    before, main, thread = map(int, in_child(program))
    assert main == thread == min(before + 3, 19)  # 19: the lowest priority there is


def test_the_engines_off_the_reply_path_lower_their_priority_by_default() -> None:
    from services.positions.settings import PositionsSettings
    from services.projector.app import ProjectorSettings

    for settings in (PositionsSettings, ProjectorSettings):
        found = settings(kafka_bootstrap_servers="x:1", redis_url="redis://x")
        assert found.niceness == OFF_REPLY_PATH_NICENESS > 0


def test_calm_gc_freezes_what_start_up_built_and_makes_collections_rare() -> None:
    """In a child process (the test runner keeps CPython's defaults)."""
    program = (
        "import gc\n"
        "from libs.ops import GC_THRESHOLDS, calm_gc\n"
        "calm_gc()\n"
        "print(gc.get_freeze_count() > 1000, gc.get_threshold() == GC_THRESHOLDS)\n"
    )
    assert in_child(program) == ["True", "True"]
