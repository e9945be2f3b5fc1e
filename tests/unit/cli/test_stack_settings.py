"""Where the command line finds the exchange: flags, then the environment, then the table."""

from __future__ import annotations

from pathlib import Path

import pytest

from exchange.stack import (
    DEFAULT_STACK,
    StackNotFound,
    StackTable,
    parse_digest_urls,
    read_table,
    resolve,
)

ROOT = Path(__file__).resolve().parents[3]


def test_the_local_stack_table_gives_the_broker_redis_and_every_engines_port() -> None:
    table = read_table(DEFAULT_STACK)
    target = resolve(environ={}, table=table)
    assert target.bootstrap == "127.0.0.1:9092"
    assert target.redis_url == "redis://127.0.0.1:6379/0"
    assert target.prefix == ""
    assert target.digest_urls == {
        "matcher": "http://127.0.0.1:9101",
        "wallet": "http://127.0.0.1:9102",
        "positions": "http://127.0.0.1:9103",
        "projector": "http://127.0.0.1:9104",
    }
    assert target.stack_file == DEFAULT_STACK


def test_the_test_stack_table_extends_the_local_one_with_its_own_ports() -> None:
    target = resolve(environ={}, table=read_table(ROOT / "infra" / "stack-test.toml"))
    assert target.bootstrap == "127.0.0.1:19092"
    assert target.digest_urls["wallet"] == "http://127.0.0.1:19102"


def test_the_table_is_read_by_the_supervisors_loader(tmp_path: Path) -> None:
    (tmp_path / "base.toml").write_text(
        '[vars]\nkafka_port = "1"\nwallet_metrics_port = "7"\n'
        '[env]\nKAFKA_BOOTSTRAP_SERVERS = "h:${kafka_port}"\n'
    )
    (tmp_path / "mine.toml").write_text('extends = "base.toml"\n[vars]\nkafka_port = "2"\n')
    table = read_table(tmp_path / "mine.toml")
    assert table.env == {"KAFKA_BOOTSTRAP_SERVERS": "h:2"}
    assert table.variables["wallet_metrics_port"] == "7"


def test_the_environment_overrides_the_table_and_flags_override_both() -> None:
    table = StackTable(
        Path("t.toml"),
        {"wallet_metrics_port": "1"},
        {"KAFKA_BOOTSTRAP_SERVERS": "table:1", "REDIS_URL": "redis://table"},
    )
    environ = {"KAFKA_BOOTSTRAP_SERVERS": "env:1", "TOPIC_PREFIX": "env."}
    target = resolve(environ=environ, table=table)
    assert (target.bootstrap, target.redis_url, target.prefix) == ("env:1", "redis://table", "env.")
    target = resolve(
        environ=environ,
        table=table,
        bootstrap="flag:1",
        redis_url="redis://flag",
        prefix="",
        digest_urls={"wallet": "http://w"},
    )
    assert (target.bootstrap, target.redis_url, target.prefix) == ("flag:1", "redis://flag", "")
    assert target.digest_urls == {"wallet": "http://w"}
    assert target.topic("orders.commands") == "orders.commands"


def test_without_a_table_or_a_broker_it_says_how_to_name_one() -> None:
    with pytest.raises(StackNotFound, match="--bootstrap"):
        resolve(environ={}, table=None)


def test_a_missing_table_is_reported() -> None:
    with pytest.raises(StackNotFound):
        read_table(Path("/nonexistent/stack.toml"))


def test_digest_urls_are_engine_equals_url() -> None:
    assert parse_digest_urls(["wallet=http://h:1/", "matcher=http://h:2"]) == {
        "wallet": "http://h:1",
        "matcher": "http://h:2",
    }
    with pytest.raises(ValueError, match="ENGINE=URL"):
        parse_digest_urls(["gateway=http://h"])
    with pytest.raises(ValueError):
        parse_digest_urls(["wallet"])


def test_the_cluster_table_names_both_instances_of_each_engine_and_its_user_shards() -> None:
    target = resolve(environ={}, table=read_table(ROOT / "infra" / "stack-cluster.toml"))
    assert len(target.bootstrap.split(",")) == 3
    assert target.user_partitions == 2
    assert target.digest_urls["wallet"] == "http://127.0.0.1:9102,http://127.0.0.1:9112"
    assert target.digest_urls["matcher"] == "http://127.0.0.1:9101,http://127.0.0.1:9111"
    assert target.digest_urls["projector"] == "http://127.0.0.1:9104"


def test_a_digest_url_flag_may_name_several_instances() -> None:
    assert parse_digest_urls(["wallet=http://a:1/, http://b:2"]) == {
        "wallet": "http://a:1,http://b:2"
    }
