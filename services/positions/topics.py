"""The topics the position engine reads and writes, optionally under a prefix (tests)."""

from __future__ import annotations

from dataclasses import dataclass

from libs.bus import TopicPartition
from libs.symbols import default_symbols
from libs.topics import USER_PARTITIONS, logical_topic, physical_topic


@dataclass(frozen=True)
class PositionsTopics:
    prefix: str = ""

    @property
    def matcher_events(self) -> str:
        return f"{self.prefix}matcher.events"

    @property
    def wallet_events(self) -> str:
        return f"{self.prefix}wallet.events"

    @property
    def index_prices(self) -> str:
        return f"{self.prefix}index.prices"

    @property
    def events(self) -> str:
        return f"{self.prefix}positions.events"

    @property
    def commands(self) -> str:
        return f"{self.prefix}orders.commands"

    @property
    def snapshots(self) -> str:
        return f"{self.prefix}positions.snapshots"

    @property
    def journal(self) -> str:
        return f"{self.prefix}positions.journal"

    def inputs(self) -> list[TopicPartition]:
        """Every input partition, in the order a turn applies them: balances first (so margin
        checks see the freshest), then the matcher's facts, then index prices (so marks use
        the latest trade)."""
        symbols = len(default_symbols())
        return (
            [(self.wallet_events, p) for p in range(USER_PARTITIONS)]
            + [(self.matcher_events, p) for p in range(symbols)]
            + [(self.index_prices, p) for p in range(symbols)]
        )

    def physical(self, logical: str) -> str:
        return physical_topic(logical, self.prefix)

    def logical(self, topic: str) -> str:
        """Return the topic's name without the prefix (for metric labels)."""
        return logical_topic(topic, self.prefix)
