"""The read model has one writer, the projector: it owns key patterns no other writer's keys
match (the gateway's rate limits), the engines do not talk to Redis at all, and the gateway, the
reader, writes nothing but its rate limits."""

from __future__ import annotations

import ast
import inspect
from fnmatch import fnmatchcase
from pathlib import Path
from types import ModuleType

from libs.read_model import keys as projector_keys
from services.gateway import limits

ROOT = Path(__file__).resolve().parents[2]

SCHEMAS: dict[str, ModuleType] = {"projector": projector_keys}
OWNED = {name: module.OWNED_PATTERNS for name, module in SCHEMAS.items()}
OWNED["gateway"] = limits.OWNED_PATTERNS

SAMPLE_ARGS = {int: 7, str: "BTC-PERP"}


def _keys_of(module: ModuleType) -> list[str]:
    """Every key the module names: its ``*_KEY`` constants and what its ``*_key`` builders
    return for sample arguments (channels and hash fields are not keys)."""
    found = [v for k, v in vars(module).items() if k.endswith("_KEY") and isinstance(v, str)]
    for name, function in inspect.getmembers(module, inspect.isfunction):
        if name.endswith("_key") and function.__module__ == module.__name__:
            hints = [p.annotation for p in inspect.signature(function).parameters.values()]
            found.append(function(*(SAMPLE_ARGS[{"int": int, "str": str}[h]] for h in hints)))
    return found


def test_every_key_matches_its_writers_patterns_and_no_other_writers():
    for writer, module in SCHEMAS.items():
        named = _keys_of(module)
        assert named, writer
        for key in named:
            owners = {
                w for w, patterns in OWNED.items() if any(fnmatchcase(key, p) for p in patterns)
            }
            assert owners == {writer}, f"{key!r} matches the patterns of {sorted(owners)}"
    assert {w for w, p in OWNED.items() if any(fnmatchcase("ratelimit:ip:1", x) for x in p)} == {
        "gateway"
    }


def _schema_imports(folder: str) -> set[str]:
    """The libs.read_model modules imported anywhere under ``services/<folder>``."""
    found: set[str] = set()
    for path in (ROOT / "services" / folder).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "libs.read_model":
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                "libs.read_model."
            ):
                found.add(node.module.rsplit(".", 1)[1])
    return found


def test_the_projector_builds_every_key_and_the_engines_none():
    # positions: a position's facts; candles: a candle's fields
    assert _schema_imports("projector") == {"keys", "positions", "candles"}
    for engine in ("wallet", "positions", "matcher", "index_feed"):
        assert _schema_imports(engine) == set(), engine


def test_no_process_but_the_projector_and_the_gateway_talks_to_redis():
    talkers = set()
    for path in (ROOT / "services").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
                module = getattr(node, "module", None) or ""
                if any(n.split(".")[0] == "redis" for n in [*names, module]) or module in (
                    "libs.redis_batch",
                ):
                    talkers.add(path.relative_to(ROOT / "services").parts[0])
    assert talkers == {"projector", "gateway"}


WRITES = {"set", "hset", "hdel", "delete", "incr", "expire", "lpush", "ltrim", "zadd", "sadd"}


def test_the_gateway_writes_no_read_model_key():
    """Its Redis calls (on a client or a pipeline) are reads and subscriptions; its one script
    is the rate limiter's; its other writes are the Binance face's listen keys."""
    calls = []
    for path in (ROOT / "services" / "gateway").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in WRITES | {"register_script"}:
                receiver = ast.unparse(node.value)
                if "redis" in receiver or "pipe" in receiver:
                    calls.append((path.name, node.attr))
    assert {call for call in calls if call[0] != "listen_keys.py"} == {
        ("limits.py", "register_script")
    }
