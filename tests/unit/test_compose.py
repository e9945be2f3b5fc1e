"""docker-compose.yml stays runnable: its modules exist, each service's environment is exactly
what its settings read (nothing unknown, every required value), every service of ours that
serves HTTP has a healthcheck on the /healthz of its port (and the infrastructure one of its
own), its start order waits on conditions (on a dependency's health wherever it has a
healthcheck), and Prometheus (infra/prometheus/prometheus.yml) scrapes every service that
serves /metrics at that port.

Read statically (no Docker) with a small reader for the YAML subset the file keeps to. The
services read their environment only through their settings (libs/settings.py), so no name is
exempt from the check.
"""

from __future__ import annotations

import ast
import importlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

from services.gateway.settings import parse_sources

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


MAPPING_ITEM = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*:( |$)")  # `- key: value` starts a mapping


def _block(lines: list[tuple[int, str]], i: int, indent: int) -> tuple[object, int]:
    if lines[i][1].startswith("- "):
        items = []
        while i < len(lines) and lines[i][0] == indent and lines[i][1].startswith("- "):
            item = lines[i][1][2:]
            if MAPPING_ITEM.match(item):  # its keys line up two columns in (Prometheus's configs)
                lines[i] = (indent + 2, item)
                value, i = _block(lines, i, indent + 2)
                items.append(value)
            else:
                items.append(_scalar(item))
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


def test_the_subset_reader_reads_lists_of_mappings() -> None:
    text = 'jobs:\n  - name: a\n    targets: ["a:1"]\n  - name: b\n    deep:\n      - x\n'
    assert parse_yaml_subset(text) == {
        "jobs": [{"name": "a", "targets": ["a:1"]}, {"name": "b", "deep": ["x"]}]
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
    "demo-market": {"services.demo_market.settings:DemoMarketSettings"},
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


# ---------------------------------------------------------------- health and scraping

PROMETHEUS = ROOT / "infra" / "prometheus" / "prometheus.yml"
INFRASTRUCTURE = {"kafka", "postgres", "redis", "prometheus", "grafana"}  # images, not ours
SERVES_NOTHING = {"topics", "index-feed"}  # a one-shot, and a producer with no HTTP endpoint
HEALTHZ = re.compile(r"http://127\.0\.0\.1:(\d+)/healthz\b")


def served_port(name: str, spec: dict) -> int | None:
    """Return the port a service of ours serves HTTP on (/healthz, /metrics): the API's for the
    gateway, METRICS_PORT for the others; from its environment, else its settings' default;
    None when its settings read neither."""
    environment = spec.get("environment") or {}
    for env in ("METRICS_PORT", "PORT"):
        if env in environment:
            return int(interpolate(environment[env]))
    fields = env_fields(SETTINGS_OF[name])
    for env in ("METRICS_PORT", "PORT"):
        if env in fields:
            return int(fields[env].default)
    return None


@pytest.fixture(scope="module")
def ports(services: dict[str, dict]) -> dict[str, int]:
    """Each service of ours that serves HTTP -> its port."""
    found = {
        name: served_port(name, spec)
        for name, spec in services.items()
        if name not in INFRASTRUCTURE
    }
    return {name: port for name, port in found.items() if port is not None}


def test_the_services_serving_nothing_are_the_known_ones(
    services: dict[str, dict], ports: dict[str, int]
) -> None:
    assert set(services) - INFRASTRUCTURE - set(ports) == SERVES_NOTHING
    assert ports["gateway"] == 8000 and ports["matcher"] == 9101


def test_every_service_of_ours_has_a_healthcheck_on_the_healthz_of_its_port(
    services: dict[str, dict], ports: dict[str, int]
) -> None:
    for name, port in ports.items():
        check = services[name].get("healthcheck") or {}
        test = check.get("test")
        assert isinstance(test, list) and test, f"{name} has no healthcheck"
        # the image is python:3.11-slim: python is there, curl and wget are not
        assert test[:3] == ["CMD", "python", "-c"], f"{name}: {test}"
        assert [int(p) for p in HEALTHZ.findall(test[3])] == [port], f"{name}: {test}"


def test_the_healthcheck_command_fails_when_nothing_answers() -> None:
    """The probe exits non-zero on a refused connection (urlopen raises)."""
    probe = "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9/healthz', timeout=2)"
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True).returncode != 0


