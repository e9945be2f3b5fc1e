"""docker-compose.yml stays runnable: its modules exist, its environment matches the settings,
its infrastructure has healthchecks and its start order waits on conditions.

Read statically (no Docker) with a small reader for the YAML subset the file keeps to.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"

# Read by every service through libs/settings.py and the services' own settings.
SHARED_SETTINGS = {"KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL", "REDIS_URL"}
CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}


# ---------------------------------------------------------------- a tiny YAML subset reader


def _strip_comment(line: str) -> str:
    quote = None
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1] in " \t"):
            return line[:i].rstrip()
    return line.rstrip()


def _scalar(text: str) -> object:
    text = text.strip()
    if text.startswith("["):
        return json.loads(text)  # flow lists of double-quoted strings only
    if text.startswith('"'):
        return json.loads(text)
    if text.startswith("'"):
        if not text.endswith("'"):
            raise ValueError(f"unsupported scalar {text!r}")
        return text[1:-1].replace("''", "'")
    if text[:1] in {"&", "*", "|", ">", "{", "!"}:
        raise ValueError(f"unsupported YAML construct {text!r}")
    return text


def parse_yaml_subset(text: str) -> object:
    """Parse block mappings, `- scalar` lists, flow lists and scalars; raise on anything else."""
    lines = []
    for raw in text.splitlines():
        if "\t" in raw[: len(raw) - len(raw.lstrip())]:
            raise ValueError("tabs in indentation")
        line = _strip_comment(raw)
        if line.strip():
            lines.append((len(line) - len(line.lstrip()), line.strip()))
    value, end = _block(lines, 0, lines[0][0] if lines else 0)
    if end != len(lines):
        raise ValueError(f"unexpected indentation at {lines[end][1]!r}")
    return value


def _block(lines: list[tuple[int, str]], i: int, indent: int) -> tuple[object, int]:
    if lines[i][1].startswith("- "):
        items = []
        while i < len(lines) and lines[i][0] == indent and lines[i][1].startswith("- "):
            items.append(_scalar(lines[i][1][2:]))
            i += 1
        return items, i
    mapping: dict[str, object] = {}
    while i < len(lines) and lines[i][0] == indent:
        content = lines[i][1]
        key, sep, rest = content.partition(":")
        if not sep or (rest and not rest.startswith(" ")):
            raise ValueError(f"not a `key: value` line: {content!r}")
        key = str(_scalar(key))
        if key in mapping:
            raise ValueError(f"duplicate key {key!r}")
        i += 1
        if rest.strip():
            mapping[key] = _scalar(rest)
        elif i < len(lines) and lines[i][0] > indent:
            mapping[key], i = _block(lines, i, lines[i][0])
        else:
            mapping[key] = None
    return mapping, i


def test_the_subset_reader_reads_nested_maps_lists_and_quotes() -> None:
    text = 'a:\n  b: "x: y"  # note\n  c: ["p", "q"]\n  d:\n    - one\n    - \'two\'\ne:\n'
    assert parse_yaml_subset(text) == {
        "a": {"b": "x: y", "c": ["p", "q"], "d": ["one", "two"]},
        "e": None,
    }


def test_the_subset_reader_refuses_what_it_does_not_understand() -> None:
    with pytest.raises(ValueError):
        parse_yaml_subset("a: &anchor 1\n")
    with pytest.raises(ValueError):
        parse_yaml_subset("a: |\n  text\n")


# ---------------------------------------------------------------- what the code reads


def settings_names() -> set[str]:
    """Return the environment names that any Settings class in libs/ or services/ reads."""
    names = set(SHARED_SETTINGS)
    for path in [*ROOT.glob("libs/**/*.py"), *ROOT.glob("services/**/*.py")]:
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and _is_settings(node):
                names |= _fields(node)
    return names


def _is_settings(node: ast.ClassDef) -> bool:
    for base in node.bases:
        name = base.id if isinstance(base, ast.Name) else getattr(base, "attr", "")
        if name.endswith("Settings"):
            return True
    return False


def _fields(node: ast.ClassDef) -> set[str]:
    prefix = ""
    fields: set[str] = set()
    for stmt in node.body:
        if isinstance(stmt, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "model_config" for t in stmt.targets
        ):
            for call in ast.walk(stmt.value):
                for kw in getattr(call, "keywords", []):
                    if kw.arg == "env_prefix" and isinstance(kw.value, ast.Constant):
                        prefix = str(kw.value.value)
        if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
            if stmt.target.id == "model_config":
                continue
            fields.add(stmt.target.id)
            for call in ast.walk(stmt.value) if stmt.value else []:
                for kw in getattr(call, "keywords", []):
                    if kw.arg in {"alias", "validation_alias"} and isinstance(
                        kw.value, ast.Constant
                    ):
                        fields.add(str(kw.value.value))
    return {(prefix + name).upper() for name in fields}


def module_exists(module: str) -> bool:
    path = ROOT.joinpath(*module.split("."))
    return (path / "__main__.py").is_file() or path.with_suffix(".py").is_file()


# ---------------------------------------------------------------- the checks


@pytest.fixture(scope="module")
def services() -> dict[str, dict]:
    compose = parse_yaml_subset(COMPOSE.read_text())
    assert isinstance(compose, dict)
    return compose["services"]


def _python_module(command: object) -> str | None:
    argv = command if isinstance(command, list) else str(command).split()
    for i, arg in enumerate(argv[:-2]):
        if arg.split("/")[-1].startswith("python") and argv[i + 1] == "-m":
            return argv[i + 2]
    return None


def test_every_python_command_names_a_module_that_exists(services: dict[str, dict]) -> None:
    modules = {
        name: _python_module(spec["command"])
        for name, spec in services.items()
        if "command" in spec
    }
    assert modules.get("topics") == "libs.topics"
    missing = {name: m for name, m in modules.items() if m is not None and not module_exists(m)}
    assert missing == {}, f"compose runs modules that do not exist: {missing}"


def test_python_services_are_given_only_environment_the_settings_read(
    services: dict[str, dict],
) -> None:
    known = settings_names()
    unknown = {
        name: sorted(set(spec.get("environment") or {}) - known)
        for name, spec in services.items()
        if "build" in spec
    }
    assert {k: v for k, v in unknown.items() if v} == {}


def test_kafka_postgres_and_redis_have_healthchecks(services: dict[str, dict]) -> None:
    for name in ("kafka", "postgres", "redis"):
        check = services[name].get("healthcheck") or {}
        assert isinstance(check.get("test"), list) and check["test"], f"{name} has no healthcheck"


def test_every_dependency_waits_on_a_condition(services: dict[str, dict]) -> None:
    for name, spec in services.items():
        depends = spec.get("depends_on")
        if depends is None:
            continue
        assert isinstance(depends, dict), f"{name}: depends_on must map services to conditions"
        for target, rule in depends.items():
            assert target in services, f"{name} depends on unknown service {target}"
            condition = (rule or {}).get("condition")
            assert condition in CONDITIONS, f"{name} -> {target}: condition {condition!r}"
            if condition == "service_healthy":
                assert "healthcheck" in services[target], f"{target} has no healthcheck"


def test_topics_are_created_once_kafka_is_healthy(services: dict[str, dict]) -> None:
    topics = services["topics"]
    assert topics["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert topics.get("restart") == "no"
    assert topics["environment"]["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:19092"
