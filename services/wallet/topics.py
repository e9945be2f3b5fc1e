"""The topics the wallet reads and writes, optionally under a prefix (tests use random ones)."""

from __future__ import annotations

from dataclasses import dataclass

from libs.bus import TopicPartition
from libs.symbols import default_symbols
from libs.topics import USER_PARTITIONS, logical_topic


@dataclass(frozen=True)
class WalletTopics:
    prefix: str = ""

    @property
    def requests(self) -> str:
        return f"{self.prefix}orders.requests"

    @property
    def matcher_events(self) -> str:
        return f"{self.prefix}matcher.events"

    @property
    def position_events(self) -> str:
        return f"{self.prefix}positions.events"

    @property
    def commands(self) -> str:
        return f"{self.prefix}orders.commands"

    @property
    def events(self) -> str:
        return f"{self.prefix}wallet.events"

    @property
    def snapshots(self) -> str:
        return f"{self.prefix}wallet.snapshots"

    @property
    def journal(self) -> str:
        return f"{self.prefix}wallet.journal"

    def inputs(self) -> list[TopicPartition]:
        """Every input partition, in the order a turn applies them: the matcher's facts first,
        then the position engine's, then the requests (which then see the freshest state)."""
        symbols = len(default_symbols())
        return (
            [(self.matcher_events, p) for p in range(symbols)]
            + [(self.position_events, p) for p in range(USER_PARTITIONS)]
            + [(self.requests, p) for p in range(USER_PARTITIONS)]
        )

    def logical(self, topic: str) -> str:
        """Return the topic's name without the prefix (for metric labels)."""
        return logical_topic(topic, self.prefix)
