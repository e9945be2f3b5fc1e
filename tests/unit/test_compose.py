"""docker-compose.yml stays runnable: its modules exist, each service's environment is exactly
what its settings read (nothing unknown, every required value), its infrastructure has
healthchecks and its start order waits on conditions.

Read statically (no Docker) with a small reader for the YAML subset the file keeps to. The
services read their environment only through their settings (libs/settings.py), so no name is
exempt from the check.
"""

from __future__ import annotations

import ast
import importlib
import json
import re
from pathlib import Path

import pytest
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
INTERPOLATION = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*(:?[-?])?([^}]*)\}")
OURS = {"libs", "services"}  # the top-level packages of this repository
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

# Each compose service that runs our code -> the settings its entry point loads. A test below
# derives the same from the code (the load_settings(...) calls of the entry module and of the
# modules it imports), so a new service or a changed entry point shows up here.
SETTINGS_OF = {
    "topics": {"libs.settings:KafkaSettings"},
    "matcher": {"services.matcher.settings:MatcherSettings"},
    "wallet": {"services.wallet.settings:WalletSettings"},
    "positions": {"services.positions.settings:PositionsSettings"},
    "index-feed": {"services.index_feed.settings:IndexFeedSettings"},
    "projector": {"services.projector.app:ProjectorSettings"},
    "gateway": {"services.gateway.settings:GatewaySettings"},
}


def entry_file(module: str) -> Path:
    """Return the file that `python -m module` runs."""
    path = ROOT.joinpath(*module.split("."))
    return path / "__main__.py" if path.is_dir() else path.with_suffix(".py")


def module_file(module: str) -> Path:
    """Return the file that `import module` runs (missing when `module` names no module)."""
    path = ROOT.joinpath(*module.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def loaded_settings(module: str) -> set[str]:
    """Return `module:Class` of each settings class that `python -m module` loads: the
    load_settings(X) calls in its entry file and in the repository modules that file imports."""
    entry = entry_file(module)
    files = {entry: module}
    for node in ast.walk(ast.parse(entry.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in OURS:
            for imported in [node.module, *(f"{node.module}.{a.name}" for a in node.names)]:
                files.setdefault(module_file(imported), imported)
    found: set[str] = set()
    for path, name in files.items():
        if path.is_file():
            found |= _load_settings_calls(path, name)
    return found


def _load_settings_calls(path: Path, module: str) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    where: dict[str, str] = {}  # a name in this file -> `module:name` of its definition
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                where[alias.asname or alias.name] = f"{node.module}:{alias.name}"
        elif isinstance(node, ast.ClassDef):
            where[node.name] = f"{module}:{node.name}"
    calls = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "load_settings"
        ):
            arg = node.args[0]
            assert isinstance(arg, ast.Name), f"{path}: load_settings of a non-name"
            calls.add(where[arg.id])
    return calls


def settings_class(qualified: str) -> type[BaseSettings]:
    module, _, name = qualified.partition(":")
    cls = getattr(importlib.import_module(module), name)
    assert issubclass(cls, BaseSettings), qualified
    return cls


def env_fields(classes: set[str]) -> dict[str, FieldInfo]:
    """Return the environment names the settings read, upper case, with their fields."""
    fields: dict[str, FieldInfo] = {}
    for qualified in classes:
        cls = settings_class(qualified)
        assert not cls.model_config.get("case_sensitive"), f"{qualified} is case-sensitive"
        prefix = cls.model_config.get("env_prefix", "")
        for name, info in cls.model_fields.items():
            alias = info.validation_alias or info.alias
            assert alias is None or isinstance(alias, str), f"{qualified}.{name}: {alias!r}"
            fields[(alias or prefix + name).upper()] = info
    return fields


def interpolate(value: object) -> str:
    """Resolve compose's `${VAR}`, `${VAR:?message}` and `${VAR:-default}` as a user would."""

    def resolve(match: re.Match[str]) -> str:
        operator, rest = match.groups()
        return rest if operator in {":-", "-"} else "s" * 32  # the value the user must supply

    return INTERPOLATION.sub(resolve, str(value))


def module_exists(module: str) -> bool:
    return entry_file(module).is_file()


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


@pytest.fixture(scope="module")
def python_services(services: dict[str, dict]) -> dict[str, str]:
    """Return each service built from this repository -> the module its command runs."""
    modules = {name: _python_module(spec.get("command")) for name, spec in services.items()}
    built = {name for name, spec in services.items() if "build" in spec}
    assert {name for name in built if modules[name] is None} == set(), "not `python -m`"
    return {name: modules[name] for name in sorted(built)}


def test_each_python_service_loads_the_settings_this_test_checks_it_against(
    python_services: dict[str, str],
) -> None:
    found = {name: loaded_settings(module) for name, module in python_services.items()}
    assert found == SETTINGS_OF


@pytest.mark.parametrize("name", sorted(SETTINGS_OF))
def test_a_service_is_given_only_environment_its_settings_read(
    services: dict[str, dict], name: str
) -> None:
    given = set(services[name].get("environment") or {})
    unknown = given - set(env_fields(SETTINGS_OF[name]))
    assert unknown == set(), f"{name} sets names its settings do not read: {sorted(unknown)}"


@pytest.mark.parametrize("name", sorted(SETTINGS_OF))
def test_a_service_is_given_every_value_its_settings_require(
    services: dict[str, dict], name: str
) -> None:
    given = set(services[name].get("environment") or {})
    required = {env for env, info in env_fields(SETTINGS_OF[name]).items() if info.is_required()}
    missing = required - given
    assert missing == set(), f"{name} lacks required settings: {sorted(missing)}"


@pytest.mark.parametrize("name", sorted(SETTINGS_OF))
def test_a_services_environment_makes_valid_settings(
    services: dict[str, dict], name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    environment = services[name].get("environment") or {}
    for qualified in SETTINGS_OF[name]:
        cls = settings_class(qualified)
        for env in env_fields({qualified}):
            monkeypatch.delenv(env, raising=False)
            monkeypatch.delenv(env.lower(), raising=False)
        for env, value in environment.items():
            monkeypatch.setenv(env, interpolate(value))
        cls()  # raises ValidationError naming what is wrong


def test_interpolation_resolves_defaults_and_required_variables() -> None:
    assert interpolate("${A:-x}/${B-y}") == "x/y"
    assert interpolate("${SECRET:?set it}") == "s" * 32
    assert interpolate("plain") == "plain"


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
