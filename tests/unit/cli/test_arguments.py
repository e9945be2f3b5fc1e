"""The command line's arguments: each command, and the deployment options on either side."""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import pytest

from exchange.cli import build_parser, main, target_of


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(list(argv))


def test_each_command_parses_with_its_options() -> None:
    assert parse("status").command == "status"
    args = parse("verify", "--symbol", "BTC-PERP", "--engine", "matcher", "--timeout", "5")
    assert (args.symbol, args.engine, args.timeout) == (["BTC-PERP"], ["matcher"], 5.0)
    args = parse("rebuild", "matcher", "--symbol", "ETH-PERP")
    assert (args.service, args.symbol) == ("matcher", "ETH-PERP")
    args = parse("replay", "--symbol", "BTC-PERP", "--to", "42", "--json")
    assert (args.symbol, args.to, args.json, args.levels) == ("BTC-PERP", 42, True, 10)
    args = parse("tail", "wallet.events", "--from-beginning", "-n", "3")
    assert (args.topic, args.from_beginning, args.n) == ("wallet.events", True, 3)


def test_deployment_options_go_before_or_after_the_command() -> None:
    before = parse("--prefix", "a.", "--bootstrap", "h:1", "verify")
    after = parse("verify", "--prefix", "a.", "--bootstrap", "h:1")
    for args in (before, after):
        assert (args.prefix, args.bootstrap) == ("a.", "h:1")
    assert parse("--prefix", "a.", "status", "--prefix", "b.").prefix == "b."
    assert parse("status").prefix is None


def test_unknown_services_topics_and_missing_symbols_are_refused() -> None:
    for argv in (["rebuild", "gateway"], ["tail", "no.such.topic"], ["replay"], []):
        with pytest.raises(SystemExit) as exit_:
            parse(*argv)
        assert exit_.value.code == 2


def test_rebuild_of_the_matcher_without_a_symbol_is_a_usage_error() -> None:
    err = io.StringIO()
    code = main(["--bootstrap", "127.0.0.1:1", "rebuild", "matcher"], environ={}, err=err)
    assert code == 2 and "--symbol" in err.getvalue()


def test_an_unknown_symbol_is_a_usage_error_naming_the_listed_ones() -> None:
    err = io.StringIO()
    code = main(["--bootstrap", "127.0.0.1:1", "replay", "--symbol", "DOGE-PERP"], err=err)
    assert code == 2 and "BTC-PERP" in err.getvalue()


def test_a_named_table_that_is_missing_is_an_error_not_a_fallback(tmp_path: Path) -> None:
    err = io.StringIO()
    code = main(["--stack", str(tmp_path / "none.toml"), "status"], environ={}, err=err)
    assert code == 2 and "none.toml" in err.getvalue()


def test_with_no_flags_and_no_environment_the_target_is_the_make_up_stack() -> None:
    target = target_of(parse("verify"), {})
    assert target.bootstrap == "127.0.0.1:9092"
    assert target.digest_urls["matcher"] == "http://127.0.0.1:9101"