def test_infrastructure_has_healthchecks(services: dict[str, dict]) -> None:
    for name in INFRASTRUCTURE - {"grafana"}:  # nothing waits for Grafana
        check = services[name].get("healthcheck") or {}
        assert isinstance(check.get("test"), list) and check["test"], f"{name} has no healthcheck"


def test_a_dependency_with_a_healthcheck_is_waited_for_healthy(services: dict[str, dict]) -> None:
    for name, spec in services.items():
        for target, rule in (spec.get("depends_on") or {}).items():
            if "healthcheck" in services[target]:
                assert rule["condition"] == "service_healthy", f"{name} -> {target}: {rule}"


def test_the_gateway_waits_for_the_engines_and_the_demo_market_for_the_gateway(
    services: dict[str, dict],
) -> None:
    engines = {"matcher", "wallet", "positions", "projector"}
    assert engines <= set(services["gateway"]["depends_on"])
    assert services["demo-market"]["depends_on"] == {"gateway": {"condition": "service_healthy"}}
    assert services["demo-market"]["environment"]["GATEWAY_URL"] == "http://gateway:8000"


def _host_port(target: str) -> tuple[str, int]:
    host, _, port = target.rpartition(":")
    return host, int(port)


def test_prometheus_scrapes_every_service_of_ours_at_the_port_it_serves(
    ports: dict[str, int],
) -> None:
    config = parse_yaml_subset(PROMETHEUS.read_text())
    assert isinstance(config, dict)
    scraped: dict[str, int] = {}
    for job in config["scrape_configs"]:
        targets = [t for static in job["static_configs"] for t in static["targets"]]
        assert job.get("metrics_path", "/metrics") == "/metrics", job["job_name"]
        for host, port in map(_host_port, targets):
            assert host in ports, f"job {job['job_name']}: {host} is no service serving HTTP"
            assert port == ports[host], f"{host} serves on {ports[host]}, scraped on {port}"
            # the dashboard sums by job: a job is one service, named as in compose
            assert job["job_name"] == host, f"job {job['job_name']} scrapes {host}"
            scraped[host] = port
    assert scraped == ports, "every service serving /metrics is scraped"


