"""The position engine's stack with a real wallet process in front of the matcher: deposits and
orders go through ``orders.requests`` as the gateway sends them."""

from __future__ import annotations

from libs.bus import Outgoing
from libs.messages import (
    AccountUpdated,
    CancelOrder,
    Deposit,
    OrderAccepted,
    OrderCancelled,
    OrderRejected,
    OrderType,
    PlaceOrder,
    Side,
    encode,
)
from libs.money import parse_cash
from libs.topics import user_partition
from tests.integration.positions.conftest import SPEC, SYMBOL, Stack
from tests.integration.wallet.conftest import WalletProcess


class Exchange:
    """The position engine's stack plus a real wallet process in front of the matcher."""

    def __init__(self, stack: Stack, bootstrap: str) -> None:
        self.stack = stack
        self.wallet = WalletProcess(bootstrap, stack.redis_url, stack.prefix, 1000)
        self.next_id = 0

    def request(self, message) -> None:
        user = message.user_id
        self.stack.producer.produce(
            Outgoing(
                f"{self.stack.prefix}orders.requests",
                encode(message),
                str(user).encode(),
                user_partition(user),
            )
        )
        self.stack.flush()

    def deposit(self, user: int, amount: str) -> None:
        self.next_id += 1
        self.request(
            Deposit(request_id=f"d{self.next_id}", user_id=user, amount=parse_cash(amount))
        )

    def place(self, user: int, side: str, price: str, qty: str) -> int:
        self.next_id += 1
        oid = self.next_id
        self.request(
            PlaceOrder(
                request_id=f"p{oid}",
                order_id=oid,
                user_id=user,
                symbol=SYMBOL,
                side=Side(side),
                order_type=OrderType.LIMIT,
                qty=SPEC.qty_to_lots(qty),
                price=SPEC.price_to_ticks(price),
            )
        )
        self.stack.wait_for(lambda: self.seen(oid), what=f"order {oid} at the matcher")
        return oid

    def seen(self, oid: int) -> bool:
        return any(
            type(e) in (OrderAccepted, OrderRejected) and e.order_id == oid
            for e in self.stack.matcher_events()
        )

    def cancel(self, user: int, oid: int) -> None:
        self.next_id += 1
        self.request(
            CancelOrder(request_id=f"c{self.next_id}", user_id=user, symbol=SYMBOL, order_id=oid)
        )
        self.stack.wait_for(
            lambda: any(
                type(e) is OrderCancelled and e.order_id == oid for e in self.stack.matcher_events()
            ),
            what=f"cancel of {oid}",
        )

    def wallet_events(self) -> list:
        return self.stack.read(f"{self.stack.prefix}wallet.events")

    def balances(self) -> dict[int, int]:
        last: dict[int, int] = {}
        for e in self.wallet_events():
            if type(e) is AccountUpdated:
                last[e.user_id] = e.balance
        return last
