"""The core process: pinned to one CPU, it moves frames from the inbound ring through the
CoreHost to the outbound ring, and does nothing else: no Kafka, no files, no sockets."""

from __future__ import annotations

import logging
import os
import sys

from libs.symbols import SymbolSpec
from services.matcher.host import CoreHost
from services.matcher.ring import Ring

log = logging.getLogger("matcher.core")

STOP = b"stop"


def pin(cpu: int | None, sched_fifo: bool) -> str:
    """Pin this process to ``cpu`` (default: the last one) and maybe ask for SCHED_FIFO.

    Return one line saying what was done, for the log.
    """
    cpus = sorted(os.sched_getaffinity(0))
    target = cpus[-1] if cpu is None else cpu
    os.sched_setaffinity(0, {target})
    line = f"matcher core pinned to CPU {target}"
    if not sched_fifo:
        return line + "; SCHED_FIFO off (MATCHER_SCHED_FIFO=false)"
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(50))
        return line + "; SCHED_FIFO priority 50"
    except PermissionError:
        return line + "; SCHED_FIFO not permitted here (needs CAP_SYS_NICE): normal scheduling"


def run_core(
    inbound: Ring, outbound: Ring, specs: dict[str, SymbolSpec], cpu: int | None, sched_fifo: bool
) -> None:
    """The core process's main: serve frames until told to stop or orphaned."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    log.info(pin(cpu, sched_fifo))
    parent = os.getppid()
    host = CoreHost(specs)
    while True:
        frames = inbound.pop_batch(64, timeout=1.0)
        if not frames:
            if os.getppid() != parent:  # the I/O process died: recovery is the restart's job
                log.error("I/O process gone; core exiting")
                sys.exit(3)
            continue
        replies: list[bytes] = []
        for frame in frames:
            if frame == STOP:
                outbound.push_batch(replies)
                return
            replies.append(host.handle(frame))
        outbound.push_batch(replies)
