"""scripts/supervise.py's `extends`: a table over another one can replace an entry by several
(`replaces`), add entries right after one (`after`), or at the end; and the cluster's `make up`
table (infra/stack-cluster.toml) is the single broker's with three nodes and two of each
service, in an order that starts each after what it needs."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.test_supervise_switch import supervise

ROOT = Path(__file__).resolve().parents[2]


def names(processes: list[dict]) -> list[str]:
    return [p["name"] for p in processes]


BASE = [{"name": n} for n in ("kafka", "postgres", "wallet", "gateway")]


def test_replacing_one_entry_by_several_keeps_its_place_and_their_order() -> None:
    added = [{"name": f"kafka-{i}", "replaces": "kafka"} for i in (1, 2, 3)]
    placed = supervise._placed(BASE, added)
    assert names(placed) == ["kafka-1", "kafka-2", "kafka-3", "postgres", "wallet", "gateway"]
    assert all("replaces" not in p for p in placed)


def test_entries_after_one_follow_it_in_their_order_and_others_go_last() -> None:
    added = [
        {"name": "wallet-2", "after": "wallet"},
        {"name": "tail"},
        {"name": "wallet-3", "after": "wallet"},
    ]
    placed = supervise._placed(BASE, added)
    assert names(placed) == [
        "kafka",
        "postgres",
        "wallet",
        "wallet-2",
        "wallet-3",
        "gateway",
        "tail",
    ]


def test_an_anchor_that_does_not_exist_is_an_error() -> None:
    with pytest.raises(supervise.StackError, match="no process 'nope'"):
        supervise._placed(BASE, [{"name": "x", "after": "nope"}])


def test_the_cluster_stack_runs_three_brokers_and_two_of_each_service() -> None:
    stack = supervise.load_stack(ROOT / "infra" / "stack-cluster.toml")
    order = [e.name for e in stack.entries]
    assert order[:3] == ["kafka-1", "kafka-2", "kafka-3"] and "kafka" not in order
    for service in ("matcher", "wallet", "positions", "gateway"):
        assert f"{service}-2" in order, service
        assert order.index(f"{service}-2") == order.index(service) + 1, service
    assert order.index("topics") < order.index("matcher")
    assert len(stack.env["KAFKA_BOOTSTRAP_SERVERS"].split(",")) == 3
    assert stack.env["USER_PARTITIONS"] == "2"
    ports = [e.env.get("METRICS_PORT") or e.env.get("PORT") for e in stack.entries]
    taken = [p for p in ports if p]
    assert len(taken) == len(set(taken)), "two processes on one port"
