#!/usr/bin/env python3
"""Run the local stack's processes from a table (infra/stack.toml), like a tiny docker compose.

    supervise.py up STACK.toml       start a detached supervisor, wait until all is ready, print it
    supervise.py down STACK.toml     stop the supervisor (and so every process) and wait
    supervise.py run STACK.toml      supervise in the foreground (what `up` runs detached)
    supervise.py status STACK.toml   print what runs where
    supervise.py env STACK.toml      print the stack's [env] as shell `export` lines

The supervisor starts the table's processes in order, each after the previous one passed its
`ready` check (a oneshot entry must instead exit 0). It writes `<run_dir>/<name>.pid` and appends
output to `<run_dir>/<name>.log`, restarts a process that dies (with a growing backoff), and on
SIGTERM or SIGINT stops them all in reverse order: the entry's stop signal, then SIGKILL to the
process group after `stop_timeout` seconds. An entry with `enabled_by = "VAR"` is skipped when
the environment sets VAR to off, false, no or 0 (`make up DEMO_MARKET=off`). Standard library
only.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
BACKOFF_MAX_S = 30.0
STABLE_AFTER_S = 60.0  # a process that ran this long gets its restart backoff reset


class StackError(Exception):
    """The stack could not be brought up (or the table is wrong)."""


@dataclass(frozen=True)
class Entry:
    name: str
    command: list[str]
    ready: list[str] | None
    ready_timeout: float
    env: dict[str, str]
    oneshot: bool
    stop_signal: signal.Signals
    stop_timeout: float
    address: str
    enabled_by: str | None = None  # an environment variable that can switch the entry off


@dataclass
class Stack:
    run_dir: Path
    env: dict[str, str]
    entries: list[Entry]
    variables: dict[str, str] = field(default_factory=dict)  # [vars], expanded

    def path(self, name: str, suffix: str) -> Path:
        return self.run_dir / f"{name}.{suffix}"


@dataclass
class Child:
    entry: Entry
    proc: subprocess.Popen[bytes]
    started: float = field(default_factory=time.monotonic)
    backoff: float = 1.0


# ---------------------------------------------------------------- the table


def _read_table(path: Path) -> dict:
    with path.open("rb") as f:
        table = tomllib.load(f)
    base = table.pop("extends", None)
    if base is None:
        return table
    merged = _read_table(path.parent / base)
    merged.setdefault("vars", {}).update(table.get("vars", {}))
    merged.setdefault("env", {}).update(table.get("env", {}))
    only = table.get("only")
    if only is not None:  # keep just the named processes of the base table
        merged["process"] = [p for p in merged.get("process", []) if p["name"] in only]
    merged["process"] = _placed(merged.get("process", []), table.get("process", []))
    return merged


def _placed(base: list[dict], added: list[dict]) -> list[dict]:
    """Return the base table's processes with ``added`` placed: an entry with ``replaces =
    NAME`` takes NAME's place (several replacing one follow each other), one with ``after =
    NAME`` goes right after NAME (or after what came there before it), any other at the end."""
    processes = list(base)
    last: dict[str, str] = {}  # an anchor's name -> the last entry placed at it
    for entry in added:
        entry = dict(entry)
        replaces, after = entry.pop("replaces", None), entry.pop("after", None)
        anchor = replaces if replaces is not None else after
        if anchor is None:
            processes.append(entry)
            continue
        names = [p["name"] for p in processes]
        here = last.get(anchor, anchor)
        if here not in names:
            raise StackError(f"{entry.get('name')}: no process {anchor!r} to place it at")
        at = names.index(here)
        if replaces is not None and here == anchor:
            processes[at] = entry
        else:
            processes.insert(at + 1, entry)
        last[anchor] = entry["name"]
    return processes


def _expand(text: str, variables: dict[str, str]) -> str:
    for _ in range(10):  # variables may refer to variables
        new = VAR.sub(lambda m: _lookup(m.group(1), variables), text)
        if new == text:
            return new
        text = new
    raise StackError(f"variables nest too deep in {text!r}")


def _lookup(name: str, variables: dict[str, str]) -> str:
    if name not in variables:
        raise StackError(f"unknown variable ${{{name}}} (define it under [vars])")
    return str(variables[name])


def load_stack(path: Path) -> Stack:
    """Read a stack table, following `extends`, and expand its ${vars}."""
    table = _read_table(path)
    variables = {k: str(v) for k, v in table.get("vars", {}).items()}
    env = {k: _expand(str(v), variables) for k, v in table.get("env", {}).items()}
    names: set[str] = set()
    entries = []
    for raw in table.get("process", []):
        name = raw["name"]
        if name in names:
            raise StackError(f"process {name!r} appears twice in {path}")
        names.add(name)
        ready = raw.get("ready")
        entries.append(
            Entry(
                name=name,
                command=shlex.split(_expand(raw["command"], variables)),
                ready=shlex.split(_expand(ready, variables)) if ready else None,
                ready_timeout=float(raw.get("ready_timeout", 60)),
                env={k: _expand(str(v), variables) for k, v in raw.get("env", {}).items()},
                oneshot=bool(raw.get("oneshot", False)),
                stop_signal=signal.Signals[raw.get("stop_signal", "SIGTERM")],
                stop_timeout=float(raw.get("stop_timeout", 20)),
                address=_expand(raw.get("address", ""), variables),
                enabled_by=raw.get("enabled_by"),
            )
        )
    run_dir = ROOT / _expand(variables.get("run_dir", ".run"), variables)
    expanded = {k: _expand(v, variables) for k, v in variables.items()}
    return Stack(run_dir=run_dir, env=env, entries=entries, variables=expanded)


OFF = {"off", "false", "no", "0"}


def switched_off(entry: Entry, stack_env: dict[str, str], environ: dict[str, str]) -> bool:
    """Whether the entry's `enabled_by` variable turns it off: set to off, false, no or 0 in
    the environment (else in the table's [env]). Unset, or any other value, leaves it on."""
    if entry.enabled_by is None:
        return False
    value = environ.get(entry.enabled_by, stack_env.get(entry.enabled_by, ""))
    return value.strip().lower() in OFF


# ---------------------------------------------------------------- pid files


def read_live_pid(pidfile: Path) -> int | None:
    """Return the pid in `pidfile` if that process still runs and is the one that was recorded."""
    try:
        pid = int(pidfile.read_text().strip())
        written = pidfile.stat().st_mtime
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    # Guard against pid reuse: the recorded process started before its pid file was written.
    started = _process_start_time(pid)
    if started is not None and started > written + 2:
        return None
    return pid


def _process_start_time(pid: int) -> float | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        ticks = int(stat.rsplit(")", 1)[1].split()[19])
        boot = next(
            float(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime ")
        )
    except (OSError, ValueError, IndexError, StopIteration):
        return None
    return boot + ticks / os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- the supervisor


class Supervisor:
    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.children: dict[str, Child] = {}
        self.stopping = False

    def log(self, message: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} supervise: {message}", flush=True)

    def set_state(self, status: str, message: str = "") -> None:
        state = self.stack.path("supervisor", "state")
        tmp = state.with_suffix(".tmp")
        tmp.write_text(json.dumps({"status": status, "message": message, "pid": os.getpid()}))
        tmp.replace(state)

    def on_signal(self, signum: int, _frame: object) -> None:
        if not self.stopping:
            self.log(f"got {signal.Signals(signum).name}: stopping")
        self.stopping = True

    def run(self) -> int:
        self.stack.run_dir.mkdir(parents=True, exist_ok=True)
        for entry in self.stack.entries:
            pid = read_live_pid(self.stack.path(entry.name, "pid"))
            if pid is not None and not entry.oneshot:
                self.set_state("failed", f"{entry.name} still runs as pid {pid}")
                self.log(f"{entry.name} from an earlier run still runs as pid {pid}: stop it first")
                return 1
        signal.signal(signal.SIGTERM, self.on_signal)
        signal.signal(signal.SIGINT, self.on_signal)
        self.stack.path("supervisor", "pid").write_text(f"{os.getpid()}\n")
        self.set_state("starting")
        try:
            for entry in self.stack.entries:
                if self.stopping:
                    break
                if switched_off(entry, self.stack.env, dict(os.environ)):
                    self.log(f"{entry.name} not started: switched off by {entry.enabled_by}")
                    continue
                self.bring_up(entry)
        except StackError as exc:
            self.log(f"FAILED: {exc}")
            self.set_state("failed", str(exc))
            self.stop_all()
            return 1
        if not self.stopping:
            self.set_state("ready")
            self.log("all processes ready")
        while not self.stopping:
            self.watch()
            time.sleep(0.5)
        self.set_state("stopping")
        self.stop_all()
        self.set_state("stopped")
        self.stack.path("supervisor", "pid").unlink(missing_ok=True)
        self.log("stopped")
        return 0

    def spawn(self, entry: Entry) -> Child:
        env = {**os.environ, **self.stack.env, **entry.env, "PYTHONUNBUFFERED": "1"}
        with self.stack.path(entry.name, "log").open("ab") as out:
            out.write(
                f"\n===== {time.strftime('%F %T')} start: {shlex.join(entry.command)}\n".encode()
            )
            out.flush()
            try:
                proc = subprocess.Popen(
                    entry.command,
                    cwd=ROOT,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # own process group: we signal it, not the terminal
                )
            except OSError as exc:
                raise StackError(f"{entry.name}: cannot run {entry.command[0]}: {exc}") from exc
        self.stack.path(entry.name, "pid").write_text(f"{proc.pid}\n")
        self.log(f"started {entry.name} (pid {proc.pid})")
        child = Child(entry, proc)
        self.children[entry.name] = child
        return child

    def bring_up(self, entry: Entry) -> None:
        child = self.spawn(entry)
        deadline = time.monotonic() + entry.ready_timeout
        log = _shown(self.stack.path(entry.name, "log"))
        while not self.stopping:
            code = child.proc.poll()
            if entry.oneshot and code is not None:
                self.stack.path(entry.name, "pid").unlink(missing_ok=True)
                if code != 0:
                    raise StackError(f"{entry.name} exited with {code}; see {log}")
                self.log(f"{entry.name} done")
                return
            if code is not None:
                raise StackError(f"{entry.name} exited with {code} while starting; see {log}")
            if not entry.oneshot and self.is_ready(entry, deadline):
                self.log(f"{entry.name} ready")
                return
            if time.monotonic() > deadline:
                raise StackError(
                    f"{entry.name} not ready within {entry.ready_timeout:g}s; see {log}"
                )
            time.sleep(0.3)

    def is_ready(self, entry: Entry, deadline: float) -> bool:
        if entry.ready is None:
            return True
        env = {**os.environ, **self.stack.env, **entry.env}
        timeout = max(1.0, min(30.0, deadline - time.monotonic()))
        try:
            done = subprocess.run(
                entry.ready,
                cwd=ROOT,
                env=env,
                timeout=timeout,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return False
        except OSError as exc:
            raise StackError(f"{entry.name}: cannot run ready check: {exc}") from exc
        return done.returncode == 0

    def watch(self) -> None:
        """Restart every long-running process that died, after its backoff."""
        for name, child in list(self.children.items()):
            if child.entry.oneshot:
                continue
            code = child.proc.poll()
            if code is None:
                continue
            ran = time.monotonic() - child.started
            backoff = 1.0 if ran > STABLE_AFTER_S else child.backoff
            self.log(f"{name} (pid {child.proc.pid}) exited with {code}; restart in {backoff:g}s")
            end = time.monotonic() + backoff
            while time.monotonic() < end and not self.stopping:
                time.sleep(0.1)
            if self.stopping:
                return
            try:
                new = self.spawn(child.entry)
            except StackError as exc:
                self.log(str(exc))
                continue
            new.backoff = min(BACKOFF_MAX_S, backoff * 2)

    def stop_all(self) -> None:
        for name in reversed(list(self.children)):
            child = self.children.pop(name)
            self.stop(child)
            self.stack.path(name, "pid").unlink(missing_ok=True)

    def stop(self, child: Child) -> None:
        proc, entry = child.proc, child.entry
        if proc.poll() is None:
            self.log(f"stopping {entry.name} (pid {proc.pid}) with {entry.stop_signal.name}")
            try:
                proc.send_signal(entry.stop_signal)
                proc.wait(timeout=entry.stop_timeout)
            except subprocess.TimeoutExpired:
                self.log(f"{entry.name} still runs after {entry.stop_timeout:g}s: SIGKILL")
        # Whatever is left in its process group (helpers, forked children) goes too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


# ---------------------------------------------------------------- commands


def cmd_run(stack: Stack, _args: argparse.Namespace) -> int:
    return Supervisor(stack).run()


def cmd_up(stack: Stack, args: argparse.Namespace) -> int:
    stack.run_dir.mkdir(parents=True, exist_ok=True)
    pidfile = stack.path("supervisor", "pid")
    if read_live_pid(pidfile) is not None:
        print(f"supervisor already runs (pid {pidfile.read_text().strip()})")
        return cmd_status(stack, args)
    state = stack.path("supervisor", "state")
    state.unlink(missing_ok=True)
    log = stack.path("supervisor", "log")
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "run", str(args.stack)],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + args.timeout
    print(f"supervisor started (pid {proc.pid}); waiting for the stack (log: {_shown(log)})")
    while True:
        status = _read_state(state)
        if status.get("status") == "ready":
            return cmd_status(stack, args)
        if status.get("status") == "failed" or proc.poll() is not None:
            print(f"stack failed: {status.get('message', 'supervisor exited')}", file=sys.stderr)
            _print_tail(log)
            proc.wait()
            return 1
        if time.monotonic() > deadline:
            print(f"stack not ready within {args.timeout:g}s: stopping it", file=sys.stderr)
            _print_tail(log)
            cmd_down(stack, args)
            return 1
        time.sleep(0.3)


def cmd_down(stack: Stack, args: argparse.Namespace) -> int:
    pidfile = stack.path("supervisor", "pid")
    pid = read_live_pid(pidfile)
    if pid is not None:
        print(f"stopping supervisor (pid {pid})")
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + args.timeout
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _alive(pid):
            print(f"supervisor still runs after {args.timeout:g}s: SIGKILL", file=sys.stderr)
            os.kill(pid, signal.SIGKILL)
    pidfile.unlink(missing_ok=True)
    # Processes orphaned by a supervisor that was killed outright: stop them too.
    for entry in reversed(stack.entries):
        child_pidfile = stack.path(entry.name, "pid")
        child = read_live_pid(child_pidfile)
        if child is not None:
            print(f"stopping orphaned {entry.name} (pid {child})")
            _terminate(child, entry.stop_signal, entry.stop_timeout)
        child_pidfile.unlink(missing_ok=True)
    print("stack down")
    return 0


def cmd_status(stack: Stack, _args: argparse.Namespace) -> int:
    status = _read_state(stack.path("supervisor", "state")).get("status", "not running")
    supervisor = read_live_pid(stack.path("supervisor", "pid"))
    print(f"supervisor: {status}" + (f" (pid {supervisor})" if supervisor else ""))
    for entry in stack.entries:
        pid = read_live_pid(stack.path(entry.name, "pid"))
        where = "oneshot" if entry.oneshot else (f"pid {pid}" if pid else "down")
        if pid is None and switched_off(entry, stack.env, dict(os.environ)):
            where = "off"
        log = _shown(stack.path(entry.name, "log"))
        print(f"  {entry.name:<12} {where:<11} {entry.address:<24} {log}")
    for key, value in stack.env.items():
        print(f"  {key}={value}")
    return 0 if supervisor else 1


def cmd_env(stack: Stack, _args: argparse.Namespace) -> int:
    for key, value in stack.env.items():
        print(f"export {key}={shlex.quote(value)}")
    return 0


def _read_state(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _shown(path: Path) -> Path:
    """Return `path` relative to the repository when inside it (a run_dir may be elsewhere)."""
    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is dead for our purposes.
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _terminate(pid: int, sig: signal.Signals, timeout: float) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _print_tail(path: Path, lines: int = 20) -> None:
    try:
        text = path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return
    for line in text:
        print(f"  | {line}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["up", "down", "run", "status", "env"])
    parser.add_argument("stack", type=Path, help="the process table, e.g. infra/stack.toml")
    parser.add_argument("--timeout", type=float, default=300, help="seconds for up/down")
    args = parser.parse_args(argv)
    try:
        stack = load_stack(args.stack)
    except (OSError, tomllib.TOMLDecodeError, KeyError, StackError) as exc:
        print(f"supervise: bad stack table {args.stack}: {exc!r}", file=sys.stderr)
        return 2
    commands = {
        "up": cmd_up,
        "down": cmd_down,
        "run": cmd_run,
        "status": cmd_status,
        "env": cmd_env,
    }
    return commands[args.command](stack, args)


if __name__ == "__main__":
    sys.exit(main())
