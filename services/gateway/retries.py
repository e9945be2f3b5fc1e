"""The client order ids this gateway placed recently, so a retry names the original order.

The wallet answers a retry of a known client order id with the original order (docs/WALLET.md),
but only once the original is in the log and the wallet has read both. While the original is
still on its way (the broker is down: the producer holds it) or read but not yet answered, a
retry that reached the wallet as a new order would be answered Pending with a new order id.
So the gateway keeps, for its own recent placements, (user, client order id) -> order id, and
answers a retry from it without sending anything. An entry leaves when the log did not take
the placement (the retry is then a first attempt) or when newer placements push it out.
"""

from __future__ import annotations

RECENT = 100_000
"""Placements kept: far more than a broker outage's worth at any real order rate."""


class RecentPlacements:
    """(user, client order id) -> order id, newest ``capacity`` kept. Pure: no I/O."""

    def __init__(self, capacity: int = RECENT) -> None:
        self.capacity = capacity
        self._ids: dict[tuple[int, str], int] = {}  # insertion order: the oldest first

    def __len__(self) -> int:
        return len(self._ids)

    def get(self, user_id: int, client_order_id: str) -> int | None:
        return self._ids.get((user_id, client_order_id))

    def add(self, user_id: int, client_order_id: str, order_id: int) -> None:
        """Remember a placement about to be produced (the first with this client id here)."""
        self._ids.setdefault((user_id, client_order_id), order_id)
        while len(self._ids) > self.capacity:
            del self._ids[next(iter(self._ids))]

    def original(self, user_id: int, client_order_id: str, order_id: int) -> None:
        """The engines named the order holding the client id (a -4015): remember that one."""
        key = (user_id, client_order_id)
        if key in self._ids:
            self._ids[key] = order_id

    def lost(self, user_id: int, client_order_id: str, order_id: int) -> None:
        """Forget a placement the log did not take: it never existed."""
        key = (user_id, client_order_id)
        if self._ids.get(key) == order_id:
            del self._ids[key]
