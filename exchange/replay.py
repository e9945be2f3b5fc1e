"""A symbol's book at a command offset: its command log replayed through the matching core.

The commands of ``orders.commands`` (the symbol's partition) go to the core in the batches
the live matcher formed (the cuts it stamped on ``matcher.events``), from offset 0 without a
snapshot, so the book equals the live one at the same offset. ``--to`` inside a batch stops
before that batch: the live matcher never held a book in the middle of one.
"""

from __future__ import annotations

from dataclasses import dataclass

from exchange import engines
from exchange.stack import Target
from libs.bus import Bus
from libs.symbols import SymbolSpec
from libs.topics import COMMANDS, MATCHER_EVENTS


@dataclass(frozen=True)
class BookView:
    """A book as the core holds it: aggregated levels, best first, in ticks and lots."""

    symbol: str
    offset: int  # the last command offset applied (-1: none)
    seq: int
    digest: str
    bids: list[tuple[int, int]]
    asks: list[tuple[int, int]]


def stop_offset(cuts: list[tuple[int, int]], to: int | None) -> int:
    """Return the first command offset not to replay: after the last recorded batch, and
    never inside one (a batch ``to`` falls in is left out whole)."""
    until = cuts[-1][1] + 1 if cuts else 0
    if to is None:
        return until
    limit = to + 1
    for first, last in cuts:
        if first <= to < last:
            limit = first
            break
    return min(until, limit)


def replay_book(
    bus: Bus, target: Target, spec: SymbolSpec, to: int | None, levels: int
) -> BookView:
    """Replay ``spec``'s command log up to ``to`` (inclusive) and return its book."""
    symbol, partition = spec.name, spec.index
    commands = target.topic(COMMANDS)
    cuts = engines.landed(bus, target.topic(MATCHER_EVENTS), partition, 0, 0).cuts
    until = stop_offset(cuts, to)
    host = engines.CoreHost({symbol: spec})
    host.handle(engines.pack([engines.LOAD, symbol, None]))
    for batch in engines.replay_batches(bus, commands, partition, 0, cuts, until):
        host.handle(engines.pack([engines.BATCH, symbol, batch, False]))
    core = host.cores[symbol]
    seq, bids, asks = core.depth(levels)
    return BookView(symbol, core.last_offset, seq, core.digest(), bids, asks)


def book_json(book: BookView, spec: SymbolSpec) -> dict:
    """Return the book as JSON-ready decimal strings."""
    price, size = spec.prices.format, spec.quantities.format
    return {
        "symbol": book.symbol,
        "offset": book.offset,
        "seq": book.seq,
        "digest": book.digest,
        "bids": [[price(p), size(q)] for p, q in book.bids],
        "asks": [[price(p), size(q)] for p, q in book.asks],
    }


def format_book(book: BookView, spec: SymbolSpec) -> str:
    """Return the book as text: asks from the highest down to the best, then the bids."""
    shown = book_json(book, spec)
    rows = [["ask", p, q] for p, q in reversed(shown["asks"])]
    rows += [["bid", p, q] for p, q in shown["bids"]]
    width_p = max([len("price"), *(len(r[1]) for r in rows)])
    width_q = max([len("size"), *(len(r[2]) for r in rows)])
    head = f"{book.symbol} after command offset {book.offset} (seq {book.seq})"
    lines = [f"{head}, digest {book.digest}"]
    if not rows:
        return "\n".join([*lines, "(empty book)"])
    lines.append(f"     {'price':>{width_p}}  {'size':>{width_q}}")
    for i, (side, p, q) in enumerate(rows):
        if side == "bid" and (i == 0 or rows[i - 1][0] == "ask"):
            lines.append("     " + "-" * (width_p + width_q + 2))
        lines.append(f"{side}  {p:>{width_p}}  {q:>{width_q}}")
    return "\n".join(lines)
