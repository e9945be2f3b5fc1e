"""scripts/supervise.py's `enabled_by`: an entry that an environment variable switches off
(`make up DEMO_MARKET=off`) is not started, and the rest of the stack comes up without it."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shlex
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SUPERVISE = ROOT / "scripts" / "supervise.py"
SLEEPER = "import time; time.sleep(60)"


def _supervise():
    spec = importlib.util.spec_from_file_location("supervise", SUPERVISE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["supervise"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


supervise = _supervise()


def _table(tmp: Path, tag: str, switch: str) -> Path:
    lines = [f"[vars]\nrun_dir = {json.dumps(str(tmp / 'run'))}\n"]
    for name, extra in [("always", ""), ("optional", f"enabled_by = {json.dumps(switch)}\n")]:
        command = shlex.join([sys.executable, "-S", "-c", SLEEPER, tag])
        lines.append(f"[[process]]\nname = {json.dumps(name)}\n")
        lines.append(f"command = {json.dumps(command)}\nstop_timeout = 5\n{extra}")
    table = tmp / f"{tag}.toml"
    table.write_text("\n".join(lines))
    return table


def test_an_entry_reads_its_switch_from_the_table(tmp_path: Path) -> None:
    stack = supervise.load_stack(_table(tmp_path, "t", "SOME_SWITCH"))
    assert [(e.name, e.enabled_by) for e in stack.entries] == [
        ("always", None),
        ("optional", "SOME_SWITCH"),
    ]


@pytest.mark.parametrize("value", ["off", "OFF", "false", "no", "0", " off "])
def test_off_false_no_and_zero_switch_an_entry_off(value: str) -> None:
    assert supervise.switched_off(_entry("SWITCH"), {}, {"SWITCH": value})


@pytest.mark.parametrize("value", ["on", "1", "true", "yes", ""])
def test_anything_else_or_nothing_leaves_it_on(value: str) -> None:
    assert not supervise.switched_off(_entry("SWITCH"), {}, {"SWITCH": value})
    assert not supervise.switched_off(_entry("SWITCH"), {}, {})
    assert not supervise.switched_off(_entry(None), {}, {"SWITCH": "off"})


def test_the_environment_wins_over_the_tables_env() -> None:
    entry = _entry("SWITCH")
    assert supervise.switched_off(entry, {"SWITCH": "off"}, {})
    assert not supervise.switched_off(entry, {"SWITCH": "off"}, {"SWITCH": "on"})


def _entry(switch: str | None):
    return supervise.Entry(
        name="x",
        command=["true"],
        ready=None,
        ready_timeout=1,
        env={},
        oneshot=False,
        stop_signal=signal.SIGTERM,
        stop_timeout=1,
        address="",
        enabled_by=switch,
    )


def test_the_supervisor_skips_a_switched_off_entry_and_brings_up_the_rest(tmp_path: Path):
    tag = f"supervise-switch-{uuid.uuid4().hex}"
    switch = f"SWITCH_{uuid.uuid4().hex[:8].upper()}"
    table = _table(tmp_path, tag, switch)
    run_dir = tmp_path / "run"
    out = (tmp_path / "supervisor.out").open("ab")
    proc = subprocess.Popen(
        [sys.executable, str(SUPERVISE), "run", str(table)],
        env={**os.environ, switch: "off"},
        stdin=subprocess.DEVNULL,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 15
        while _state(run_dir) != "ready":
            assert proc.poll() is None and time.monotonic() < deadline, _read(tmp_path)
            time.sleep(0.05)
        assert sorted(p.name for p in run_dir.glob("*.pid")) == ["always.pid", "supervisor.pid"]
        assert f"optional not started: switched off by {switch}" in _read(tmp_path)
        status = subprocess.run(
            [sys.executable, str(SUPERVISE), "status", str(table)],
            env={**os.environ, switch: "off"},
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert "optional     off" in status.stdout
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        out.close()
        _kill_tagged(tag)


def _state(run_dir: Path) -> str | None:
    with contextlib.suppress(OSError, ValueError):
        return json.loads((run_dir / "supervisor.state").read_text())["status"]
    return None


def _read(tmp: Path) -> str:
    return (tmp / "supervisor.out").read_text(errors="replace")


def _kill_tagged(tag: str) -> None:
    """Kill whatever still carries the test's tag on its command line (a sleeper)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if tag.encode() in (entry / "cmdline").read_bytes():
                os.kill(int(entry.name), signal.SIGKILL)
