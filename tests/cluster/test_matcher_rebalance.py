"""Matchers on the three-broker cluster: eight symbols split between two instances; one instance
and the broker leading a partition it writes are killed -9 together, and the survivor takes
every book over, with every event what the books' inputs decide (issue 16)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from confluent_kafka.admin import AdminClient

from bench.matcher_rebalance import eight_symbols, takeover
from libs.symbols import default_symbols
from tests.cluster.conftest import kill_node
from tests.integration.matcher.harness import reference_events


@pytest.fixture
def symbols_8(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("SYMBOLS_FILE", "")  # restored, with the cache, after the test
    eight_symbols()
    yield
    monkeypatch.undo()
    default_symbols.cache_clear()


def test_the_survivor_takes_every_book_over_while_a_broker_is_lost(
    cluster_bootstrap: str, symbols_8: None
) -> None:
    killed: list[int] = []

    def kill_a_leader(survivor) -> None:  # the leader of a partition it writes
        topic = AdminClient({"bootstrap.servers": cluster_bootstrap}).list_topics(
            survivor.events, timeout=10
        )
        node = topic.topics[survivor.events].partitions[0].leader
        kill_node(node)
        killed.append(node)

    result = takeover(cluster_bootstrap, on_kill=kill_a_leader)

    assert killed, "no broker was killed"
    assert result.symbols == 8 and len(result.moved) >= 2, result.moved
    survivor = result.runs[0]
    for name, spec in default_symbols().items():
        events = survivor.read_events(spec.index)
        assert [e.seq for e in events] == list(range(1, len(events) + 1)), name
        assert events == reference_events(result.flows[name], events, spec), name
    print(f"books moved in {max(result.moved.values()):.1f} s: {result.moved}")
