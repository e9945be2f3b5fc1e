"""What runs and how far everyone got: the stack's processes, every topic's end offsets per
partition, and how far each consumer group (and the projector's read model) is behind.

``gather_*`` ask the supervisor's files, the broker and Redis; ``format_status`` is pure.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException
from confluent_kafka.admin import AdminClient

from exchange.stack import Target, load_supervise
from libs.bus import Bus, BusError
from libs.topics import exchange_topics, logical_topic


@dataclass(frozen=True)
class Process:
    name: str
    state: str  # "pid N", "down", "oneshot"
    address: str


@dataclass(frozen=True)
class Processes:
    stack: Path
    supervisor: str
    rows: list[Process]


@dataclass(frozen=True)
class Lag:
    """A reader's position against the log's end, per partition of one topic."""

    reader: str  # a consumer group, or "projector (Redis)"
    topic: str  # as in the table (no prefix)
    positions: dict[int, int]  # partition -> next offset it reads (committed)
    ends: dict[int, int]

    @property
    def behind(self) -> int:
        return sum(max(self.ends.get(p, 0) - o, 0) for p, o in self.positions.items())


def gather_processes(stack_file: Path) -> Processes:
    """Return the supervisor's view of ``stack_file``'s processes (pid files, state file)."""
    supervise = load_supervise()
    stack = supervise.load_stack(stack_file)
    try:
        state = json.loads(stack.path("supervisor", "state").read_text()).get("status", "?")
    except (OSError, ValueError):
        state = "not running"
    pid = supervise.read_live_pid(stack.path("supervisor", "pid"))
    rows = []
    for entry in stack.entries:
        live = supervise.read_live_pid(stack.path(entry.name, "pid"))
        shown = "oneshot" if entry.oneshot else (f"pid {live}" if live else "down")
        rows.append(Process(entry.name, shown, entry.address))
    supervisor = state + (f" (pid {pid})" if pid else "")
    return Processes(stack_file, supervisor, rows)


def gather_ends(bus: Bus, target: Target) -> dict[str, dict[int, int] | None]:
    """Return every table topic's end offset per partition (None: the topic is missing)."""
    ends: dict[str, dict[int, int] | None] = {}
    for topic in exchange_topics():
        try:
            ends[topic.name] = bus.end_offsets(target.topic(topic.name))
        except BusError:
            ends[topic.name] = None
    return ends


def gather_group_lags(
    target: Target, ends: dict[str, dict[int, int] | None], timeout: float = 10.0
) -> list[Lag]:
    """Return the committed position of every consumer group reading the target's topics."""
    admin = AdminClient({"bootstrap.servers": target.bootstrap})
    try:
        listed = admin.list_consumer_groups(request_timeout=timeout).result(timeout)
    except KafkaException as error:
        raise BusError(f"list consumer groups: {error}") from error
    lags = []
    for group in sorted(g.group_id for g in listed.valid):
        request = [ConsumerGroupTopicPartitions(group)]
        try:
            answer = admin.list_consumer_group_offsets(request, request_timeout=timeout)
            committed = answer[group].result(timeout).topic_partitions or []
        except KafkaException:
            continue  # a group that went away between the two questions
        by_topic: dict[str, dict[int, int]] = {}
        for tp in committed:
            if tp.offset < 0 or (target.prefix and not tp.topic.startswith(target.prefix)):
                continue
            name = logical_topic(tp.topic, target.prefix)
            if ends.get(name) is None:
                continue  # not one of the table's topics here
            by_topic.setdefault(name, {})[tp.partition] = tp.offset
        for name, positions in sorted(by_topic.items()):
            lags.append(Lag(group, name, positions, ends[name] or {}))
    return lags


def digest_lags(
    engine: str, digest: dict, ends: dict[str, dict[int, int] | None], prefix: str
) -> list[Lag]:
    """Return where an engine's ``/digest`` says it is: its input ``offsets`` (the matcher's
    digest of one book: its last command ``offset``, on that symbol's partition)."""
    by_topic: dict[str, dict[int, int]] = {}
    if "offsets" in digest:
        for key, offset in digest["offsets"].items():
            topic, _, partition = key.rpartition(":")
            by_topic.setdefault(logical_topic(topic, prefix), {})[int(partition)] = offset
    return [
        Lag(f"{engine} (/digest)", name, positions, ends.get(name) or {})
        for name, positions in sorted(by_topic.items())
        if ends.get(name) is not None
    ]


def format_status(
    processes: Processes | None,
    ends: dict[str, dict[int, int] | None],
    lags: list[Lag],
    *,
    target: Target,
    notes: list[str] | None = None,
) -> str:
    """Return the status as text: processes, topics, lag."""
    lines = []
    if processes is not None:
        lines.append(f"processes ({processes.stack.name}): supervisor {processes.supervisor}")
        for p in processes.rows:
            lines.append(f"  {p.name:<12} {p.state:<11} {p.address}".rstrip())
    prefix = f", prefix {target.prefix!r}" if target.prefix else ""
    lines.append(f"topics on {target.bootstrap}{prefix}: end offset per partition")
    for name, per in ends.items():
        shown = "missing" if per is None else " ".join(f"{p}:{o}" for p, o in sorted(per.items()))
        total = "" if per is None else f"  (total {sum(per.values())})"
        lines.append(f"  {name:<20} {shown}{total}")
    lines.append("lag: records behind the end, at a reader's position per partition")
    lines.append("  (/digest: what an engine applied; a group: what it committed, every few")
    lines.append("  seconds; Redis: what the projector wrote)")
    if not lags:
        lines.append("  no reader has a position on these topics")
    for lag in lags:
        at = " ".join(f"{p}:{o}" for p, o in sorted(lag.positions.items()))
        lines.append(f"  {lag.reader:<24} {lag.topic:<20} {lag.behind:>8}  at {at}")
    lines.extend(f"  {note}" for note in notes or [])
    return "\n".join(lines)


def gather_projector_lag(target: Target, ends: dict[str, dict[int, int] | None]) -> list[Lag]:
    """Return the projector's position: the offsets its Redis read model covers."""
    import redis

    from exchange import engines

    if target.redis_url is None:
        return []
    client = redis.Redis.from_url(target.redis_url, socket_timeout=5, decode_responses=True)
    try:
        fields = client.hgetall(engines.PROJECTOR_OFFSETS_KEY)
    finally:
        client.close()
    by_topic: dict[str, dict[int, int]] = {}
    for field, value in fields.items():
        topic, partition = engines.parse_offsets_field(str(field))
        if target.prefix and not topic.startswith(target.prefix):
            continue
        name = logical_topic(topic, target.prefix)
        if ends.get(name) is not None:
            by_topic.setdefault(name, {})[partition] = int(value)
    return [
        Lag("projector (Redis)", name, positions, ends[name] or {})
        for name, positions in sorted(by_topic.items())
    ]
