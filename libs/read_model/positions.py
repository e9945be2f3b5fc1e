"""A user's positions as the API shows them, computed on read from the read model's facts.

The projector stores what the events say of each position (``positions:{user}``: size, entry
notional, fees), the account's balance (``account:{user}``) and the marks (``mark:{symbol}``);
PnL, liquidation price and margin ratio move with every mark, so they are computed when read,
with the contract's formulas the position engine uses (``libs/perpetual.py``): the view is
never staler than the marks, and a mark tick writes one hash, not one per holder.
"""

from __future__ import annotations

import json
from typing import NamedTuple

from libs import perpetual as f
from libs.symbols import SymbolSpec


class PositionFacts(NamedTuple):
    """What ``PositionChanged`` says of an open position."""

    size: int  # signed lots: > 0 long, < 0 short
    entry_notional: int  # |size| at average entry price, cash
    fees: int  # the position's share of the fees paid for it

    def to_json(self) -> str:
        return json.dumps(
            {"size": self.size, "entry_notional": self.entry_notional, "fees": self.fees}
        )

    @classmethod
    def from_json(cls, text: str) -> PositionFacts:
        raw = json.loads(text)
        return cls(int(raw["size"]), int(raw["entry_notional"]), int(raw.get("fees", 0)))


def view(
    specs: dict[str, SymbolSpec],
    positions: dict[str, PositionFacts],
    balance: int,
    marks: dict[str, int | None],
) -> dict[str, dict[str, int]]:
    """Return symbol -> the position's view (ticks, cash, rate units), cross margin: each
    liquidation price holds the account's other positions at their marks."""
    shown = {symbol: facts for symbol, facts in positions.items() if symbol in specs and facts.size}
    at_mark = {
        symbol: f.mark_or_entry(specs[symbol], facts.size, facts.entry_notional, marks.get(symbol))
        for symbol, facts in shown.items()
    }
    upnl = {
        symbol: f.unrealised_pnl(specs[symbol], facts.size, facts.entry_notional, at_mark[symbol])
        for symbol, facts in shown.items()
    }
    maintenance = {
        symbol: specs[symbol].maintenance_margin(
            specs[symbol].notional(at_mark[symbol], abs(facts.size))
        )
        for symbol, facts in shown.items()
    }
    ratio = f.margin_ratio(sum(maintenance.values()), balance + sum(upnl.values())) if shown else 0
    out = {}
    for symbol, facts in sorted(shown.items()):
        spec = specs[symbol]
        lots = abs(facts.size)
        others_mm = sum(mm for name, mm in maintenance.items() if name != symbol)
        others_upnl = sum(pnl for name, pnl in upnl.items() if name != symbol)
        out[symbol] = {
            "size": facts.size,
            "entry_notional": facts.entry_notional,
            "entry_price": facts.entry_notional // (lots * spec.cash_per_tick_lot),
            "break_even": f.break_even_price(spec, facts.size, facts.entry_notional, facts.fees),
            "mark": at_mark[symbol],
            "upnl": upnl[symbol],
            "liq_price": f.liquidation_price(
                spec, facts.size, facts.entry_notional, balance, others_mm, others_upnl
            ),
            "margin_ratio": ratio,
        }
    return out
