"""``python -m exchange`` against the running exchange: verify, replay, tail and status.

The session's whole exchange (tests/e2e/stack.py) after two users traded; and, for the
cases that need a log of our own (a malformed record, a snapshot that disagrees with the
live book), a private matcher on topics of its own.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from libs.bus import Outgoing
from libs.bus.kafka import KafkaBus
from libs.bus.snapshots import Snapshot, snapshot_message
from libs.messages import Codec, MatcherCommand, OrderRequest
from libs.symbols import get_symbol
from libs.topics import exchange_topics, symbol_partition
from services.matcher.core import MatchingCore
from tests.e2e.conftest import Trader
from tests.e2e.stack import Stack
from tests.processes import ROOT, ServiceProcess, free_port

SYMBOL = "BTC-PERP"
COMMANDS = Codec(*MatcherCommand.__args__)

Private = tuple[Stack, ServiceProcess, str, int]
"""The session's stack, a matcher on a prefix of its own, that prefix, its last offset."""


def exchange(*argv: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run ``python -m exchange ARGV`` as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "exchange", *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def live_book(stack: Stack, symbol: str = SYMBOL) -> dict:
    return json.loads(stack.services["matcher"].get(f"/digest?symbol={symbol}"))


@pytest.fixture(scope="module")
def traded(stack: Stack) -> Iterator[Stack]:
    """The session's exchange after two users traded: fills, and levels left on both sides
    (cancelled afterwards: the other e2e tests trade on BTC-PERP too)."""
    with httpx.Client(base_url=stack.url, timeout=10) as api:
        seller, buyer = Trader(api), Trader(api)
        try:
            for price in ("50010.0", "50020.0", "50030.0"):
                assert seller.place("Sell", price, "0.010", symbol=SYMBOL)["status"] == "New"
            assert buyer.place("Buy", "49990.0", "0.020", symbol=SYMBOL)["status"] == "New"
            taken = buyer.place("Buy", "50020.0", "0.015", symbol=SYMBOL)
            assert taken["status"] == "Filled", taken
            yield stack
        finally:
            for user in (seller, buyer):
                assert user.post("/cancel_all", {"symbol": SYMBOL}).status_code == 200


def test_verify_exits_0_when_every_engine_agrees_with_its_rebuild(traded: Stack) -> None:
    done = exchange(*traded.cli_args(), "verify", "--timeout", "120")
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    for engine in ("wallet", "positions", "matcher/BTC-PERP", "matcher/ETH-PERP", "projector"):
        row = next(row for row in lines if row.startswith(engine + " "))
        assert row.split()[1] == "agrees", row
    assert lines[-1] == "all agree"


def test_replay_prints_the_live_books_state_at_the_live_offset(traded: Stack) -> None:
    live = live_book(traded)
    done = exchange(
        *traded.cli_args(), "replay", "--symbol", SYMBOL, "--to", str(live["offset"]), "--json"
    )
    assert done.returncode == 0, done.stderr
    book = json.loads(done.stdout)
    assert (book["offset"], book["digest"]) == (live["offset"], live["digest"])
    assert ["50030.0", "0.010"] in book["asks"] and ["49990.0", "0.020"] in book["bids"]
    assert ["50020.0", "0.005"] in book["asks"]  # what the taker left of the level
    shown = exchange(*traded.cli_args(), "replay", "--symbol", SYMBOL)
    assert shown.stdout.startswith(f"{SYMBOL} after command offset {live['offset']} ")
    assert "ask" in shown.stdout and "bid" in shown.stdout


def test_replay_to_an_earlier_offset_is_the_book_before_the_later_commands(traded: Stack) -> None:
    live = live_book(traded)
    done = exchange(*traded.cli_args(), "replay", "--symbol", SYMBOL, "--to", "0", "--json")
    book = json.loads(done.stdout)
    assert book["offset"] <= 0 < live["offset"]
    assert book["digest"] != live["digest"]


def test_rebuild_prints_the_rebuilt_digest_as_json(traded: Stack) -> None:
    done = exchange(*traded.cli_args(), "rebuild", "matcher", "--symbol", SYMBOL)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == live_book(traded)
    done = exchange(*traded.cli_args(), "rebuild", "wallet")
    assert done.returncode == 0, done.stderr
    rebuilt = json.loads(done.stdout)
    assert rebuilt["users"] >= 2 and sum(rebuilt["accounts"].values()) == 0
    done = exchange(*traded.cli_args(), "rebuild", "projector")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["orders_held"] >= 3  # the levels left on the book


def test_tail_decodes_real_records(traded: Stack) -> None:
    done = exchange(*traded.cli_args(), "tail", "orders.requests", "-n", "5")
    assert done.returncode == 0, done.stderr
    records = [json.loads(row) for row in done.stdout.splitlines()]
    assert len(records) == 5
    assert all(r["topic"] == "orders.requests" and "message" in r for r in records)
    kinds = {kind.__name__ for kind in OrderRequest.__args__}
    assert {r["message"]["kind"] for r in records} <= kinds
    done = exchange(*traded.cli_args(), "tail", "matcher.events", "--from-beginning", "-n", "3")
    records = [json.loads(row) for row in done.stdout.splitlines()]
    ours = [r for r in records if r["partition"] == symbol_partition(SYMBOL)]
    assert len(ours) == 3 and ours[0]["offset"] < ours[1]["offset"] < ours[2]["offset"]
    assert "cut" in ours[0]["headers"]  # the first event of the first batch
    assert all(r["message"]["symbol"] == SYMBOL for r in ours)


def test_status_lists_processes_topics_and_lag(traded: Stack) -> None:
    deadline = time.monotonic() + 60  # the wallet commits its offsets every few seconds
    while True:
        done = exchange(*traded.cli_args(), "--stack", "infra/stack-test.toml", "status")
        assert done.returncode == 0, done.stderr
        if f"{traded.prefix}wallet " in done.stdout or time.monotonic() > deadline:
            break
        time.sleep(2)
    text = done.stdout
    assert "processes (stack-test.toml)" in text
    assert next(r for r in text.splitlines() if r.strip().startswith("kafka")).split()[1] == "pid"
    for topic in exchange_topics():
        assert f"  {topic.name} " in text
    requests = next(r for r in text.splitlines() if r.strip().startswith("orders.requests"))
    assert int(requests.rsplit("total ", 1)[1].rstrip(")")) > 0
    wallet = next(r for r in text.splitlines() if r.strip().startswith(f"{traded.prefix}wallet "))
    assert wallet.split()[1] in ("orders.requests", "matcher.events", "positions.events")
    assert "projector (Redis)" in text


# ---------------------------------------------------------------- a log of our own


@pytest.fixture(scope="module")
def private(traded: Stack) -> Iterator[Private]:
    """A matcher alone on a fresh prefix, fed a copy of the session's BTC-PERP commands and a
    record that is no command; yield (stack, matcher, prefix, last command offset)."""
    prefix = f"cli{uuid.uuid4().hex[:8]}."
    bus = KafkaBus(traded.bootstrap)
    for topic in exchange_topics():
        bus.create_topic(prefix + topic.name, topic.partitions, topic.config)
    partition = symbol_partition(SYMBOL)
    copied = [r.value for r in bus.replay(traded.prefix + "orders.commands", partition) if r.value][
        :20
    ]
    producer = bus.producer()
    for value in [*copied[:-1], b"\xc1 not a command", copied[-1]]:
        producer.produce(Outgoing(prefix + "orders.commands", value, SYMBOL.encode(), partition))
    producer.flush()
    last = len(copied)  # the offsets are 0..len(copied): one more for the malformed record
    port = free_port()
    matcher = ServiceProcess(
        "matcher",
        "services.matcher",
        {
            **traded.services["matcher"].env,
            "METRICS_PORT": str(port),
            "TOPIC_PREFIX": prefix,
            "MATCHER_INSTANCE": f"{prefix}matcher-0",
            "MATCHER_GROUP_ID": f"{prefix}matcher",
            "MATCHER_SYMBOLS": SYMBOL,
            "MATCHER_SNAPSHOT_SECONDS": "3600",  # no snapshot of its own after ours
        },
        port=port,
        ready_url=f"http://127.0.0.1:{port}/metrics",
        log_name=f"{prefix}matcher",
    )
    matcher.start()
    try:
        deadline = time.monotonic() + 60
        while json.loads(matcher.get(f"/digest?symbol={SYMBOL}"))["offset"] < last:
            assert time.monotonic() < deadline, "the private matcher did not apply its log"
            time.sleep(0.2)
        yield traded, matcher, prefix, last
    finally:
        matcher.stop()


def cli_args(stack: Stack, matcher: ServiceProcess, prefix: str) -> list[str]:
    return [
        "--bootstrap",
        stack.bootstrap,
        "--prefix",
        prefix,
        "--digest-url",
        f"matcher=http://127.0.0.1:{matcher.port}",
    ]


def test_tail_prints_an_error_line_for_a_malformed_record_and_goes_on(private: Private) -> None:
    stack, matcher, prefix, last = private
    done = exchange(*cli_args(stack, matcher, prefix), "tail", "orders.commands", "-n", "3")
    assert done.returncode == 0, done.stderr
    records = [json.loads(row) for row in done.stdout.splitlines()]
    ours = [r for r in records if r["partition"] == symbol_partition(SYMBOL)]
    assert [r["offset"] for r in ours] == [last - 2, last - 1, last]
    assert "does not decode as orders.commands" in ours[1]["error"]
    assert "message" in ours[0] and "message" in ours[2]


def test_verify_fails_naming_the_book_whose_log_disagrees_with_the_live_one(
    private: Private,
) -> None:
    stack, matcher, prefix, last = private
    args = cli_args(stack, matcher, prefix)
    done = exchange(*args, "verify", "--engine", "matcher", "--symbol", SYMBOL)
    assert done.returncode == 0, done.stdout + done.stderr  # before: they agree

    # A snapshot of another history up to the same offset: the live book never held it, and
    # a rebuild now starts from it. Same offsets, different state: a real disagreement.
    spec = get_symbol(SYMBOL)
    bus = KafkaBus(stack.bootstrap)
    first = next(bus.replay(f"{prefix}orders.commands", spec.index))
    other = MatchingCore(spec)
    other.process_batch([(last, COMMANDS.decode(first.value))])
    events_end = bus.end_offsets(f"{prefix}matcher.events")[spec.index]
    snapshot = Snapshot(
        key=SYMBOL,
        offsets={
            f"{prefix}orders.commands:{spec.index}": last + 1,
            f"{prefix}matcher.events:{spec.index}": events_end,
        },
        seq=other.seq,
        state=other.snapshot(),
    )
    producer = bus.producer()
    producer.produce(snapshot_message(f"{prefix}matcher.snapshots", snapshot))
    producer.flush()

    done = exchange(*args, "verify", "--engine", "matcher", "--symbol", SYMBOL, "--timeout", "5")
    assert done.returncode == 1, done.stdout + done.stderr
    row = next(r for r in done.stdout.splitlines() if r.startswith(f"matcher/{SYMBOL}"))
    assert row.split()[1] == "DIFFERS" and f"offset {last}" in row
    assert done.stdout.splitlines()[-1] == f"FAILED: matcher/{SYMBOL}"


def test_verify_fails_naming_an_engine_it_cannot_reach(private: Private) -> None:
    stack, matcher, prefix, _ = private
    args = [
        *cli_args(stack, matcher, prefix),
        "--digest-url",
        f"wallet=http://127.0.0.1:{free_port()}",
    ]
    done = exchange(*args, "verify", "--engine", "wallet", "--timeout", "1")
    assert done.returncode == 1
    row = next(r for r in done.stdout.splitlines() if r.startswith("wallet"))
    assert "UNREACHABLE" in row and "refused" in row.lower()


def test_replay_reads_the_command_log_not_the_snapshots(private: Private) -> None:
    stack, matcher, prefix, last = private  # after the test above wrote its snapshot
    done = exchange(*cli_args(stack, matcher, prefix), "replay", "--symbol", SYMBOL, "--json")
    book = json.loads(done.stdout)
    live = json.loads(matcher.get(f"/digest?symbol={SYMBOL}"))
    assert (book["offset"], book["digest"]) == (last, live["digest"])
