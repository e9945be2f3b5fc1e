"""A wallet core wired to real matching cores: requests in, matcher events fed back."""

from __future__ import annotations

from libs.messages import (
    AmendOrder,
    CancelOrder,
    Cause,
    Deposit,
    MarkPriceTick,
    MatcherCommand,
    Message,
    OrderType,
    PlaceOrder,
    Side,
    Withdraw,
)
from libs.money import CASH_ONE
from libs.symbols import get_symbol
from services.matcher.core import MatchingCore
from services.wallet.core import WalletCore

SPEC = get_symbol("BTC-PERP")
SYMBOL = SPEC.name
BUY, SELL = Side.BUY, Side.SELL
USDT = CASH_ONE
PRICE = 500_000  # 50,000.0 in ticks
LOT = 1000  # 1.000 BTC in lots


class Exchange:
    """The wallet core in front of one matching core per symbol, applied in causal order."""

    def __init__(self) -> None:
        self.wallet = WalletCore()
        self.books = {name: MatchingCore(spec) for name, spec in self.wallet.symbols.items()}
        self.offsets = {name: 0 for name in self.books}
        self.request_offset = 0
        self.matcher_offset = 0
        self.outputs: list[Message] = []
        self.matcher_events: list[Message] = []

    def request(self, message: Message) -> list[Message]:
        """Apply a request; run what it forwards through the matcher; return every output."""
        self.request_offset += 1
        out = self.wallet.apply(Cause("orders.requests", 0, self.request_offset), message)
        self.outputs += out
        produced = list(out)
        for item in out:
            if isinstance(item, MatcherCommand):
                produced += self.command(item)
        return produced

    def command(self, cmd: MatcherCommand) -> list[Message]:
        book = self.books[cmd.symbol]
        self.offsets[cmd.symbol] += 1
        produced: list[Message] = []
        for event in book.process_batch([(self.offsets[cmd.symbol], cmd)]):
            self.matcher_events.append(event)
            produced.append(event)
            produced += self.event(event, "matcher.events")
        return produced

    def event(self, event: Message, topic: str = "positions.events") -> list[Message]:
        self.matcher_offset += 1
        out = self.wallet.apply(Cause(topic, 0, self.matcher_offset), event)
        self.outputs += out
        return out

    def mark(self, price: int, symbol: str = SYMBOL) -> None:
        self.command(MarkPriceTick(symbol=symbol, mark_price=price, ts=1))


_ids = iter(range(1, 1 << 40))


def deposit(user: int, amount: int) -> Deposit:
    return Deposit(request_id=f"d{next(_ids)}", user_id=user, amount=amount)


def withdraw(user: int, amount: int) -> Withdraw:
    return Withdraw(request_id=f"w{next(_ids)}", user_id=user, amount=amount)


def place(oid, user, side, price=None, qty=LOT, **fields) -> PlaceOrder:
    kind = fields.pop("order_type", OrderType.LIMIT if price is not None else OrderType.MARKET)
    return PlaceOrder(
        request_id=f"p{oid}",
        order_id=oid,
        user_id=user,
        symbol=SYMBOL,
        side=side,
        order_type=kind,
        qty=qty,
        price=price,
        **fields,
    )


def cancel(oid, user) -> CancelOrder:
    return CancelOrder(request_id=f"c{oid}-{next(_ids)}", user_id=user, symbol=SYMBOL, order_id=oid)


def amend(oid, user, price=None, qty=None) -> AmendOrder:
    return AmendOrder(
        request_id=f"a{oid}-{next(_ids)}",
        user_id=user,
        symbol=SYMBOL,
        order_id=oid,
        price=price,
        qty=qty,
    )


def of(kind: type, messages: list[Message]) -> list:
    return [m for m in messages if isinstance(m, kind)]
