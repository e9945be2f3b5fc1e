"""``python -m exchange`` (or ``exchange``): inspect and verify a running exchange.

    exchange status                          processes, topics' end offsets, consumer lag
    exchange verify                          every engine's live digest == its rebuild
    exchange rebuild wallet|positions|projector   the rebuilt digest, as JSON
    exchange rebuild matcher --symbol S
    exchange replay --symbol S [--to N]      the book after command offset N
    exchange tail TOPIC [--from-beginning] [-n N]

With no flags and no environment it finds the local stack in infra/stack.toml (``make up``);
``--stack infra/stack-test.toml`` names another table; ``--bootstrap``, ``--redis``,
``--prefix`` and ``--digest-url ENGINE=URL`` (or KAFKA_BOOTSTRAP_SERVERS, REDIS_URL,
TOPIC_PREFIX) any other stack.

This module is the composition root: it parses, builds the adapters, and hands them to the
commands' modules.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from contextlib import closing
from pathlib import Path
from typing import TextIO

from exchange import engines, replay, status, tail
from exchange.progress import Bars, ProgressBus
from exchange.stack import (
    DEFAULT_STACK,
    ENGINES,
    StackNotFound,
    Target,
    parse_digest_urls,
    read_table,
    resolve,
)
from exchange.verify import Check, Engine, line, verify
from libs.bus import BusError
from libs.bus.kafka import KafkaBus
from libs.symbols import default_symbols
from libs.topics import COMMANDS as COMMANDS_TOPIC

DEFAULT_TIMEOUT = 60.0


def build_parser() -> argparse.ArgumentParser:
    """Return the parser of every subcommand (pure: nothing is read or connected)."""
    parser = argparse.ArgumentParser(
        prog="exchange",
        description="\n\n".join(__doc__.split("\n\n")[:3]) if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="See docs/RUNNING.md.",
    )
    _where(parser, None)
    # the same options after the command too (`exchange verify --prefix p.`); there they
    # override only when given
    common = argparse.ArgumentParser(add_help=False)
    _where(common, argparse.SUPPRESS)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    commands.add_parser(
        "status", parents=[common], help="processes, topics' end offsets, consumer-group lag"
    )

    check = commands.add_parser(
        "verify", parents=[common], help="every live digest against its rebuild"
    )
    check.add_argument(
        "--engine",
        action="append",
        choices=engines.REBUILDS,
        help="only these engines (default: all with a rebuild)",
    )
    check.add_argument("--symbol", action="append", help="only these books (default: all)")
    check.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        help="seconds per engine to reach the same offsets as its rebuild (default %(default)s)",
    )

    rebuild = commands.add_parser(
        "rebuild", parents=[common], help="print an engine's digest rebuilt from topics"
    )
    rebuild.add_argument("service", choices=engines.REBUILDS)
    rebuild.add_argument("--symbol", help="the matcher's book to rebuild")
    rebuild.add_argument(
        "--shard", type=int, default=0, help="the wallet's or positions' user shard (default 0)"
    )

    book = commands.add_parser(
        "replay", parents=[common], help="a symbol's book at a command offset"
    )
    book.add_argument("--symbol", required=True)
    book.add_argument("--to", type=int, help="last command offset to apply (default: all)")
    book.add_argument("--levels", type=int, default=10, help="levels per side (default 10)")
    book.add_argument("--json", action="store_true", help="print the book as JSON")

    records = commands.add_parser(
        "tail", parents=[common], help="decoded records of a topic, as JSON lines"
    )
    records.add_argument("topic", choices=tail.TOPICS)
    records.add_argument("--from-beginning", action="store_true", help="from offset 0")
    records.add_argument(
        "-n", type=int, default=None, help="records per partition (default: last 10, or all)"
    )
    return parser


def _where(parser: argparse.ArgumentParser, default: object) -> None:
    """Add the options that name the deployment, each defaulting to ``default``."""
    parser.add_argument(
        "--stack",
        type=Path,
        default=default,
        help=f"stack table for defaults and `status` (default infra/{DEFAULT_STACK.name})",
    )
    parser.add_argument(
        "--bootstrap", default=default, help="Kafka bootstrap servers (KAFKA_BOOTSTRAP_SERVERS)"
    )
    parser.add_argument("--redis", default=default, help="redis:// URL (REDIS_URL)")
    parser.add_argument("--prefix", default=default, help="topic prefix (TOPIC_PREFIX)")
    parser.add_argument(
        "--digest-url",
        action="append",
        default=[] if default is None else default,
        metavar="ENGINE=URL",
        help=f"an engine's ops endpoint, e.g. wallet=http://127.0.0.1:9102 ({', '.join(ENGINES)})",
    )


def target_of(args: argparse.Namespace, environ: Mapping[str, str]) -> Target:
    """Return the deployment the arguments, the environment and the stack table name."""
    path = args.stack or DEFAULT_STACK
    try:
        table = read_table(path)
    except StackNotFound:
        if args.stack is not None:
            raise
        table = None  # an installed copy without the repo: flags and environment only
    return resolve(
        environ=environ,
        table=table,
        bootstrap=args.bootstrap,
        redis_url=args.redis,
        prefix=args.prefix,
        digest_urls=parse_digest_urls(args.digest_url),
    )


# ---------------------------------------------------------------- I/O the commands use


def fetch_json(url: str, timeout: float = 10.0) -> dict:
    """Return the JSON an ops endpoint answers at ``url``."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        answer: dict = json.loads(response.read())
        return answer


