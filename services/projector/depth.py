"""A symbol's depth as the read model shows it: level totals and what changed since the last
depth message."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class Book:
    """One symbol's aggregated levels (side -> price -> lots) and its depth update id."""

    update_id: int = 0
    levels: dict[str, dict[int, int]] = field(default_factory=lambda: {"buy": {}, "sell": {}})
    before: dict[tuple[str, int], int] = field(default_factory=dict)
    """Totals of the levels touched since the last depth message, as they were then."""

    def add(self, side: str, price: int, lots: int) -> None:
        level = self.levels[side]
        total = level.get(price, 0)
        self.before.setdefault((side, price), total)
        total += lots
        if total:
            level[price] = total
        else:
            del level[price]

    def take_changes(self) -> tuple[list[list[int]], list[list[int]]]:
        """Return the levels whose total changed since the last call, with their new totals
        (0: gone), bids and asks best first; start counting afresh."""
        bids: list[list[int]] = []
        asks: list[list[int]] = []
        for (side, price), before in self.before.items():
            now = self.levels[side].get(price, 0)
            if now != before:
                (bids if side == "buy" else asks).append([price, now])
        self.before = {}
        bids.sort(reverse=True)
        asks.sort()
        return bids, asks

    def bids(self) -> list[tuple[int, int]]:
        return sorted(self.levels["buy"].items(), reverse=True)

    def asks(self) -> list[tuple[int, int]]:
        return sorted(self.levels["sell"].items())
