"""scripts/supervise.py, what `make up` / `make down` use: it writes each process's pid file and
log, restarts a process that dies, and stops them all on SIGTERM or `down`.

Each test runs the real script on a stack table of tiny Python sleepers in a temporary run
directory. Every process a test starts carries the test's tag on its command line, and the
fixture kills whatever still carries it at the end, passed or failed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

ROOT = Path(__file__).resolve().parents[2]
SUPERVISE = ROOT / "scripts" / "supervise.py"
SLEEPER = "import time; print('sleeper', 'up', flush=True); time.sleep(60)"
ONESHOT = "print('setup done')"
T = TypeVar("T")


class Stack:
    """A stack table in a temporary directory, and the supervisors started on it."""

    def __init__(self, tmp: Path) -> None:
        self.tag = f"supervise-test-{uuid.uuid4().hex}"
        self.run_dir = tmp / "run"
        self.table = tmp / f"{self.tag}.toml"  # so the supervisor's command line has the tag
        self.output = tmp / "supervisor.out"
        self.supervisors: list[subprocess.Popen[bytes]] = []
        lines = [f"[vars]\nrun_dir = {json.dumps(str(self.run_dir))}\n"]
        for name, code, oneshot in [
            ("setup", ONESHOT, True),
            ("alpha", SLEEPER, False),
            ("beta", SLEEPER, False),
        ]:
            command = shlex.join([sys.executable, "-S", "-c", code, self.tag])  # -S: fast start
            lines.append(f"[[process]]\nname = {json.dumps(name)}\n")
            lines.append(f"command = {json.dumps(command)}\noneshot = {str(oneshot).lower()}\n")
            lines.append("stop_timeout = 5\n")
        self.table.write_text("\n".join(lines))

    def command(self, verb: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """Run `supervise.py VERB TABLE` to completion, as the Makefile does."""
        return subprocess.run(
            [sys.executable, str(SUPERVISE), verb, str(self.table), "--timeout", "10"],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def run(self) -> subprocess.Popen[bytes]:
        """Start `supervise.py run TABLE` (the foreground supervisor); return once all is ready."""
        with self.output.open("ab") as out:
            proc = subprocess.Popen(
                [sys.executable, str(SUPERVISE), "run", str(self.table)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.supervisors.append(proc)
        wait_for(lambda: self.state() == "ready" or proc.poll() is not None, "the stack")
        assert proc.poll() is None, self.output.read_text()
        return proc

    def state(self) -> str | None:
        with contextlib.suppress(OSError, ValueError):
            return json.loads((self.run_dir / "supervisor.state").read_text())["status"]
        return None

    def pid(self, name: str) -> int | None:
        with contextlib.suppress(OSError, ValueError):
            return int((self.run_dir / f"{name}.pid").read_text())
        return None

    def log(self, name: str) -> str:
        return (self.run_dir / f"{name}.log").read_text()

    def pid_files(self) -> list[str]:
        return sorted(p.name for p in self.run_dir.glob("*.pid"))

    def ours(self, pid: int) -> bool:
        """Tell whether `pid` runs and is one of this stack's processes (not a reused pid)."""
        return alive(pid) and self.tag.encode() in _cmdline(pid)

    def kill_leftovers(self) -> None:
        for proc in self.supervisors:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and self.tag.encode() in _cmdline(int(entry.name)):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(entry.name), signal.SIGKILL)
        for proc in self.supervisors:
            proc.wait(timeout=10)


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def alive(pid: int) -> bool:
    """Tell whether `pid` runs (a zombie does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_for(condition: Callable[[], T], what: str, timeout: float = 10.0) -> T:
    """Return the first truthy value of `condition()`, polled until `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.05)
    return value


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    stack = Stack(tmp_path)
    try:
        yield stack
    finally:
        stack.kill_leftovers()


def test_the_supervisor_writes_a_pid_file_and_a_log_for_each_process(stack: Stack) -> None:
    supervisor = stack.run()

    assert stack.pid("supervisor") == supervisor.pid
    assert stack.pid_files() == ["alpha.pid", "beta.pid", "supervisor.pid"]
    for name in ("alpha", "beta"):
        pid = stack.pid(name)
        assert pid is not None and stack.ours(pid), f"{name}.pid names no running sleeper"
        wait_for(lambda name=name: "sleeper up" in stack.log(name), f"{name}'s output")
        assert f"start: {sys.executable} -S -c" in stack.log(name)
    # A oneshot runs to completion: a log, no pid file.
    assert "setup done" in stack.log("setup")


def test_a_process_killed_with_sigkill_is_restarted_after_a_backoff(stack: Stack) -> None:
    stack.run()
    first, beta = stack.pid("alpha"), stack.pid("beta")
    assert first is not None and beta is not None
    wait_for(lambda: "sleeper up" in stack.log("alpha"), "alpha's output")

    os.kill(first, signal.SIGKILL)

    second = wait_for(lambda: (p := stack.pid("alpha")) != first and p, "alpha's new pid")
    assert stack.ours(second) and not alive(first)
    wait_for(lambda: stack.log("alpha").count("sleeper up") == 2, "alpha's second output")
    assert stack.log("alpha").count("start:") == 2
    assert f"alpha (pid {first}) exited with -9; restart in 1s" in stack.output.read_text()
    assert stack.pid("beta") == beta and stack.ours(beta), "a sibling's death touched beta"


def test_sigterm_stops_every_process_and_removes_the_pid_files(stack: Stack) -> None:
    supervisor = stack.run()
    children = [stack.pid("alpha"), stack.pid("beta")]

    supervisor.send_signal(signal.SIGTERM)

    assert supervisor.wait(timeout=10) == 0
    assert [pid for pid in children if pid is None or alive(pid)] == []
    assert stack.pid_files() == []
    assert stack.state() == "stopped"


def test_up_and_down_start_and_stop_the_stack_in_the_background(stack: Stack) -> None:
    up = stack.command("up")
    assert up.returncode == 0, up.stdout + up.stderr
    supervisor, children = stack.pid("supervisor"), [stack.pid("alpha"), stack.pid("beta")]
    assert supervisor is not None and stack.ours(supervisor)
    assert all(pid is not None and stack.ours(pid) for pid in children)

    down = stack.command("down")

    assert down.returncode == 0, down.stdout + down.stderr
    assert "stack down" in down.stdout
    assert [pid for pid in [supervisor, *children] if pid is None or alive(pid)] == []
    assert stack.pid_files() == []


def test_down_stops_the_processes_of_a_supervisor_that_was_killed_outright(
    stack: Stack,
) -> None:
    supervisor = stack.run()
    children = [stack.pid("alpha"), stack.pid("beta")]
    supervisor.kill()
    supervisor.wait(timeout=10)
    assert all(pid is not None and stack.ours(pid) for pid in children), "orphans still run"

    down = stack.command("down")

    assert down.returncode == 0, down.stdout + down.stderr
    assert "stopping orphaned alpha" in down.stdout
    assert [pid for pid in children if pid is None or alive(pid)] == []
    assert stack.pid_files() == []
