"""Several instances of a service, each running the user shards a consumer group gives it.

The wallet and the position engine split users by partition (``libs.topics.user_partitions``):
each partition is a state machine of its own, a ``JournaledHandler`` with its snapshot, journal
partition, ``src`` and transactional id (``libs.topics.shard_name``), run by a ``JournalLoop``
of its own. Which instance runs which shard is the group's choice: every instance joins one
group on the service's journal topic (a partition per shard) and runs the shards whose
partitions it is given, each on a thread. When an instance dies the group gives its
partitions to the others after the session timeout; each new owner fences the old one's
producer (``init_transactions`` on the shard's transactional id) and recovers the shard from
its snapshot and journal, as a restarted single instance does. A revoked shard is stopped
inside the rebalance, before the group hands it on.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, cast

from libs.bus.base import Bus
from libs.bus.journal import JournaledHandler
from libs.bus.kafka import KafkaBus, KafkaMembership
from libs.bus.loop import JournalLoop
from libs.ops import OpsServer
from libs.settings import JournalSettings
from libs.topics import Shard, shard_name, user_partitions

log = logging.getLogger(__name__)

SHARD_FAILED_EXIT = 6  # a shard's loop raised: the process exits for a clean restart


class Viewable(Protocol):
    def digest_json(self, query: dict[str, str] | None = None) -> dict: ...


@dataclass
class _Running:
    loop: JournalLoop
    service: Viewable
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None


class ShardHost:
    """Run the shards ``membership`` gives this instance: ``start(partition)`` builds one
    (fencing its previous owner and recovering its state) and returns its loop and service.
    """

    def __init__(
        self,
        name: str,
        join: Callable[[Callable[[list[int]], None]], KafkaMembership],
        start: Callable[[int], tuple[JournalLoop, Viewable]],
        *,
        partitions: int,
        poll_timeout: float = 0.5,
    ) -> None:
        self.name = name
        self.partitions = partitions
        self.poll_timeout = poll_timeout
        self._start = start
        self._running: dict[int, _Running] = {}
        self._lock = threading.Lock()  # the ops thread reads _running
        self.membership = join(self._revoked)

    def run(self, stop: threading.Event) -> None:
        """Serve the group and run the owned shards until ``stop`` is set."""
        while not stop.is_set():
            owned = self.membership.poll(self.poll_timeout)
            for partition in owned:
                if partition not in self._running and not stop.is_set():
                    self._run(partition)

    def _run(self, partition: int) -> None:
        log.info("%s shard %d: taking over", self.name, partition)
        loop, service = self._start(partition)  # fences the previous owner, recovers
        running = _Running(loop, service)
        running.thread = threading.Thread(
            target=self._serve, args=(partition, running), name=f"{self.name}-{partition}"
        )
        running.thread.start()  # before it is listed: whatever stops a listed shard joins it
        with self._lock:
            self._running[partition] = running
        log.info("%s shard %d: running", self.name, partition)

    def _serve(self, partition: int, running: _Running) -> None:
        try:
            running.loop.run(running.stop)
        except BaseException:
            # a shard that cannot go on takes the process down: the supervisor's restart and
            # the normal recovery lose nothing, a silently dead shard would stop its users
            log.critical("%s shard %d failed: exiting", self.name, partition, exc_info=True)
            logging.shutdown()
            os._exit(SHARD_FAILED_EXIT)

    def _revoked(self, partitions: list[int]) -> None:
        """Stop the shards the group takes away (called inside the rebalance)."""
        for partition in partitions:
            with self._lock:
                running = self._running.pop(partition, None)
            if running is None:
                continue
            running.stop.set()
            if running.thread is not None:
                running.thread.join()
            running.loop.close()
            log.info("%s shard %d: handed over", self.name, partition)

    def owned(self) -> list[int]:
        with self._lock:
            return sorted(self._running)

    def digest_json(self, query: dict[str, str] | None = None) -> dict:
        """``/digest``: with ``?shard=N`` that shard's digest; else, with one shard in all,
        its digest; else every running shard's. A shard not running here is a LookupError
        (a 404): another instance runs it, or this one is still recovering it."""
        with self._lock:
            running = dict(self._running)
        wanted = (query or {}).get("shard")
        if wanted is None and self.partitions > 1:
            return {"shards": {str(p): r.service.digest_json() for p, r in sorted(running.items())}}
        try:
            partition = int(wanted or 0)
        except ValueError:
            raise LookupError(f"no shard {wanted!r}: a partition number") from None
        shard = running.get(partition)
        if shard is None:
            raise LookupError(f"{self.name} shard {partition} is not running here")
        return shard.service.digest_json()

    def close(self) -> None:
        """Leave the group (which stops every shard through the revocation) and stop any
        shard still running."""
        self.membership.close()
        self._revoked(self.owned())


def serve_shards(
    name: str,
    settings: JournalSettings,
    build: Callable[[Shard], tuple[Bus, JournaledHandler]],
    *,
    group_id: str,
    transactional_id: str,
    shards_topic: str,
    ops: tuple[int, str],
    stop: threading.Event,
) -> None:
    """Run the user shards of service ``name`` that its group gives this instance until
    ``stop``: each built by ``build`` and run by a ``JournalLoop`` under the shard's names of
    ``group_id`` and ``transactional_id``; ``shards_topic`` has a partition per shard; ``ops``
    is the (port, host) of /metrics, /digest and /healthz."""
    partitions = user_partitions()

    def start(partition: int) -> tuple[JournalLoop, Viewable]:
        bus, service = build(Shard(partition, partitions))
        loop = JournalLoop(  # fences the shard's previous owner, then recovers it from the log
            bus,
            service,
            group_id=shard_name(group_id, partition),
            transactional_id=shard_name(transactional_id, partition),
            partitions=service.inputs,
            max_batch=settings.max_batch,
            commit_seconds=settings.commit_seconds,
            stall_timeout=settings.stall_seconds,
        )
        view = cast(Viewable, service)  # each service's digest_json
        log.info("%s shard %d of %d ready: %s", name, partition, partitions, view.digest_json())
        return loop, view

    bus = KafkaBus(settings.kafka_bootstrap_servers, client_id=name)
    host = ShardHost(
        name,
        lambda revoked: bus.membership(f"{group_id}.shards", shards_topic, revoked),
        start,
        partitions=partitions,
    )
    server = OpsServer(ops[0], host.digest_json, host=ops[1])
    print(f"{name} ready", flush=True)
    try:
        host.run(stop)
    finally:
        server.close()
        host.close()
