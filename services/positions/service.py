"""The position engine's Kafka handler: decode, apply to the core, produce, snapshot, rewind.

Inputs from three topics interleave differently from run to run, and margin checks depend on
that interleaving (a balance against a mark). So, like the wallet, the engine is a
``libs.bus.JournaledHandler``: every turn appends its record to ``positions.journal`` before its
outputs go out, and a recovery re-applies exactly those turns in their canonical order
(``positions_inputs`` order, then offset).
"""

from __future__ import annotations

import logging
from typing import cast

from prometheus_client import Counter, Gauge

from libs.bus import Bus, JournaledHandler, Outgoing, Record, TopicPartition
from libs.bus.snapshots import offsets_key
from libs.messages import (
    Codec,
    IndexPriceTick,
    LiquidationTriggered,
    MatcherEvent,
    Message,
    WalletEvent,
    encode,
)
from libs.symbols import SymbolSpec, default_symbols
from libs.topics import ALL_USERS, Shard, Topics, cause_of
from services.positions.core import Out, PositionsCore
from services.positions.core.engine import COMMANDS, EVENTS, CoreOptions

log = logging.getLogger(__name__)

SNAPSHOT_KEY = "positions"

MALFORMED = Counter(
    "positions_malformed_total", "Input records skipped as malformed or unknown", ["topic"]
)
FAILED = Counter("positions_failed_total", "Inputs the core could not apply (skipped)", ["topic"])
INPUTS = Counter("positions_inputs_total", "Input records applied", ["topic"])
OUTPUTS = Counter("positions_outputs_total", "Messages produced", ["topic"])
SNAPSHOTS = Counter("positions_snapshots_total", "Snapshots produced")
REWINDS = Counter("positions_rewinds_total", "State recoveries from snapshot and journal")
LIQUIDATIONS = Counter("positions_liquidations_total", "Positions sent to liquidation")
OPEN_POSITIONS = Gauge("positions_open", "Open positions", ["symbol"])


def positions_inputs(topics: Topics, shard: Shard = ALL_USERS) -> list[TopicPartition]:
    """A shard's input partitions, in the order a turn applies them: its users' balances
    first (so margin checks see the freshest), then every book's facts, then the index
    prices of the symbols whose marks it computes (so marks use the latest trade)."""
    symbols = len(default_symbols())
    return [
        (topics.wallet_events, shard.partition),
        *[(topics.matcher_events, p) for p in range(symbols)],
        *[(topics.index_prices, p) for p in range(symbols) if shard.owns_market(p)],
    ]


class PositionsService(JournaledHandler[PositionsCore, Out]):
    """The handler ``libs.bus.JournalLoop`` runs: the position engine of one user shard (by
    default the only one, of every user)."""

    snapshot_key = SNAPSHOT_KEY
    snapshots_made = SNAPSHOTS
    rewinds = REWINDS

    def __init__(
        self,
        bus: Bus,
        topics: Topics,
        *,
        snapshot_every: int = 1000,
        snapshot_seconds: float = 0.0,
        specs: dict[str, SymbolSpec] | None = None,
        funding_interval_seconds: int | None = None,
        basis_window: int = 60,
        shard: Shard = ALL_USERS,
    ) -> None:
        self.topics = topics
        self.shard = shard
        self._codecs: dict[str, Codec[Message]] = {
            t: topics.codec(t)
            for t in (topics.matcher_events, topics.wallet_events, topics.index_prices)
        }
        # each topic's counters, labelled once (labels() per record: a few % of the engine)
        self._inputs = {t: INPUTS.labels(topics.logical(t)) for t in self._codecs}
        self._outputs = {t: OUTPUTS.labels(t) for t in (EVENTS, COMMANDS)}
        self.specs = specs or default_symbols()
        self.options: CoreOptions = {
            "funding_interval_seconds": funding_interval_seconds,
            "basis_window": basis_window,
            "shard": shard,
        }
        super().__init__(
            bus,
            positions_inputs(topics, shard),
            topics.positions_snapshots,
            journal_topic=topics.positions_journal,
            outputs=[topics.positions_events, topics.commands],
            snapshot_every=snapshot_every,
            snapshot_seconds=snapshot_seconds,
            shard=shard.partition,
        )

    # --- the journal's hooks -----------------------------------------------------------------

    def new_core(self) -> PositionsCore:
        return PositionsCore(self.specs, **self.options)

    def dump_core(self, core: PositionsCore) -> bytes:
        return core.snapshot()

    def load_core(self, state: bytes) -> PositionsCore:
        return PositionsCore.restore(self.specs, state, **self.options)

    def apply_record(self, record: Record) -> list[Out]:
        topics = self.topics
        message = self._codecs[record.topic].decode_input(record)
        if message is None:
            MALFORMED.labels(topics.logical(record.topic)).inc()
            return []
        self._inputs[record.topic].inc()
        cause = cause_of(record.topic, record.partition, record.offset, topics.prefix)
        # each topic's codec decodes only its own family
        if record.topic == topics.matcher_events:
            return self.core.apply_matcher(cast(MatcherEvent, message), cause)
        if record.topic == topics.wallet_events:
            return self.core.apply_wallet(cast(WalletEvent, message), cause)
        return self.core.apply_index(cast(IndexPriceTick, message), cause)

    def outgoing(self, produced: list[Out]) -> list[Outgoing]:
        out = []
        for item in produced:
            topic = self.topics.physical(item.topic)
            out.append(Outgoing(topic, encode(item.message), item.key, item.partition))
            self._outputs[item.topic].inc()
            if type(item.message) is LiquidationTriggered:
                LIQUIDATIONS.inc()
        return out

    def count_failure(self, record: Record) -> None:
        FAILED.labels(self.topics.logical(record.topic)).inc()

    # --- views -------------------------------------------------------------------------------

    def digest_json(self, query: dict[str, str] | None = None) -> dict:
        """The state's digest and what it covers (``/digest`` and ``rebuild`` print this)."""
        with self.lock:
            core = self.core
            for name, market in core.markets.items():
                OPEN_POSITIONS.labels(name).set(len(market.holders))
            return {
                "digest": core.digest(),
                "accounts": len(core.accounts),
                "positions": sum(len(m.holders) for m in core.markets.values()),
                "insurance": core.insurance,
                "offsets": {offsets_key(t, p): o for (t, p), o in self.applied.items() if o},
            }
