"""A deliberately simple order book for differential tests: one list, linear scans.

Supports what the flow tool supports (limit and market orders, GTC/IOC/FOK/GTX, cancel),
with STP off and no filters; the generated flows keep every order inside the filters.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Resting:
    order_id: int
    user_id: int
    is_buy: bool
    price: int
    qty: int
    arrival: int


class ReferenceBook:
    def __init__(self) -> None:
        self.resting: list[Resting] = []
        self.fills: list[tuple[int, int, int, int]] = []
        self.arrivals = 0

    def _crossing(self, is_buy: bool, price: int | None) -> list[Resting]:
        """Return the opposite orders this taker may hit, best price first, then arrival."""
        makers = [
            r
            for r in self.resting
            if r.is_buy != is_buy
            and (price is None or (r.price <= price if is_buy else r.price >= price))
        ]
        return sorted(makers, key=lambda r: (r.price if is_buy else -r.price, r.arrival))

    def place(self, order_id, user_id, is_buy, price, qty, tif) -> None:
        makers = self._crossing(is_buy, price)
        if tif == "GTX" and makers:
            return
        if tif == "FOK" and sum(r.qty for r in makers) < qty:
            return
        for maker in makers:
            if not qty:
                break
            take = min(qty, maker.qty)
            qty -= take
            maker.qty -= take
            self.fills.append((order_id, maker.order_id, maker.price, take))
            if not maker.qty:
                self.resting.remove(maker)
        if qty and price is not None and tif in ("GTC", "GTX"):
            self.arrivals += 1
            self.resting.append(Resting(order_id, user_id, is_buy, price, qty, self.arrivals))

    def cancel(self, order_id, user_id) -> None:
        for r in self.resting:
            if r.order_id == order_id and r.user_id == user_id:
                self.resting.remove(r)
                return

    def book(self):
        """Return (bids, asks) as [(price, [(order_id, qty), ...])], best level first."""
        out = []
        for is_buy in (True, False):
            side = self._crossing(not is_buy, None)
            levels: dict[int, list] = {}
            for r in side:
                levels.setdefault(r.price, []).append((r.order_id, r.qty))
            out.append(list(levels.items()))
        return tuple(out)
