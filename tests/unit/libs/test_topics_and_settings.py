import pytest

from libs.settings import KafkaSettings, SettingsError, load_settings
from libs.symbols import default_symbols
from libs.topics import exchange_topics, symbol_partition


def test_orders_commands_has_one_partition_per_symbol():
    topics = {t.name: t for t in exchange_topics()}
    assert topics["orders.commands"].partitions == len(default_symbols())
    assert topics["matcher.events"].partitions == len(default_symbols())


def test_log_topics_keep_everything_and_snapshot_topics_are_compacted():
    for topic in exchange_topics():
        if topic.name.endswith(".snapshots"):
            assert topic.config["cleanup.policy"] == "compact"
        else:
            assert topic.config["retention.ms"] == "-1"


def test_a_symbol_partition_is_its_place_in_the_symbol_file():
    assert [symbol_partition(s) for s in default_symbols()] == list(range(len(default_symbols())))


def test_settings_fail_fast_naming_the_missing_variable(monkeypatch, capsys):
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    with pytest.raises(SettingsError):
        load_settings(KafkaSettings)
    assert "KAFKA_BOOTSTRAP_SERVERS" in capsys.readouterr().err


def test_settings_read_the_environment(monkeypatch):
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    assert load_settings(KafkaSettings).kafka_bootstrap_servers == "127.0.0.1:1"
