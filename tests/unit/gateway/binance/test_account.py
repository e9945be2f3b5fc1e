"""The Binance face's account endpoints (services/gateway/binance/account.py) on the real
gateway app built on in-memory adapters: balances and positions agree with the original API's
``/account`` and ``/positions`` for the same user, the modes are cross and one-way, and ccxt
reads the answers (its parsers, and ccxt itself over HTTP into the app)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import ccxt
import pytest

from libs.messages import Message, OrderStatus, SetLeverage
from libs.read_model import keys
from libs.read_model.positions import PositionFacts
from services.gateway.replies import Kind, Outcome
from tests.unit.gateway.binance.test_orders import MINE, Signer, exchange, raised, refused
from tests.unit.gateway.fakes import Stack, started

ACCOUNT = {
    "balance": 1_000 * 10**8,
    "holds": 50 * 10**8,
    "available": 900 * 10**8,
    "margin": 40 * 10**8,
    "upnl": 10 * 10**8,
}


def leverage_set(kind: Kind, request: Message) -> Outcome | None:
    if isinstance(request, SetLeverage):
        event = None
        return Outcome(OrderStatus.DONE, event=event)  # the flow reads only the status
    return None


@pytest.fixture
def stack() -> Iterator[Stack]:
    with started(leverage_set) as running:
        running.seed_hash(keys.account_key(MINE), ACCOUNT)
        facts = PositionFacts(10, 500 * 10**8, 10**8)  # 0.010 BTC long at 50000.0
        running.seed_hash(keys.positions_key(MINE), {"BTC-PERP": facts.to_json()})
        running.seed_hash(keys.mark_key("BTC-PERP"), {"mark": 510_000})
        running.seed_hash(keys.mark_key("ETH-PERP"), {"mark": 300_000})
        yield running


def test_the_v3_account_agrees_with_the_original_account_and_ccxt_reads_it(stack: Stack) -> None:
    original = stack.client.get("/account", headers=stack.bearer(MINE)).json()
    account = Signer(stack).call("GET", "/fapi/v3/account").json()
    (asset,) = account["assets"]
    assert asset["walletBalance"] == original["balance"] == "1000"
    assert asset["availableBalance"] == original["available"] == "900"
    assert asset["openOrderInitialMargin"] == original["holds"]
    assert asset["positionInitialMargin"] == original["position_margin"]
    assert asset["unrealizedProfit"] == original["unrealised_pnl"]
    assert (asset["marginBalance"], asset["initialMargin"]) == ("1010", "90")
    assert asset["updateTime"] > 0
    assert account["totalWalletBalance"] == "1000"
    (position,) = account["positions"]
    assert (position["symbol"], position["positionAmt"], position["notional"]) == (
        "BTCUSDT",
        "0.010",
        "510",
    )
    balance = ccxt.binanceusdm().parse_balance_custom(account, "linear")
    assert balance["USDT"] == {"free": 900.0, "used": 90.0, "total": 1010.0}


def test_the_v2_account_has_a_row_for_every_symbol(stack: Stack) -> None:
    account = Signer(stack).call("GET", "/fapi/v2/account").json()
    assert [p["symbol"] for p in account["positions"]] == ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
    assert account["positions"][0]["leverage"] == "20"


@pytest.mark.parametrize("path", ["/fapi/v2/balance", "/fapi/v3/balance"])
def test_the_balance_is_the_usdt_row(stack: Stack, path: str) -> None:
    (row,) = Signer(stack).call("GET", path).json()
    assert (row["asset"], row["balance"], row["availableBalance"]) == ("USDT", "1000", "900")
    assert row["updateTime"] > 0


def test_position_risk_agrees_with_the_original_positions_and_ccxt_parses_it(
    stack: Stack,
) -> None:
    (original,) = stack.client.get("/positions", headers=stack.bearer(MINE)).json()
    (row,) = Signer(stack).call("GET", "/fapi/v3/positionRisk").json()
    assert row["entryPrice"] == original["entry_price"] == "50000.0"
    assert row["markPrice"] == original["mark_price"] == "51000.0"
    assert row["unRealizedProfit"] == original["unrealised_pnl"] == "10"
    assert row["liquidationPrice"] == (original["liquidation_price"] or "0")
    assert (row["positionSide"], row["marginType"], row["isolatedMargin"]) == ("BOTH", "cross", "0")
    assert (row["initialMargin"], row["notional"]) == ("25.5", "510")  # 510 / 20
    position = ccxt.binanceusdm().parse_position_risk(row)
    assert (position["side"], position["contracts"], position["marginMode"]) == (
        "long",
        0.01,
        "cross",
    )
    assert position["hedged"] is False and position["entryPrice"] == 50000.0


def test_v2_position_risk_shows_every_symbol_with_its_leverage(stack: Stack) -> None:
    rows = Signer(stack).call("GET", "/fapi/v2/positionRisk").json()
    assert [r["symbol"] for r in rows] == ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
    eth = rows[1]
    assert (eth["positionAmt"], eth["markPrice"], eth["leverage"]) == ("0.000", "3000.00", "20")
    assert eth["maxNotionalValue"] == "15000000"  # the 20x bracket's cap
    one = Signer(stack).call("GET", "/fapi/v2/positionRisk", {"symbol": "ETHUSDT"}).json()
    assert one == [eth | {"updateTime": one[0]["updateTime"]}]


def test_leverage_goes_through_the_original_flow(stack: Stack) -> None:
    reply = Signer(stack).call("POST", "/fapi/v1/leverage", {"symbol": "BTCUSDT", "leverage": 50})
    assert reply.json() == {"leverage": 50, "maxNotionalValue": "3000000", "symbol": "BTCUSDT"}
    ((_, command),) = stack.produced
    assert isinstance(command, SetLeverage) and command.leverage == 50
    bad = Signer(stack).call("POST", "/fapi/v1/leverage", {"symbol": "BTCUSDT", "leverage": 500})
    refused(bad, -4028, "Leverage 500 is not valid")


def test_leverage_brackets_are_the_symbol_files(stack: Stack) -> None:
    everything = Signer(stack).call("GET", "/fapi/v1/leverageBracket").json()
    assert [s["symbol"] for s in everything] == ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
    btc = Signer(stack).call("GET", "/fapi/v1/leverageBracket", {"symbol": "BTCUSDT"}).json()
    assert btc == everything[0]
    assert btc["brackets"][1] == {
        "bracket": 2,
        "initialLeverage": 100,
        "notionalCap": 250000,
        "notionalFloor": 50000,
        "maintMarginRatio": 0.005,
        "cum": 50,
    }


def test_the_position_mode_is_one_way(stack: Stack) -> None:
    signer = Signer(stack)
    assert signer.call("GET", "/fapi/v1/positionSide/dual").json() == {"dualSidePosition": False}
    same = signer.call("POST", "/fapi/v1/positionSide/dual", {"dualSidePosition": "false"})
    refused(same, -4059, "No need to change position side.")
    hedge = signer.call("POST", "/fapi/v1/positionSide/dual", {"dualSidePosition": "true"})
    assert hedge.status_code == 400 and hedge.json()["code"] == -1130


def test_the_margin_type_is_cross(stack: Stack) -> None:
    signer = Signer(stack)
    crossed = {"symbol": "BTCUSDT", "marginType": "CROSSED"}
    assert signer.call("POST", "/fapi/v1/marginType", crossed).json() == {
        "code": 200,
        "msg": "success",
    }
    again = signer.call("POST", "/fapi/v1/marginType", crossed)
    refused(again, -4046, "No need to change margin type.")
    assert raised(again) is ccxt.MarginModeAlreadySet
    isolated = signer.call("POST", "/fapi/v1/marginType", crossed | {"marginType": "ISOLATED"})
    assert isolated.json()["code"] == -4168


DAY_MS = 24 * 3600 * 1000


def income_row(
    kind: str, income: int, at: int, tran: int, trade: str = "", symbol: str = "BTC-PERP"
):
    return {
        "symbol": symbol,
        "incomeType": kind,
        "income": income,
        "time": at,
        "tranId": tran,
        "tradeId": trade,
    }


def seed_income(stack: Stack, *rows: dict) -> None:
    members = {json.dumps(row): row["time"] for row in rows}
    stack.run(stack.redis.zadd(keys.income_key(MINE), members))


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def test_income_without_times_is_the_newest_rows_of_the_last_7_days_oldest_first(
    stack: Stack,
) -> None:
    now = now_ms()
    seed_income(
        stack,
        income_row("REALIZED_PNL", 5 * 10**8, now - 8 * DAY_MS, 1, "3"),  # too old
        income_row("COMMISSION", -100_000, now - 2 * DAY_MS, 2, "4"),
        income_row("REALIZED_PNL", -2 * 10**8, now - DAY_MS, 3, "5"),
        income_row("FUNDING_FEE", 12_345, now - 1000, 4),
    )
    signer = Signer(stack)
    rows = signer.call("GET", "/fapi/v1/income").json()
    assert [(r["incomeType"], r["income"], r["tranId"]) for r in rows] == [
        ("COMMISSION", "-0.001", 2),
        ("REALIZED_PNL", "-2", 3),
        ("FUNDING_FEE", "0.00012345", 4),
    ]
    assert rows[1] == {
        "symbol": "BTCUSDT",
        "incomeType": "REALIZED_PNL",
        "income": "-2",
        "asset": "USDT",
        "info": "REALIZED_PNL",
        "time": now - DAY_MS,
        "tranId": 3,
        "tradeId": "5",
    }
    newest = signer.call("GET", "/fapi/v1/income", {"limit": "2"}).json()
    assert [r["tranId"] for r in newest] == [3, 4]
    older = signer.call("GET", "/fapi/v1/income", {"limit": "2", "page": "2"}).json()
    assert [r["tranId"] for r in older] == [2]


def test_income_from_a_start_time_pages_forward_and_filters_by_type_and_symbol(
    stack: Stack,
) -> None:
    base = 1_700_000_000_000
    seed_income(
        stack,
        *[income_row("COMMISSION", -i, base + i, 10 + i, str(i)) for i in range(1, 6)],
        income_row("REALIZED_PNL", 7, base + 3, 99, "3"),
        income_row("COMMISSION", -1, base + 4, 98, "4", symbol="ETH-PERP"),
    )
    signer = Signer(stack)

    def tran_ids(params: dict[str, str]) -> list[int]:
        return [r["tranId"] for r in signer.call("GET", "/fapi/v1/income", params).json()]

    start = {"startTime": str(base + 2), "incomeType": "COMMISSION", "symbol": "BTCUSDT"}
    assert tran_ids(start) == [12, 13, 14, 15]
    assert tran_ids(start | {"limit": "3"}) == [12, 13, 14]
    assert tran_ids(start | {"limit": "3", "page": "2"}) == [15]
    assert tran_ids(start | {"endTime": str(base + 3)}) == [12, 13]
    assert tran_ids({"endTime": str(base + 3), "limit": "2"}) == [13, 99]  # ties: by member
    assert tran_ids({"startTime": str(base), "incomeType": "REALIZED_PNL"}) == [99]
    assert tran_ids({"startTime": str(base), "incomeType": "TRANSFER"}) == []
    assert tran_ids({"startTime": str(base), "symbol": "ETHUSDT"}) == [98]
    too_many = signer.call("GET", "/fapi/v1/income", {"limit": "1001"})
    assert too_many.status_code == 400


def test_ccxt_parses_the_income_rows(stack: Stack) -> None:
    now = now_ms()
    seed_income(
        stack,
        income_row("REALIZED_PNL", 250_000_000, now - 2000, 7, "12"),
        income_row("INSURANCE_CLEAR", -30_000_000, now - 1000, 8),
    )
    rows = Signer(stack).call("GET", "/fapi/v1/income").json()
    ex = ccxt.binanceusdm()
    pnl, cleared = (ex.parse_income(row) for row in rows)
    assert (pnl["amount"], pnl["code"], pnl["id"], pnl["timestamp"]) == (
        2.5,
        "USDT",
        "7",
        now - 2000,
    )
    assert (cleared["amount"], cleared["info"]["incomeType"]) == (-0.3, "INSURANCE_CLEAR")


def test_ccxt_fetches_the_balance_positions_and_sets_leverage(stack: Stack) -> None:
    ex = exchange(stack)
    balance = ex.fetch_balance()
    assert balance["USDT"]["free"] == 900.0
    (position,) = ex.fetch_positions(["BTC/USDT:USDT"])
    assert (position["side"], position["contracts"]) == ("long", 0.01)
    assert ex.set_leverage(10, "BTC/USDT:USDT")["leverage"] == 10
