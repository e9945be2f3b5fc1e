"""The index feed, a process of its own: ``python -m services.index_feed`` publishes index
prices to ``index.prices`` (under ``TOPIC_PREFIX``), the position engine's reference for marks
and funding.

Sources: ``sim`` (the default: a seeded random walk, one tick per symbol every ``--interval``
seconds, stamped with the wall clock), ``csv`` (a ``timestamp,symbol,price`` file replayed
as fast as it reads, or paced by its own timestamps with ``--paced``), ``binance`` (a file of
recorded ``markPriceUpdate`` messages, one JSON per line).
"""

from __future__ import annotations

import argparse
import itertools
import logging
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from libs.bus import Outgoing, Producer
from libs.messages import IndexPriceTick, encode
from libs.settings import load_settings
from libs.symbols import default_symbols
from libs.topics import INDEX_PRICES, Topics, symbol_partition
from services.index_feed.settings import IndexFeedSettings
from services.index_feed.sources import default_simulation, parse_binance_mark_price, read_csv

log = logging.getLogger("index_feed")


def tick_message(tick: IndexPriceTick, topic: str) -> Outgoing:
    return Outgoing(
        topic, encode(tick), key=tick.symbol.encode(), partition=symbol_partition(tick.symbol)
    )


def publish(
    producer: Producer,
    ticks: Iterable[IndexPriceTick],
    flush_every: int = 100,
    topic: str = INDEX_PRICES,
) -> int:
    """Produce ``ticks`` to ``topic`` (``index.prices``); return how many."""
    count = 0
    for tick in ticks:
        producer.produce(tick_message(tick, topic))
        count += 1
        if count % flush_every == 0:
            producer.flush()
    producer.flush()
    return count


def paced(ticks: Iterable[IndexPriceTick], *, wall: bool) -> Iterator[IndexPriceTick]:
    """Yield each tick when its time comes (relative to the first), sleeping in between."""
    first_ts = None
    started = time.monotonic()
    for tick in ticks:
        if first_ts is None:
            first_ts = tick.ts
        due = started + (tick.ts - first_ts) / 1e9
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        yield tick


def binance_lines(path: Path) -> Iterator[IndexPriceTick]:
    specs = default_symbols()
    with open(path) as file:
        for line in file:
            if line.strip():
                yield from parse_binance_mark_price(line, specs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.index_feed", description=__doc__)
    parser.add_argument("--source", choices=["sim", "csv", "binance"], default="sim")
    parser.add_argument("--path", type=Path, help="the csv or recorded-messages file")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--interval", type=float, default=1.0, help="sim: seconds per round")
    parser.add_argument("--count", type=int, default=0, help="stop after N ticks (0: never)")
    parser.add_argument("--paced", action="store_true", help="csv/binance: keep the file's pace")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = load_settings(IndexFeedSettings)
    from libs.bus.kafka import KafkaBus

    specs = default_symbols()
    if args.source == "sim":
        interval_ns = int(args.interval * 1e9)
        ticks: Iterable[IndexPriceTick] = paced(
            default_simulation(specs, args.seed).ticks(time.time_ns(), interval_ns), wall=True
        )
    elif args.path is None:
        parser.error(f"--source {args.source} needs --path")
    elif args.source == "csv":
        ticks = read_csv(args.path, specs)
    else:
        ticks = binance_lines(args.path)
    if args.paced and args.source != "sim":
        ticks = paced(ticks, wall=False)
    if args.count:
        ticks = itertools.islice(ticks, args.count)
    producer = KafkaBus(settings.kafka_bootstrap_servers, client_id="index-feed").producer()
    try:
        # sim: one flush per round (a tick of every symbol), so a round reaches the broker in
        # one request and the engines take it in one turn, not one transaction per symbol
        rounds = len(specs) if args.source == "sim" else 100
        topic = Topics(settings.topic_prefix).index_prices
        count = publish(producer, ticks, flush_every=rounds, topic=topic)
    except KeyboardInterrupt:
        count = -1
    finally:
        producer.close()
    log.info("published %s index ticks from %s", count, args.source)
    return 0


if __name__ == "__main__":
    sys.exit(main())
