"""One side of a price-time priority book: FIFO levels keyed by price, prices kept sorted.

Prices are stored in ``keys`` as *keys*: the price for bids and minus the price for asks, sorted
ascending, so the best level of either side is ``keys[-1]`` and removing it is a cheap ``pop()``.
A taker crosses a level when ``key >= limit_key`` where ``limit_key = limit_price * sign``.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections import deque

from services.matcher.core.orders import Order


class BookSide:
    """Resting orders of one side: ``levels`` price -> FIFO deque, ``keys`` sorted price keys."""

    __slots__ = ("is_bid", "keys", "levels", "sign")

    def __init__(self, is_bid: bool) -> None:
        self.is_bid = is_bid
        self.sign = 1 if is_bid else -1
        self.levels: dict[int, deque[Order]] = {}
        self.keys: list[int] = []

    def add(self, order: Order) -> None:
        """Append ``order`` to the back of its price level."""
        price: int = order.price  # type: ignore[assignment]  # resting: priced (no cast: hot path)
        level = self.levels.get(price)
        if level is None:
            self.levels[price] = deque((order,))
            key = price * self.sign
            keys = self.keys
            if not keys or key > keys[-1]:
                keys.append(key)
            else:
                insort(keys, key)
        else:
            level.append(order)

    def remove(self, order: Order) -> None:
        """Take ``order`` out of its level (anywhere in the queue); drop the level if empty."""
        price: int = order.price  # type: ignore[assignment]  # resting: priced (no cast: hot path)
        level = self.levels[price]
        if level[0] is order:
            level.popleft()
        else:
            level.remove(order)
        if not level:
            self.drop_level(price)

    def drop_level(self, price: int) -> None:
        del self.levels[price]
        keys = self.keys
        key = price * self.sign
        if keys[-1] == key:
            keys.pop()
        else:
            del keys[bisect_left(keys, key)]

    def best(self) -> int | None:
        """Return the best price, or None when the side is empty."""
        return self.keys[-1] * self.sign if self.keys else None

    def depth(self, n: int) -> list[tuple[int, int]]:
        """Return up to ``n`` aggregated levels [(price, lots)], best first."""
        out = []
        levels, sign = self.levels, self.sign
        for key in reversed(self.keys[-n:] if n > 0 else []):
            price = key * sign
            out.append((price, sum(o.remaining for o in levels[price])))
        return out

    def orders(self):
        """Yield every resting order, best level first, FIFO inside a level."""
        levels, sign = self.levels, self.sign
        for key in reversed(self.keys):
            yield from levels[key * sign]
