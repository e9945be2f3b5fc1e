"""The Grafana dashboard (infra/grafana/dashboards/exchange.json) is a valid dashboard on the
provisioned Prometheus datasource, and every metric its PromQL names is one a service exports.

The exported names come from the services' own metric definitions: importing their modules
registers them in prometheus_client's default registry (the matcher's take a registry of their
own, given here), and each family's type gives its sample names (``_total`` of a counter,
``_bucket``, ``_sum``, ``_count`` of a histogram).
"""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path

import pytest
from prometheus_client import REGISTRY, CollectorRegistry

from services.matcher.service import MatcherMetrics
from tests.unit.test_compose import parse_yaml_subset

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "infra" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "exchange.json"
DATASOURCES = GRAFANA / "provisioning" / "datasources" / "prometheus.yml"
PROVIDERS = GRAFANA / "provisioning" / "dashboards" / "exchange.yml"

# The modules that define the metrics the services serve on /metrics.
METRIC_MODULES = [
    "libs.bus.stats",
    "services.gateway.app",
    "services.gateway.kafka_io",
    "services.gateway.reads",
    "services.wallet.service",
    "services.positions.service",
    "services.projector.app",
]
SUFFIXES = {
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("", "_sum", "_count"),
    "info": ("_info",),
}


def exported_names() -> set[str]:
    """Every sample name the services can put on their /metrics pages."""
    for module in METRIC_MODULES:
        importlib.import_module(module)
    matcher = CollectorRegistry()
    MatcherMetrics(matcher)
    names = set()
    for registry in (REGISTRY, matcher):
        for family in registry.collect():
            names.update(family.name + s for s in SUFFIXES.get(family.type, ("",)))
    return names


# ---------------------------------------------------------------- PromQL's metric names

STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"' + r"|'(?:[^'\\]|\\.)*'")
GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
IDENTIFIER = re.compile(r"(?<![\w$.])([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?")
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset"}
KEYWORDS |= {"and", "or", "unless", "inf", "nan"}


def metric_names(expr: str) -> set[str]:
    """Return the metric names a PromQL expression selects (not its functions or labels)."""
    text = STRINGS.sub('""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges, $__rate_interval included
    text = GROUPING.sub(" ", text)
    return {
        name for name, call in IDENTIFIER.findall(text) if not call and name.lower() not in KEYWORDS
    }


def unknown_metrics(exprs: list[str], exported: set[str]) -> set[str]:
    return {name for expr in exprs for name in metric_names(expr)} - exported


def test_metric_names_are_read_out_of_promql() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (le, route) (rate(a_bucket{kind="place",x=~"1|2"}'
        "[$__rate_interval]))) / on (job) group_left sum without (x) (b_total offset 5m)"
        " + c or vector(0)"
    )
    assert metric_names(expr) == {"a_bucket", "b_total", "c"}
    assert metric_names('sum(rate(x_total{code="-2019"}[1m])) > bool 3') == {"x_total"}


def test_a_name_no_service_exports_is_caught() -> None:
    exported = exported_names()
    assert (
        unknown_metrics(['sum(rate(gateway_answers_total{kind="place"}[1m]))'], exported) == set()
    )
    assert unknown_metrics(["sum(rate(gateway_no_such_thing_total[1m]))"], exported) == {
        "gateway_no_such_thing_total"
    }
    # a counter is served with _total, a histogram with _bucket/_sum/_count, not bare
    assert unknown_metrics(["positions_liquidations", "matcher_batch_size"], exported) == {
        "positions_liquidations",
        "matcher_batch_size",
    }


# ---------------------------------------------------------------- the dashboard


@pytest.fixture(scope="module")
def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


@pytest.fixture(scope="module")
def datasource_uid() -> str:
    provisioned = parse_yaml_subset(DATASOURCES.read_text())
    assert isinstance(provisioned, dict)
    (prometheus,) = [d for d in provisioned["datasources"] if d["type"] == "prometheus"]
    assert prometheus["url"] == "http://prometheus:9090"  # the compose service
    return prometheus["uid"]


def panels(dashboard: dict) -> list[dict]:
    """Every panel that draws (rows hold no queries), rows' nested panels included."""
    found = []
    for panel in dashboard["panels"]:
        found += [panel] if panel["type"] != "row" else panel.get("panels", [])
    return found


def expressions(dashboard: dict) -> list[str]:
    return [target["expr"] for panel in panels(dashboard) for target in panel["targets"]]


def test_the_dashboard_is_a_dashboard_model(dashboard: dict) -> None:
    assert dashboard["uid"] and dashboard["title"]
    assert isinstance(dashboard["schemaVersion"], int)
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24 and grid["h"] > 0, panel["title"]
    for panel in panels(dashboard):
        assert panel["type"] in {"timeseries", "stat", "gauge", "bargauge", "table"}
        assert panel["title"] and panel["targets"], panel
        refs = [target["refId"] for target in panel["targets"]]
        assert len(refs) == len(set(refs)), f"{panel['title']}: refIds are unique"
        assert all(target["expr"].strip() for target in panel["targets"]), panel["title"]


def test_every_query_uses_the_provisioned_datasource(dashboard: dict, datasource_uid: str) -> None:
    for panel in panels(dashboard):
        assert panel["datasource"] == {"type": "prometheus", "uid": datasource_uid}, panel["title"]
        for target in panel["targets"]:
            assert target.get("datasource", panel["datasource"]) == panel["datasource"]


def test_every_metric_of_every_query_is_exported_by_a_service(dashboard: dict) -> None:
    assert unknown_metrics(expressions(dashboard), exported_names()) == set()


def test_the_dashboard_shows_each_figure(dashboard: dict) -> None:
    """Orders/s, reply latency percentiles, lag per service, matcher batches and rings, rejects
    by code, liquidations: each is in some query."""
    exprs = expressions(dashboard)
    text = "\n".join(exprs)
    assert 'rate(gateway_answers_total{kind="place"}' in text  # orders/s
    for q in ("0.5", "0.9", "0.99"):
        reply = 'sum by (le) (rate(gateway_reply_seconds_bucket{kind="place"}'
        assert f"histogram_quantile({q}, {reply}" in text
    assert "sum by (job) (kafka_consumer_lag)" in text
    assert "matcher_batch_size_bucket" in text and "matcher_batch_size_count" in text
    assert "matcher_ring_occupancy_bytes" in text
    assert 'sum by (code) (rate(gateway_answers_total{status="Rejected"}' in text
    assert "positions_liquidations_total" in text


def test_grafana_provisions_the_dashboards_folder_compose_mounts() -> None:
    providers = parse_yaml_subset(PROVIDERS.read_text())
    assert isinstance(providers, dict)
    (provider,) = providers["providers"]
    assert provider["type"] == "file"
    compose = parse_yaml_subset((ROOT / "docker-compose.yml").read_text())
    assert isinstance(compose, dict)
    grafana = compose["services"]["grafana"]
    mounts = dict(v.split(":")[:2] for v in grafana["volumes"])
    assert mounts["./infra/grafana/dashboards"] == provider["options"]["path"]
    assert mounts["./infra/grafana/provisioning"] == "/etc/grafana/provisioning"
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{provider['options']['path']}/{DASHBOARD.name}"
