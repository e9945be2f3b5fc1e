"""The position engine's keys in the Redis read model (written by it, read by the gateway).

- ``positions:{user}``: hash of symbol -> JSON ``{"size", "entry_notional", "entry_price",
  "break_even", "mark", "upnl", "liq_price", "margin_ratio"}`` (lots, cash 1e-8 USDT, ticks,
  rate 1e-8); a closed position's field is removed, a user without positions has no key.
- ``mark:{symbol}``: hash of ``mark``, ``index`` (ticks) and ``ts`` (ns) of the applied mark.
- ``funding:{symbol}``: hash of ``rate`` (the last rate, 1e-8) and ``next_funding_time`` (ns).
- ``positions:ready``: set once the full picture is written; when it is missing (Redis
  restarted or flushed) the next publish writes every user again.
- ``positions:applied``: hash ``topic:partition`` -> the next input offset the keys above
  reflect, in the same batch (the gateway's read-your-writes waits on it).
"""

from __future__ import annotations

OWNED_PATTERNS = ("positions:*", "mark:*", "funding:*")
"""Every key the position engine writes."""
READY_KEY = "positions:ready"
APPLIED_KEY = "positions:applied"


def positions_key(user_id: int) -> str:
    return f"positions:{user_id}"


def mark_key(symbol: str) -> str:
    return f"mark:{symbol}"


def funding_key(symbol: str) -> str:
    return f"funding:{symbol}"
