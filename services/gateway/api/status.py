"""``GET /status``: the exchange's vital figures as a small JSON, for people without Grafana.

The same figures as the dashboard (infra/grafana/dashboards/exchange.json): orders per second,
order reply latency, rejects by code, consumer lag per engine, the matcher's batches and rings,
liquidations. The gateway takes its own from its Prometheus registry and the engines' from their
``/metrics`` pages (``STATUS_SOURCES``), the pages Prometheus scrapes. That read is an
operator's look at operational counters, not a business call: no trading state or decision
flows through it, and an engine that does not answer is only a ``null`` here.

Rates are windowed: each refresh keeps its samples and takes the differences from the latest
kept refresh at least ``WINDOW_SECONDS`` old (the oldest kept while none is). The answer is
cached ``CACHE_SECONDS``: however many pages poll, the engines are read once per that.
"""

from __future__ import annotations

import asyncio
import math
import time
import urllib.request
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

router = APIRouter(tags=["status"])

CACHE_SECONDS = 2.0
WINDOW_SECONDS = 15.0
FETCH_TIMEOUT_SECONDS = 1.0
QUANTILES = {"p50": 0.5, "p90": 0.9, "p99": 0.99}

# What the figures read: the gateway's own samples, and the engines' (the other samples of a
# page are dropped as it is parsed).
GATEWAY_SAMPLES = frozenset(
    {
        "gateway_answers_total",
        "gateway_reply_timeouts_total",
        "gateway_reply_seconds_bucket",
    }
)
ENGINE_SAMPLES = frozenset(
    {
        "kafka_consumer_lag",
        "matcher_batch_size_sum",
        "matcher_batch_size_count",
        "matcher_ring_occupancy_bytes",
        "positions_liquidations_total",
    }
)

Labels = tuple[tuple[str, str], ...]
Samples = dict[tuple[str, Labels], float]
"""One scrape: (sample name, its labels sorted) -> value."""


def samples_of(families: Iterable[Any], wanted: frozenset[str]) -> Samples:
    """Return the samples named in ``wanted`` of prometheus_client metric families (a
    registry's ``collect()`` or a parsed page)."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): float(s.value)
        for family in families
        for s in family.samples
        if s.name in wanted
    }


def parse_page(text: str) -> Samples:
    """Return an engine's figures from its /metrics page (Prometheus text format)."""
    return samples_of(text_string_to_metric_families(text), ENGINE_SAMPLES)


@dataclass(frozen=True)
class Scrape:
    at: float  # monotonic seconds
    gateway: Samples
    engines: dict[str, Samples | None]  # None: the engine did not answer


def _select(samples: Samples, name: str, **match: str) -> dict[Labels, float]:
    return {
        labels: value
        for (sample, labels), value in samples.items()
        if sample == name and all((k, v) in labels for k, v in match.items())
    }


def _increase(now: Samples, before: Samples, name: str, **match: str) -> dict[Labels, float]:
    """Per series, how much a counter grew (as Prometheus: a series that went down restarted
    from zero, so all of it is new)."""
    old = _select(before, name, **match)
    increase = {}
    for labels, value in _select(now, name, **match).items():
        previous = old.get(labels, 0.0)
        increase[labels] = value - previous if value >= previous else value
    return increase


def quantile(q: float, buckets: dict[float, float]) -> float | None:
    """Return the ``q`` quantile of a histogram's cumulative bucket counts (upper bound ->
    count) as Prometheus's histogram_quantile does (linear within a bucket); None when empty."""
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return None
    rank = q * buckets[bounds[-1]]
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                return lower  # in the open-ended bucket: its lower bound, as Prometheus
            if count == below:
                return bound
            return lower + (bound - lower) * (rank - below) / (count - below)
        lower, below = bound, count
    return lower


def _sum_by_le(series: dict[Labels, float]) -> dict[float, float]:
    buckets: dict[float, float] = {}
    for labels, value in series.items():
        le = float(dict(labels)["le"])
        buckets[le] = buckets.get(le, 0.0) + value
    return buckets


def _total(series: dict[Labels, float]) -> float:
    return sum(series.values())


