"""Builders for position-engine tests: matcher, wallet and index events with sane defaults."""

from __future__ import annotations

from libs.messages import (
    AccountUpdated,
    Cause,
    Deleverage,
    Deleveraged,
    DeleverageMatch,
    IndexPriceTick,
    LedgerAccountKind,
    LedgerLeg,
    LedgerPosted,
    MarkPriceSet,
    OrderAccepted,
    OrderExpired,
    OrderFilled,
    Side,
)
from libs.messages.enums import EndReason, OrderType, TimeInForce
from libs.read_model.positions import PositionFacts, view
from libs.symbols import default_symbols
from services.positions.core import PositionsCore

SPECS = default_symbols()
BTC = SPECS["BTC-PERP"]
NS = 1_000_000_000


def ticks(price: str, spec=BTC) -> int:
    return spec.price_to_ticks(price)


def lots(qty: str, spec=BTC) -> int:
    return spec.qty_to_lots(qty)


def usdt(amount: str) -> int:
    from libs.money import parse_cash

    return parse_cash(amount, signed=True)


class Feed:
    """Drive a core with numbered events; keeps the per-symbol matcher seq and the clock."""

    def __init__(self, core: PositionsCore | None = None, **options: object) -> None:
        self.core = core or PositionsCore(SPECS, **options)  # type: ignore[arg-type]
        self.seq: dict[str, int] = {}
        self.wallet_seq = 0
        self.trade = 0
        self.offset = 0
        self.out: list = []

    def _next(self, symbol: str) -> int:
        self.seq[symbol] = self.seq.get(symbol, 0) + 1
        return self.seq[symbol]

    def _cause(self, topic: str) -> Cause:
        self.offset += 1
        return Cause(topic, 0, self.offset)

    def matcher(self, event) -> list:
        out = self.core.apply_matcher(event, self._cause("matcher.events"))
        self.out += out
        return out

    def fill(
        self,
        buyer: int,
        seller: int,
        price: str | int,
        qty: str | int,
        *,
        symbol: str = "BTC-PERP",
        taker: str = "buy",
        liquidation: bool = False,
        taker_order_id: int = 1,
        taker_remaining: int = 0,
        maker_order_id: int = 2,
        maker_remaining: int = 0,
    ) -> list:
        spec = SPECS[symbol]
        p = price if isinstance(price, int) else ticks(price, spec)
        q = qty if isinstance(qty, int) else lots(qty, spec)
        self.trade += 1
        taker_user, maker_user = (buyer, seller) if taker == "buy" else (seller, buyer)
        return self.matcher(
            OrderFilled(
                symbol=symbol,
                seq=self._next(symbol),
                cmd_offset=0,
                trade_id=self.trade,
                price=p,
                qty=q,
                taker_order_id=taker_order_id,
                taker_user_id=taker_user,
                taker_side=Side.BUY if taker == "buy" else Side.SELL,
                taker_remaining=taker_remaining,
                maker_order_id=maker_order_id,
                maker_user_id=maker_user,
                maker_remaining=maker_remaining,
                liquidation=liquidation,
            )
        )

    def accept(
        self,
        order_id: int,
        user: int,
        side: str,
        price: str,
        qty: str,
        *,
        symbol: str = "BTC-PERP",
        tif: TimeInForce = TimeInForce.GTC,
        order_type: OrderType = OrderType.LIMIT,
    ) -> list:
        spec = SPECS[symbol]
        return self.matcher(
            OrderAccepted(
                symbol=symbol,
                seq=self._next(symbol),
                cmd_offset=0,
                order_id=order_id,
                user_id=user,
                request_id=f"r{order_id}",
                side=Side(side),
                order_type=order_type,
                tif=tif,
                qty=lots(qty, spec),
                price=ticks(price, spec),
            )
        )

    def expired(self, order_id: int, user: int, remaining: int, symbol: str = "BTC-PERP"):
        return self.matcher(
            OrderExpired(
                symbol=symbol,
                seq=self._next(symbol),
                cmd_offset=0,
                order_id=order_id,
                user_id=user,
                reason=EndReason.IOC,
                filled=0,
                remaining=remaining,
            )
        )

    def deleveraged(self, command: Deleverage, parts: list[tuple[int, int]] | None = None) -> list:
        """Answer ``command`` as the book does: by default against the engine's own positions
        (the book's, with nothing in between), else closing the (user, qty) ``parts``."""
        if parts is None:
            parts = []
            positions = self.core.markets[command.symbol].holders
            bust = positions.get(command.user_id)
            closes_long = command.side == Side.SELL
            left = min(command.qty, max(0, (bust.size if closes_long else -bust.size)))
            for user in command.counterparties:
                held = positions[user].size if user in positions else 0
                take = min(left, -held if closes_long else held)
                if take > 0 and user != command.user_id:
                    parts.append((user, take))
                    left -= take
        matches = []
        for user, qty in parts:
            self.trade += 1
            matches.append(DeleverageMatch(self.trade, user, qty))
        return self.matcher(
            Deleveraged(
                symbol=command.symbol,
                seq=self._next(command.symbol),
                cmd_offset=0,
                liquidation_id=command.liquidation_id,
                user_id=command.user_id,
                side=command.side,
                price=command.price,
                qty=sum(qty for _, qty in parts),
                matches=tuple(matches),
            )
        )

    def mark(self, price: str | int, ts: int, symbol: str = "BTC-PERP") -> list:
        spec = SPECS[symbol]
        p = price if isinstance(price, int) else ticks(price, spec)
        return self.matcher(
            MarkPriceSet(symbol=symbol, seq=self._next(symbol), cmd_offset=0, mark_price=p, ts=ts)
        )

    def index(self, price: str | int, ts: int, symbol: str = "BTC-PERP") -> list:
        spec = SPECS[symbol]
        p = price if isinstance(price, int) else ticks(price, spec)
        out = self.core.apply_index(
            IndexPriceTick(symbol=symbol, price=p, ts=ts), self._cause("index.prices")
        )
        self.out += out
        return out

    def balance(self, user: int, amount: str | int) -> list:
        self.wallet_seq += 1
        value = amount if isinstance(amount, int) else usdt(amount)
        out = self.core.apply_wallet(
            AccountUpdated(
                seq=self.wallet_seq,
                cause=Cause("x", 0, 0),
                user_id=user,
                balance=value,
                holds=0,
                available=value,
            ),
            self._cause("wallet.events"),
        )
        self.out += out
        return out

    def insurance(self, amount: str) -> list:
        self.wallet_seq += 1
        value = usdt(amount)
        return self.core.apply_wallet(
            LedgerPosted(
                seq=self.wallet_seq,
                cause=Cause("x", 0, 0),
                entry_id=self.wallet_seq,
                memo="seed insurance",
                legs=(
                    LedgerLeg(LedgerAccountKind.INSURANCE, 0, value),
                    LedgerLeg(LedgerAccountKind.OUTSIDE, 0, -value),
                ),
            ),
            self._cause("wallet.events"),
        )


def messages(out: list, kind: type) -> list:
    return [o.message for o in out if type(o.message) is kind]


def read_view(core: PositionsCore, user: int) -> dict[str, dict]:
    """The user's positions as the gateway computes them (``libs/read_model/positions.py``),
    from this engine's positions, balance and marks."""
    account = core.accounts[user]
    facts = {
        symbol: PositionFacts(position.size, position.entry, position.fees)
        for symbol, position in account.positions.items()
    }
    marks: dict[str, int | None] = {name: m.mark for name, m in core.markets.items()}
    return view(core.specs, facts, account.balance or 0, marks)