def digest_urls(
    target: Target, engine: str, symbol: str | None = None, shard: int | None = None
) -> list[str]:
    """The ``/digest`` URL of each instance of ``engine`` (``--digest-url ENGINE=URL,URL``)."""
    bases = target.digest_urls.get(engine)
    if not bases:
        raise LookupError(f"no address for {engine}: pass --digest-url {engine}=URL")
    asked = {
        name: value for name, value in (("symbol", symbol), ("shard", shard)) if value is not None
    }
    query = "?" + urllib.parse.urlencode(asked) if asked else ""
    return [f"{base}/digest{query}" for base in bases.split(",")]


def fetch_digest(
    target: Target,
    engine: str,
    symbol: str | None = None,
    shard: int | None = None,
    timeout: float = 10.0,
) -> dict:
    """Return the digest of a book or a user shard from the instance of ``engine`` that runs
    it (the others answer 404); asked for neither, every instance's user shards together."""
    shards: dict[str, dict] = {}
    failed: Exception | None = None
    for url in digest_urls(target, engine, symbol, shard):
        try:
            answer = fetch_json(url, timeout)
        except OSError as error:  # not running it here, or not answering
            failed = error
            continue
        if "shards" not in answer:
            return answer
        shards.update(answer["shards"])
    if shards or failed is None:
        return {"shards": shards}
    raise failed


def exchange_engines(
    target: Target,
    bars: Bars,
    symbols: Sequence[str] | None = None,
    names: Sequence[str] | None = None,
) -> list[Engine]:
    """Return the engines with a rebuild (``names``, default all), each with how to ask it
    live and to rebuild it (the matcher once per book of ``symbols``, default all)."""
    names = names or engines.REBUILDS

    def bus() -> ProgressBus:
        return ProgressBus(target.bootstrap, bars, "exchange-verify")

    def live(
        engine: str, symbol: str | None = None, shard: int | None = None
    ) -> Callable[[], dict]:
        return lambda: fetch_digest(target, engine, symbol, shard)

    def rebuilt(
        engine: str, symbol: str | None = None, shard: int | None = None
    ) -> Callable[[dict], dict]:
        def rebuild(_live: dict) -> dict:
            with closing(bus()) as reader:
                return engines.rebuild(engine, target, reader, symbol, shard or 0)

        return rebuild

    def projector_at(live: dict) -> dict:  # it can stop at the live offsets: it does
        with closing(bus()) as reader:
            return engines.rebuild_projector(target, reader, live.get("offsets", {}))

    found = []
    for name in ("wallet", "positions"):
        if name not in names:
            continue
        if target.user_partitions == 1:
            found.append(Engine(name, live(name), rebuilt(name)))
        else:  # one state machine per user shard, each asked where it runs
            found += [
                Engine(f"{name}/{p}", live(name, shard=p), rebuilt(name, shard=p))
                for p in range(target.user_partitions)
            ]
    for symbol in (symbols or engines.symbols()) if "matcher" in names else []:
        name = f"matcher/{symbol}"
        found.append(Engine(name, live("matcher", symbol), rebuilt("matcher", symbol)))
    if "projector" in names:
        found.append(Engine("projector", live("projector"), projector_at))
    return found


def verify_exchange(
    target: Target,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    symbols: Sequence[str] | None = None,
    names: Sequence[str] | None = None,
    report: Callable[[Check], None] | None = None,
    progress: bool = False,
) -> list[Check]:
    """Verify the engines of ``target`` (``names``, default all; the matcher's books of
    ``symbols``, default all): each live digest against its rebuild at the same offsets.
    All agree when every returned check is ``ok``."""
    with Bars(enabled=progress) as bars:
        found = exchange_engines(target, bars, symbols, names)
        return verify(found, timeout, report=report)


# ---------------------------------------------------------------- the commands


