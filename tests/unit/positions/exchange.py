"""The wallet, matching and position cores wired in process, in causal (FIFO) order.

A stand-in for the three services on Kafka: requests go to the wallet, what it forwards to the
matcher, the matcher's events to the wallet and the position engine, the position engine's
events to the wallet and its commands (mark ticks, cancel-alls, liquidations) to the matcher.
"""

from __future__ import annotations

from collections import deque

from libs.messages import (
    Cause,
    IndexPriceTick,
    LedgerAccountKind,
    MatcherCommand,
    MatcherEvent,
    Message,
    PositionEvent,
    WalletEvent,
)
from libs.topics import user_partition
from services.matcher.core import MatchingCore
from services.positions.core import PositionsCore
from services.wallet.core import WalletCore
from services.wallet.core.engine import _user_of


class Exchange:
    def __init__(self, **options: object) -> None:
        self.wallet = WalletCore()
        self.books = {name: MatchingCore(spec) for name, spec in self.wallet.symbols.items()}
        self.positions = PositionsCore(self.wallet.symbols, **options)  # type: ignore[arg-type]
        self.offsets: dict[str, int] = {}
        self.log: list[Message] = []
        self._queue: deque[tuple[str, Message]] = deque()

    def _offset(self, topic: str) -> Cause:
        self.offsets[topic] = self.offsets.get(topic, 0) + 1
        return Cause(topic, 0, self.offsets[topic])

    def request(self, message: Message) -> None:
        self._queue.append(("orders.requests", message))
        self._run()

    def index(self, symbol: str, price: int, ts: int) -> None:
        self._queue.append(("index.prices", IndexPriceTick(symbol=symbol, price=price, ts=ts)))
        self._run()

    def _run(self) -> None:
        while self._queue:
            topic, message = self._queue.popleft()
            self.log.append(message)
            cause = self._offset(topic)
            if topic == "orders.requests" or topic == "positions.events":
                self._route(self.wallet.apply(cause, message))
            elif topic == "orders.commands":
                book = self.books[message.symbol]  # type: ignore[attr-defined]
                for event in book.process_batch([(cause.offset, message)]):
                    self._queue.append(("matcher.events", event))
            elif topic == "matcher.events":
                self._route(self.wallet.apply(cause, message))
                self._route([o.message for o in self.positions.apply_matcher(message, cause)])  # type: ignore[arg-type]
            elif topic == "wallet.events":
                # the wallet numbers its events per user partition
                cause = Cause(topic, user_partition(_user_of(message)), cause.offset)  # type: ignore[arg-type]
                self._route([o.message for o in self.positions.apply_wallet(message, cause)])  # type: ignore[arg-type]
            elif topic == "index.prices":
                self._route([o.message for o in self.positions.apply_index(message, cause)])  # type: ignore[arg-type]

    def _route(self, messages: list[Message]) -> None:
        for m in messages:
            if isinstance(m, MatcherCommand):
                self._queue.append(("orders.commands", m))
            elif isinstance(m, WalletEvent):
                self._queue.append(("wallet.events", m))
            elif isinstance(m, PositionEvent):
                self._queue.append(("positions.events", m))
            elif isinstance(m, MatcherEvent):
                self._queue.append(("matcher.events", m))

    # -- reads --------------------------------------------------------------------------------
    def events(self, kind: type) -> list:
        return [m for m in self.log if type(m) is kind]

    def balance(self, user: int) -> int:
        return self.wallet.balance(user)

    def insurance(self) -> int:
        return self.wallet.ledger.balance(LedgerAccountKind.INSURANCE)

    def money_made(self, deposited: int) -> int:
        """Return what the users gained (balances - ``deposited``), plus what the FEES, INSURANCE
        and FUNDING accounts hold, plus the open positions' uPnL at the position engine's marks:
        zero when money is conserved (the wallet's PNL clearing account is left out, so the
        position engine's PnL must account for it)."""
        ledger = self.wallet.ledger
        users = {owner for kind, owner in ledger.balances if kind is LedgerAccountKind.USER}
        held = sum(
            ledger.balance(kind)
            for kind in (
                LedgerAccountKind.FEES,
                LedgerAccountKind.INSURANCE,
                LedgerAccountKind.FUNDING,
            )
        )
        core = self.positions
        unrealised = sum(
            core.upnl(name, p) for a in core.accounts.values() for name, p in a.positions.items()
        )
        return sum(map(self.balance, users)) - deposited + held + unrealised
