"""The wallet's Kafka handler: decode, apply to the core, produce, snapshot, rewind.

Inputs from three topics interleave differently from run to run, and the pre-trade check
depends on that interleaving. So the wallet is a ``libs.bus.JournaledHandler``: every turn
appends its record to ``wallet.journal`` before its outputs go out, and a recovery re-applies
exactly those turns in their canonical order (``wallet_inputs`` order, then offset).
"""

from __future__ import annotations

import logging

from prometheus_client import Counter

from libs.bus import Bus, JournaledHandler, Outgoing, Record, TopicPartition
from libs.bus.snapshots import offsets_key
from libs.messages import (
    Codec,
    LedgerAccountKind,
    Message,
    WalletEvent,
    encode,
)
from libs.symbols import default_symbols
from libs.topics import ALL_USERS, Shard, Topics, cause_of, symbol_partition, user_partition
from services.wallet.core import WalletCore
from services.wallet.core.engine import _user_of

log = logging.getLogger(__name__)

SNAPSHOT_KEY = "wallet"

MALFORMED = Counter(
    "wallet_malformed_total", "Input records skipped as malformed or unknown", ["topic"]
)
FAILED = Counter("wallet_failed_total", "Inputs the core could not apply (skipped)", ["topic"])
INPUTS = Counter("wallet_inputs_total", "Input records applied", ["topic"])
OUTPUTS = Counter("wallet_outputs_total", "Messages produced", ["topic"])
SNAPSHOTS = Counter("wallet_snapshots_total", "Snapshots produced")
REWINDS = Counter("wallet_rewinds_total", "State recoveries from snapshot and journal")


def wallet_inputs(topics: Topics, shard: Shard = ALL_USERS) -> list[TopicPartition]:
    """A shard's input partitions, in the order a turn applies them: the matcher's facts
    first (every book's: fills name users of any shard), then the position engine's, then
    the requests (which then see the freshest state); of these two, its users' partition."""
    symbols = len(default_symbols())
    return [
        *[(topics.matcher_events, p) for p in range(symbols)],
        (topics.positions_events, shard.partition),
        (topics.requests, shard.partition),
    ]


class WalletService(JournaledHandler[WalletCore, Message]):
    """The handler ``libs.bus.JournalLoop`` runs: the wallet of one user shard (by default
    the only one, of every user)."""

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
        shard: Shard = ALL_USERS,
    ) -> None:
        self.topics = topics
        self.shard = shard
        self._codecs: dict[str, Codec[Message]] = {
            t: topics.codec(t)
            for t in (topics.requests, topics.matcher_events, topics.positions_events)
        }
        # each topic's counters, labelled once: labels() per record cost 7% of the wallet
        self._inputs = {t: INPUTS.labels(topics.logical(t)) for t in self._codecs}
        outputs = (topics.commands, topics.wallet_events)
        self._outputs = {t: OUTPUTS.labels(topics.logical(t)) for t in outputs}
        super().__init__(
            bus,
            wallet_inputs(topics, shard),
            topics.wallet_snapshots,
            journal_topic=topics.wallet_journal,
            outputs=[topics.commands, topics.wallet_events],
            snapshot_every=snapshot_every,
            snapshot_seconds=snapshot_seconds,
            shard=shard.partition,
        )

    # --- the journal's hooks -----------------------------------------------------------------

    def new_core(self) -> WalletCore:
        return WalletCore(shard=self.shard)

    def dump_core(self, core: WalletCore) -> bytes:
        return core.snapshot()

    def load_core(self, state: bytes) -> WalletCore:
        return WalletCore.restore(state, shard=self.shard)

    def apply_record(self, record: Record) -> list[Message]:
        message = self._codecs[record.topic].decode_input(record)
        if message is None:
            MALFORMED.labels(self.topics.logical(record.topic)).inc()
            return []
        self._inputs[record.topic].inc()
        cause = cause_of(record.topic, record.partition, record.offset, self.topics.prefix)
        return self.core.apply(cause, message)

    def outgoing(self, produced: list[Message]) -> list[Outgoing]:
        out = []
        for m in produced:
            if isinstance(m, WalletEvent):
                user = _user_of(m)
                topic = self.topics.wallet_events
                partition = user_partition(user, self.shard.partitions)
                out.append(Outgoing(topic, encode(m), str(user).encode(), partition))
            else:  # a command for the symbol's book
                # the core's other outputs are all book commands, each with a symbol
                symbol = m.symbol  # type: ignore[attr-defined]
                topic = self.topics.commands
                out.append(Outgoing(topic, encode(m), symbol.encode(), symbol_partition(symbol)))
            self._outputs[topic].inc()
        return out

    def count_failure(self, record: Record) -> None:
        FAILED.labels(self.topics.logical(record.topic)).inc()

    # --- views -------------------------------------------------------------------------------

    def digest_json(self, query: dict[str, str] | None = None) -> dict:
        """The state's digest and what it covers (``/digest`` and ``rebuild`` print this)."""
        with self.lock:
            return {
                "digest": self.core.digest(),
                "entries": self.core.ledger.entry_id,
                "users": len(self.core.users()),
                "open_holds": len(self.core.holds.by_order),
                "accounts": self._account_totals(),
                "offsets": {offsets_key(t, p): o for (t, p), o in self.applied.items() if o},
            }

    def _account_totals(self) -> dict[str, int]:
        """The ledger's balance per account kind, summed over owners (cash units): they sum to
        zero, and minus ``outside`` is what was deposited and not withdrawn."""
        totals = {kind.value: 0 for kind in LedgerAccountKind}
        for (kind, _owner), value in self.core.ledger.balances.items():
            totals[kind.value] += value
        return totals