def figures(now: Scrape, before: Scrape | None, updated_at_ms: int) -> dict[str, Any]:
    """The /status body from this scrape and the one the window starts at (None: none yet)."""
    seconds = now.at - before.at if before is not None else 0.0
    windowed = before is not None and seconds > 0
    gateway, engines = now.gateway, now.engines

    orders: float | None = None
    reply: dict[str, float | None] = dict.fromkeys(QUANTILES)
    if before is not None and windowed:
        placed = _total(_increase(gateway, before.gateway, "gateway_answers_total", kind="place"))
        placed += _total(
            _increase(gateway, before.gateway, "gateway_reply_timeouts_total", kind="place")
        )
        orders = round(placed / seconds, 2)
        buckets = _sum_by_le(
            _increase(gateway, before.gateway, "gateway_reply_seconds_bucket", kind="place")
        )
        for key, q in QUANTILES.items():
            value = quantile(q, buckets)
            reply[key] = None if value is None else round(value * 1000, 2)

    rejects: dict[str, int] = {}
    for labels, value in _select(gateway, "gateway_answers_total", status="Rejected").items():
        code = dict(labels)["code"]
        if value:
            rejects[code] = rejects.get(code, 0) + int(value)

    lag: dict[str, int | None] = {}
    for name, page in engines.items():
        series = _select(page, "kafka_consumer_lag") if page is not None else {}
        lag[name] = int(_total(series)) if series else None

    matcher = engines.get("matcher")
    batch_mean: float | None = None
    rings: float | None = None
    if matcher is not None:
        occupancy = _select(matcher, "matcher_ring_occupancy_bytes")
        rings = _total(occupancy) if occupancy else None
        earlier = before.engines.get("matcher") if before is not None else None
        if earlier is not None:
            batches = _total(_increase(matcher, earlier, "matcher_batch_size_count"))
            commands = _total(_increase(matcher, earlier, "matcher_batch_size_sum"))
            batch_mean = round(commands / batches, 2) if batches else None

    positions = engines.get("positions")
    liquidations = None
    if positions is not None:
        liquidated = _select(positions, "positions_liquidations_total")
        liquidations = int(_total(liquidated)) if liquidated else None

    return {
        "orders_per_second": orders,
        "reply_ms": reply,
        "rejects": dict(sorted(rejects.items())),
        "lag": lag,
        "matcher": {
            "batch_size_mean": batch_mean,
            "ring_occupancy": None if rings is None else int(rings),
        },
        "liquidations": liquidations,
        "window_seconds": round(seconds, 1) if windowed else None,
        "updated_at": updated_at_ms,
    }


def _fetch(url: str) -> Samples | None:
    try:
        with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT_SECONDS) as answer:
            return parse_page(answer.read().decode())
    except (OSError, ValueError):  # refused, timed out, not a metrics page: no figures
        return None


@dataclass
class StatusBoard:
    """The cached /status answer and the scrapes its window reaches back to."""

    sources: dict[str, str]  # engine name -> its /metrics URL
    kept: deque[Scrape] = field(default_factory=deque)
    body: dict[str, Any] | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def answer(self) -> dict[str, Any]:
        async with self.lock:  # one refresh at a time; the others take its answer
            if self.body is not None and time.monotonic() - self.kept[-1].at < CACHE_SECONDS:
                return self.body
            names = list(self.sources)
            pages = await asyncio.gather(
                *(asyncio.to_thread(_fetch, self.sources[name]) for name in names)
            )
            now = Scrape(
                time.monotonic(),
                samples_of(REGISTRY.collect(), GATEWAY_SAMPLES),
                dict(zip(names, pages, strict=True)),
            )
            while len(self.kept) > 1 and now.at - self.kept[1].at >= WINDOW_SECONDS:
                self.kept.popleft()  # the next one is still old enough to start the window
            before = self.kept[0] if self.kept else None
            self.kept.append(now)
            self.body = figures(now, before, time.time_ns() // 1_000_000)
            return self.body


def _board(request: Request) -> StatusBoard:
    state = request.app.state
    board = getattr(state, "status_board", None)
    if board is None:
        board = state.status_board = StatusBoard(state.settings.status_urls)
    return board


@router.get("/status")
async def status(request: Request) -> dict[str, Any]:
    """The exchange's vital figures (docs/API.md, "Status"): public, limited per IP."""
    return await _board(request).answer()
