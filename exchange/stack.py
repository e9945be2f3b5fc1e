"""Where the exchange runs: flags, then the environment, then the local stack's table.

The table is ``infra/stack.toml`` read by ``scripts/supervise.py``'s own loader (its
``[vars]`` and ``[env]``, ``extends`` followed), so the command line needs no environment right
after ``make up``, and ``--stack infra/stack-test.toml`` points it at the test stack.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from libs.topics import Topics

ROOT = Path(__file__).resolve().parent.parent
SUPERVISE = ROOT / "scripts" / "supervise.py"
DEFAULT_STACK = ROOT / "infra" / "stack.toml"

ENGINES = ("matcher", "wallet", "positions", "projector")
"""The engines that serve ``/digest`` on their metrics port (``<engine>_metrics_port``)."""


class StackNotFound(Exception):
    """No stack table to read and nothing in the flags or environment to replace it."""


@dataclass(frozen=True)
class Target:
    """One exchange deployment: its broker, Redis, topic prefix and the engines' addresses."""

    bootstrap: str
    redis_url: str | None = None
    prefix: str = ""
    digest_urls: Mapping[str, str] = field(default_factory=dict)
    """engine -> base URL of its ops endpoint (``/digest``, ``/metrics``); of several
    instances, their URLs joined by commas."""
    stack_file: Path | None = None
    """The table the processes were started from (for ``status``), when known."""
    user_partitions: int = 1
    """The wallet's and the position engine's user shards (``USER_PARTITIONS``)."""

    def topic(self, name: str) -> str:
        """Return the topic this deployment reads for the table's ``name``."""
        return Topics(self.prefix).physical(name)


@dataclass(frozen=True)
class StackTable:
    """What the command line needs of a stack table."""

    path: Path
    variables: dict[str, str]
    env: dict[str, str]


def load_supervise() -> ModuleType:
    """Import ``scripts/supervise.py`` (a script, not a package) as a module."""
    name = "exchange_supervise"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, SUPERVISE)
    if spec is None or spec.loader is None or not SUPERVISE.exists():
        raise StackNotFound(f"{SUPERVISE} is missing (an installed copy without the repo?)")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses resolve their module while being defined
    spec.loader.exec_module(module)
    return module


def read_table(path: Path) -> StackTable:
    """Return ``path``'s expanded ``[vars]`` and ``[env]``, read by the supervisor's loader."""
    supervise = load_supervise()
    try:
        stack = supervise.load_stack(path)
    except (OSError, ValueError, KeyError, supervise.StackError) as error:
        raise StackNotFound(f"cannot read {path}: {error}") from error
    return StackTable(path, dict(stack.variables), dict(stack.env))


def resolve(
    *,
    environ: Mapping[str, str],
    table: StackTable | None,
    bootstrap: str | None = None,
    redis_url: str | None = None,
    prefix: str | None = None,
    digest_urls: Mapping[str, str] | None = None,
) -> Target:
    """Return the deployment named by the flags (not None), else the environment (the
    variables the services read), else the stack table; raise StackNotFound without a broker."""
    stack_env = table.env if table else {}

    def pick(flag: str | None, name: str) -> str | None:
        if flag:
            return flag
        return environ.get(name) or stack_env.get(name) or None

    broker = pick(bootstrap, "KAFKA_BOOTSTRAP_SERVERS")
    if broker is None:
        raise StackNotFound(
            "no broker: pass --bootstrap, set KAFKA_BOOTSTRAP_SERVERS, or run from the repo "
            "with infra/stack.toml (make up)"
        )
    urls = {}
    if table is not None:
        for engine in ENGINES:  # {engine}_metrics_port, and _2, _3 ... of more instances
            ports = [
                port
                for name, port in sorted(table.variables.items())
                if name == f"{engine}_metrics_port" or name.startswith(f"{engine}_metrics_port_")
            ]
            if ports:
                urls[engine] = ",".join(f"http://127.0.0.1:{port}" for port in ports)
    urls.update(digest_urls or {})
    return Target(
        bootstrap=broker,
        redis_url=pick(redis_url, "REDIS_URL"),
        prefix=prefix if prefix is not None else environ.get("TOPIC_PREFIX", ""),
        digest_urls=urls,
        stack_file=table.path if table else None,
        user_partitions=int(pick(None, "USER_PARTITIONS") or 1),
    )


def parse_digest_urls(values: list[str]) -> dict[str, str]:
    """Return ``ENGINE=URL[,URL...]`` flags (a URL per instance) as a mapping; raise
    ValueError naming a bad one."""
    urls = {}
    for value in values:
        engine, sep, url = value.partition("=")
        if not sep or engine not in ENGINES or not url:
            raise ValueError(f"--digest-url {value!r}: want ENGINE=URL, ENGINE one of {ENGINES}")
        urls[engine] = ",".join(u.strip().rstrip("/") for u in url.split(","))
    return urls
