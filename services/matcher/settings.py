"""The matcher's settings, from the environment (see libs.settings)."""

from __future__ import annotations

from pydantic import Field

from libs.settings import KafkaSettings


class MatcherSettings(KafkaSettings):
    matcher_instance: str = Field("0", description="this instance's name: its group member id")
    matcher_group_id: str = Field("matcher", description="consumer group of the matcher instances")
    matcher_symbols: str = Field(
        "", description="comma-separated symbols to own; empty = as the consumer group assigns"
    )
    metrics_port: int = Field(9101, description="port of /metrics and /digest")
    metrics_host: str = Field("127.0.0.1", description="address the ops endpoint binds")
    matcher_core_cpu: int | None = Field(None, description="CPU to pin the core to; None = last")
    matcher_sched_fifo: bool = Field(False, description="ask for SCHED_FIFO (needs privileges)")
    matcher_max_batch: int = Field(256, ge=1, le=256, description="commands per core step")
    matcher_max_poll: int = Field(2048, ge=1, description="commands polled per turn")
    # A commit stalls its symbol's turns for its flush and its round trips: at 5,000
    # commands/s on two cores 30-50 ms every 5 s was over 1% of the commands, the p99; the
    # service serves delivery reports every turn, so the flush no longer grows with the
    # interval (docs/MATCHER.md). It also costs the broker about nine requests per symbol.
    # Recovery never reads what it commits; at most 30 s keeps it far inside the 60 s
    # transaction timeout.
    matcher_commit_seconds: float = Field(
        20.0, gt=0, le=30, description="seconds between a symbol's transaction commits (offsets)"
    )
    matcher_linger_ms: float = Field(1.0, ge=0, description="producer linger.ms")
    # by time first: a snapshot waits for a commit, a stall of its symbol's turns (50,000
    # commands was one every 10 s at 5,000/s); a recovery replays at most this many, ~2 s
    matcher_snapshot_every: int = Field(250_000, ge=1, description="commands between snapshots")
    matcher_snapshot_seconds: float = Field(60.0, gt=0, description="max seconds between them")
    matcher_ring_bytes: int = Field(1 << 24, description="inbound ring size (power of two)")
    matcher_out_ring_bytes: int = Field(1 << 26, description="outbound ring (power of two)")
    matcher_inline: bool = Field(False, description="run the core in this process (tests)")
    topic_prefix: str = Field("", description="prefix of every topic name (tests)")

    def owned_symbols(self, listed: list[str]) -> list[str] | None:
        """Return the symbols this instance is configured to own, in partition order, or None
        when the consumer group decides (its instances split the partitions)."""
        if not self.matcher_symbols.strip():
            return None
        wanted = [s.strip() for s in self.matcher_symbols.split(",") if s.strip()]
        unknown = sorted(set(wanted) - set(listed))
        if unknown:
            raise ValueError(f"MATCHER_SYMBOLS names unknown symbols: {', '.join(unknown)}")
        return [s for s in listed if s in wanted]