def test_prometheus_and_grafana_get_their_configuration_from_infra(
    services: dict[str, dict],
) -> None:
    mounts = {
        name: {v.split(":")[0]: v.split(":")[1] for v in services[name]["volumes"]}
        for name in ("prometheus", "grafana")
    }
    assert mounts["prometheus"] == {
        "./infra/prometheus/prometheus.yml": "/etc/prometheus/prometheus.yml"
    }
    for source in [*mounts["prometheus"], *mounts["grafana"]]:
        assert (ROOT / source).exists(), source
    grafana = services["grafana"]
    assert grafana["environment"]["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
    assert grafana["environment"]["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    assert grafana["ports"] == ["3000:3000"]


def test_the_gateways_status_sources_are_the_engines_pages(
    services: dict[str, dict], ports: dict[str, int]
) -> None:
    sources = parse_sources(services["gateway"]["environment"]["STATUS_SOURCES"])
    assert set(sources) == {"matcher", "wallet", "positions", "projector"}
    for name, url in sources.items():
        assert url == f"http://{name}:{ports[name]}/metrics", name


# ---------------------------------------------------------------- the three-broker override

CLUSTER = ROOT / "docker-compose.cluster.yml"
NODES = ("kafka", "kafka-2", "kafka-3")


@pytest.fixture(scope="module")
def cluster() -> dict[str, dict]:
    override = parse_yaml_subset(CLUSTER.read_text())
    assert isinstance(override, dict)
    return override["services"]


def _node_environment(services: dict, cluster: dict, node: str) -> dict[str, str]:
    """A broker's environment once the override is merged over the base file."""
    base = services.get(node, {}).get("environment", {})
    return {**base, **cluster[node].get("environment", {})}


def test_the_cluster_override_makes_three_nodes_of_one_quorum(
    services: dict[str, dict], cluster: dict[str, dict]
) -> None:
    environments = [_node_environment(services, cluster, node) for node in NODES]
    voters = {env["KAFKA_CONTROLLER_QUORUM_VOTERS"] for env in environments}
    assert voters == {"1@kafka:9093,2@kafka-2:9093,3@kafka-3:9093"}
    assert [env["KAFKA_NODE_ID"] for env in environments] == ["1", "2", "3"]
    assert len({env["CLUSTER_ID"] for env in environments}) == 1
    for node, env in zip(NODES, environments, strict=True):
        assert env["KAFKA_ADVERTISED_LISTENERS"].startswith(f"INTERNAL://{node}:19092"), node
        assert env["KAFKA_DEFAULT_REPLICATION_FACTOR"] == "3", node
        assert env["KAFKA_MIN_INSYNC_REPLICAS"] == "2", node
        assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "3", node
        assert env["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"] == "3", node
        assert env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] == "2", node
    for node in NODES[1:]:
        assert "healthcheck" in cluster[node], node
        assert cluster[node]["image"] == services["kafka"]["image"], node


def test_the_cluster_override_gives_every_client_all_three_brokers(
    services: dict[str, dict], cluster: dict[str, dict]
) -> None:
    clients = {
        n
        for n, spec in services.items()
        if "KAFKA_BOOTSTRAP_SERVERS" in spec.get("environment", {})
    }
    assert clients, "no Kafka client in docker-compose.yml"
    for name in clients:
        bootstrap = cluster.get(name, {}).get("environment", {}).get("KAFKA_BOOTSTRAP_SERVERS")
        assert bootstrap == "kafka:19092,kafka-2:19092,kafka-3:19092", name
    waits = cluster["topics"]["depends_on"]
    assert all(waits[n]["condition"] == "service_healthy" for n in NODES[1:])


SECOND = {"matcher-2": "matcher", "wallet-2": "wallet", "positions-2": "positions"}


def _merged(services: dict, cluster: dict, name: str) -> dict:
    """A service's definition once the override is merged over the base file (environment
    merged, the rest replaced)."""
    spec = {**services.get(name, {}), **cluster.get(name, {})}
    spec["environment"] = {
        **services.get(name, {}).get("environment", {}),
        **cluster.get(name, {}).get("environment", {}),
    }
    return spec


def test_the_cluster_override_runs_a_second_instance_of_each_engine_and_gateway(
    services: dict[str, dict], cluster: dict[str, dict]
) -> None:
    for second, first in [*SECOND.items(), ("gateway-2", "gateway")]:
        a, b = _merged(services, cluster, first), cluster[second]
        assert b["command"] == a["command"], second
        assert b["ports"] != a["ports"], second
        port = b["ports"][0].split(":")[0]
        assert f"127.0.0.1:{port}/healthz" in " ".join(b["healthcheck"]["test"]), second
        env = b["environment"]
        if first == "gateway":
            assert env["PORT"] == port and env["GATEWAY_INSTANCE"] != a["environment"].get(
                "GATEWAY_INSTANCE", "0"
            )
        else:
            assert env["METRICS_PORT"] == port, second
        # everything else the first is given, the second is too (its own port and name aside)
        mine = {"PORT", "METRICS_PORT", "GATEWAY_INSTANCE", "MATCHER_INSTANCE"}
        assert {k: v for k, v in a["environment"].items() if k not in mine} == {
            k: v for k, v in env.items() if k not in mine
        }, second
    assert cluster["matcher-2"]["environment"]["MATCHER_INSTANCE"] not in ("", "0")


def test_every_process_of_the_cluster_is_given_the_same_user_shards(
    services: dict[str, dict], cluster: dict[str, dict]
) -> None:
    clients = [
        n
        for n in {*services, *cluster}
        if "KAFKA_BOOTSTRAP_SERVERS" in _merged(services, cluster, n)["environment"]
    ]
    given = {
        n: _merged(services, cluster, n)["environment"].get("USER_PARTITIONS") for n in clients
    }
    assert set(given.values()) == {"2"}, given