def cmd_status(target: Target, args: argparse.Namespace, out: TextIO) -> int:
    processes = None
    if target.stack_file is not None:
        processes = status.gather_processes(target.stack_file)
    with closing(KafkaBus(target.bootstrap, client_id="exchange-status")) as bus:
        ends = status.gather_ends(bus, target)
    lags, notes = [], []
    for engine in ("wallet", "positions"):
        try:
            digest = fetch_digest(target, engine, timeout=5)
        except Exception as error:  # an engine away: the rest of the status still stands
            notes.append(f"{engine} (/digest): {type(error).__name__}: {error}")
            continue
        for shard, part in digest.get("shards", {"": digest}).items():  # one per user shard
            name = f"{engine}/{shard}" if shard else engine
            lags += status.digest_lags(name, part, ends, target.prefix)
    books: dict[int, int] = {}
    for symbol in engines.symbols():
        try:
            book = fetch_digest(target, "matcher", symbol, timeout=5)
        except Exception as error:
            notes.append(f"matcher (/digest?symbol={symbol}): {type(error).__name__}: {error}")
            continue
        books[default_symbols()[symbol].index] = book["offset"] + 1
    if books:
        commands = ends.get(COMMANDS_TOPIC) or {}
        lags.append(status.Lag("matcher (/digest)", COMMANDS_TOPIC, books, commands))
    lags += status.gather_group_lags(target, ends)
    try:
        lags += status.gather_projector_lag(target, ends)
    except Exception as error:  # Redis away
        notes.append(f"projector (Redis {target.redis_url}): {type(error).__name__}: {error}")
    print(status.format_status(processes, ends, lags, target=target, notes=notes), file=out)
    return 0


def cmd_verify(target: Target, args: argparse.Namespace, out: TextIO) -> int:
    def report(check: Check) -> None:
        print(line(check), file=out, flush=True)

    checks = verify_exchange(
        target,
        timeout=args.timeout,
        symbols=args.symbol,
        names=args.engine,
        report=report,
        progress=True,
    )
    bad = [c.engine for c in checks if not c.ok]
    print(f"{'FAILED: ' + ', '.join(bad) if bad else 'all agree'}", file=out)
    return 1 if bad else 0


def cmd_rebuild(target: Target, args: argparse.Namespace, out: TextIO) -> int:
    if args.service == "matcher" and args.symbol is None:
        raise UsageError("rebuild matcher needs --symbol")
    _check_symbol(args.symbol)
    with Bars() as bars, closing(ProgressBus(target.bootstrap, bars, "exchange-rebuild")) as bus:
        digest = engines.rebuild(args.service, target, bus, args.symbol, args.shard)
    print(json.dumps(digest), file=out)
    return 0


def cmd_replay(target: Target, args: argparse.Namespace, out: TextIO) -> int:
    spec = default_symbols()[_check_symbol(args.symbol)]
    with Bars() as bars, closing(ProgressBus(target.bootstrap, bars, "exchange-replay")) as bus:
        book = replay.replay_book(bus, target, spec, args.to, args.levels)
    if args.json:
        print(json.dumps(replay.book_json(book, spec)), file=out)
    else:
        print(replay.format_book(book, spec), file=out)
    return 0


def cmd_tail(target: Target, args: argparse.Namespace, out: TextIO) -> int:
    physical = target.topic(args.topic)
    with closing(KafkaBus(target.bootstrap, client_id="exchange-tail")) as bus:
        for record in tail.read(bus, physical, count=args.n, from_beginning=args.from_beginning):
            print(tail.json_line(tail.decode_record(record, args.topic)), file=out, flush=True)
    return 0


class UsageError(Exception):
    """Arguments that parse but do not make sense together."""


def _check_symbol(symbol: str | None) -> str:
    listed = list(default_symbols())
    if symbol is not None and symbol not in listed:
        raise UsageError(f"unknown symbol {symbol!r} (listed: {', '.join(listed)})")
    return symbol or ""


COMMANDS: dict[str, Callable[[Target, argparse.Namespace, TextIO], int]] = {
    "status": cmd_status,
    "verify": cmd_verify,
    "rebuild": cmd_rebuild,
    "replay": cmd_replay,
    "tail": cmd_tail,
}


def main(
    argv: Sequence[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Run one command; return its exit status (2: usage or settings, 1: a check failed or
    the stack could not be asked)."""
    out, err = out or sys.stdout, err or sys.stderr
    args = build_parser().parse_args(argv)
    try:
        target = target_of(args, os.environ if environ is None else environ)
        if args.command == "verify":
            for symbol in args.symbol or []:
                _check_symbol(symbol)
        return COMMANDS[args.command](target, args, out)
    except (StackNotFound, UsageError, ValueError) as error:
        print(f"exchange: {error}", file=err)
        return 2
    except BusError as error:
        print(f"exchange {args.command}: the broker at {target.bootstrap}: {error}", file=err)
        return 1
    except BrokenPipeError:  # `exchange tail ... | head`: stop quietly, even at exit's flush
        os.dup2(os.open(os.devnull, os.O_WRONLY), out.fileno())
        return 0
