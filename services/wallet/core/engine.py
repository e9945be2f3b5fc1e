"""The wallet core: ledger, holds, leverage, positions and the pre-trade check. No I/O, no clock.

``WalletCore.apply(cause, message)`` applies one input (a request from ``orders.requests``, a
matcher event, a position event) and returns what it causes: commands to forward to
``orders.commands`` and events for ``wallet.events``. See docs/WALLET.md.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from libs import codes
from libs.messages import (
    LIMIT_PRICED,
    STOP_PRICED,
    AccountUpdated,
    AmendOrder,
    BatchCompleted,
    CancelAll,
    CancelOrder,
    Cause,
    Deposit,
    FundingPaid,
    LedgerAccountKind,
    LedgerLeg,
    LedgerPosted,
    LeverageSet,
    LiquidationSettled,
    MarkPriceSet,
    MatcherEvent,
    Message,
    OrderAccepted,
    OrderAmended,
    OrderCancelled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderRequestRejected,
    OrderType,
    PlaceOrder,
    PositionChanged,
    PositionEvent,
    RejectRequest,
    SetLeverage,
    Side,
    WalletEvent,
    Withdraw,
    WithdrawalCompleted,
    account_users,
)
from libs.money import MAX_BALANCE, MAX_INSIDE, MAX_TRANSFER, RATE_ONE, format_cash
from libs.perpetual import ceil_div
from libs.symbols import SymbolSpec, default_symbols
from libs.topics import ALL_USERS, Shard, user_partition
from services.wallet.core.holds import Hold, Holds
from services.wallet.core.ledger import (
    FEES,
    FUNDING,
    INSURANCE,
    OUTSIDE,
    PNL,
    USER,
    Ledger,
    transfer,
)
from services.wallet.core.snapshot import VERSION, WALLET_STATE, HoldState, WalletState


class Rejected(Exception):
    """A request the pre-trade check refuses, with its Binance-style code."""

    def __init__(self, code: int, msg: str | None = None) -> None:
        super().__init__(msg or codes.MESSAGES[code])
        self.code = code
        self.msg = msg or codes.MESSAGES[code]


class WalletCore:
    """All wallet state of the users it owns, and the rules that change it."""

    def __init__(
        self, symbols: dict[str, SymbolSpec] | None = None, shard: Shard = ALL_USERS
    ) -> None:
        self.symbols = symbols if symbols is not None else default_symbols()
        # the users this core keeps: of a book's events it applies their part only
        self.shard = shard
        self.ledger = Ledger()
        self.holds = Holds()
        self.leverage: dict[int, dict[str, int]] = {}  # user -> symbol -> leverage, when set
        # user -> symbol -> (signed size in lots, entry notional)
        self.positions: dict[int, dict[str, tuple[int, int]]] = {}
        self.marks: dict[str, int] = {}  # symbol -> last MarkPriceSet
        self.last_prices: dict[str, int] = {}  # symbol -> last fill price
        self.matcher_seq: dict[str, int] = {}  # symbol -> last matcher event seq applied
        self.event_seq: dict[int, int] = {}  # wallet.events partition -> last seq produced
        # (user, client order id) -> the order id of the first PlaceOrder that used it, for ever:
        # a retry is answered with that order, whatever the balance is now (docs/WALLET.md)
        self.client_ids: dict[tuple[int, str], int] = {}
        self._out: list[Message] = []
        self._touched: dict[int, None] = {}
        self._cause = Cause("", 0, 0)

    # --- snapshot (the convention of libs/state.py) ------------------------------------------

    def to_state(self) -> WalletState:
        """Return the whole state as a canonical value (equal histories, equal states)."""
        ledger, holds = self.ledger, self.holds
        return WalletState(
            version=VERSION,
            entry_id=ledger.entry_id,
            balances=sorted((str(k), o, v) for (k, o), v in ledger.balances.items() if v),
            holds=[
                HoldState(
                    h.order_id,
                    h.user_id,
                    h.symbol,
                    h.request_id,
                    h.price,
                    h.leverage,
                    h.remaining,
                    h.filled,
                    h.amount,
                )
                for _, h in sorted(holds.by_order.items())
            ],
            leverage=sorted((u, s, v) for u, m in self.leverage.items() for s, v in m.items()),
            positions=sorted(
                (u, s, size, entry)
                for u, m in self.positions.items()
                for s, (size, entry) in m.items()
            ),
            marks=sorted(self.marks.items()),
            last_prices=sorted(self.last_prices.items()),
            matcher_seq=sorted(self.matcher_seq.items()),
            event_seq=sorted(self.event_seq.items()),
            client_ids=sorted((u, c, o) for (u, c), o in self.client_ids.items()),
        )

    @classmethod
    def from_state(
        cls, s: WalletState, symbols: dict[str, SymbolSpec] | None = None, shard: Shard = ALL_USERS
    ) -> WalletCore:
        """Return a core holding ``s``."""
        core = cls(symbols, shard)
        ledger, holds = core.ledger, core.holds
        ledger.entry_id = s.entry_id
        ledger.balances = {(LedgerAccountKind(k), o): v for k, o, v in s.balances}
        for h in s.holds:
            holds.by_order[h.order_id] = Hold(*msgspec.structs.astuple(h))
            holds.by_user[h.user_id] = holds.by_user.get(h.user_id, 0) + h.amount
        holds.by_user = {u: v for u, v in holds.by_user.items() if v}
        for u, sym, lev in s.leverage:
            core.leverage.setdefault(u, {})[sym] = lev
        for u, sym, size, entry in s.positions:
            core.positions.setdefault(u, {})[sym] = (size, entry)
        core.marks = dict(s.marks)
        core.last_prices = dict(s.last_prices)
        core.matcher_seq = dict(s.matcher_seq)
        core.event_seq = dict(s.event_seq)
        core.client_ids = {(u, c): o for u, c, o in s.client_ids}
        return core

    def snapshot(self) -> bytes:
        return WALLET_STATE.encode(self.to_state())

    @classmethod
    def restore(
        cls, data: bytes, symbols: dict[str, SymbolSpec] | None = None, shard: Shard = ALL_USERS
    ) -> WalletCore:
        return cls.from_state(WALLET_STATE.decode(data), symbols, shard)

    def digest(self) -> str:
        return WALLET_STATE.digest(self.to_state())

    # --- the account picture ----------------------------------------------------------------

    def balance(self, user_id: int) -> int:
        return self.ledger.balances.get((USER, user_id), 0)

    def leverage_of(self, user_id: int, symbol: str) -> int:
        chosen = self.leverage.get(user_id, {}).get(symbol)
        if chosen is not None:
            return chosen
        return self.symbols[symbol].default_leverage

    def _position_value(self, symbol: str, size: int, entry: int) -> int:
        """Notional of a position at mark (at entry while the symbol has no mark)."""
        mark = self.marks.get(symbol)
        return entry if mark is None else self.symbols[symbol].notional(mark, abs(size))

    def unrealised_pnl(self, user_id: int) -> int:
        total = 0
        for symbol, (size, entry) in self.positions.get(user_id, {}).items():
            value = self._position_value(symbol, size, entry)
            total += value - entry if size > 0 else entry - value
        return total

    def position_margin(self, user_id: int, override: tuple[str, int] | None = None) -> int:
        """Initial margin of the user's positions: notional at mark / leverage, rounded up."""
        total = 0
        for symbol, (size, entry) in self.positions.get(user_id, {}).items():
            lev = self.leverage_of(user_id, symbol)
            if override is not None and override[0] == symbol:
                lev = override[1]
            total += ceil_div(self._position_value(symbol, size, entry), lev)
        return total

    def available(self, user_id: int) -> int:
        """Balance + uPnL - position initial margin - holds of open orders."""
        return (
            self.balance(user_id)
            + self.unrealised_pnl(user_id)
            - self.position_margin(user_id)
            - self.holds.of_user(user_id)
        )

    def withdrawable(self, user_id: int) -> int:
        """What may leave: like available, but unrealised profit does not count."""
        return (
            self.balance(user_id)
            + min(0, self.unrealised_pnl(user_id))
            - self.position_margin(user_id)
            - self.holds.of_user(user_id)
        )

    def users(self) -> list[int]:
        """Every user with a balance, a hold, a position or a leverage setting, sorted."""
        found = {owner for (kind, owner) in self.ledger.balances if kind is USER}
        found.update(self.holds.by_user, self.positions, self.leverage)
        return sorted(found)

    # --- applying inputs --------------------------------------------------------------------

    def apply(self, cause: Cause, message: Message) -> list[Message]:
        """Apply one input; return the commands to forward and the wallet events it caused."""
        out: list[Message] = []
        self._out = out
        self._touched = {}
        self._cause = cause
        handler = _HANDLERS.get(type(message))
        if handler is None:
            return out
        request_id = handler(self, message)
        user = getattr(message, "user_id", None)
        # the fill (or mark) behind a position event: the read side's watermark of what the
        # account has settled (docs/READ-MODEL.md, "Read-your-writes")
        origin = message.cause if isinstance(message, PositionEvent) else None
        for user_id in self._touched:
            upnl, margin = self.unrealised_pnl(user_id), self.position_margin(user_id)
            balance, holds = self.balance(user_id), self.holds.of_user(user_id)
            self._emit(
                AccountUpdated(
                    seq=0,
                    cause=cause,
                    user_id=user_id,
                    balance=balance,
                    holds=holds,
                    available=balance + upnl - margin - holds,
                    request_id=request_id if user == user_id else None,
                    margin=margin,
                    upnl=upnl,
                    origin=origin if user == user_id else None,
                )
            )
        return out

    def _emit(self, event: WalletEvent) -> None:
        partition = user_partition(_user_of(event), self.shard.partitions)
        seq = self.event_seq.get(partition, 0) + 1
        self.event_seq[partition] = seq
        self._out.append(msgspec.structs.replace(event, seq=seq))

    def _post(self, memo: str, legs: tuple[LedgerLeg, ...]) -> None:
        legs = tuple(leg for leg in legs if leg.amount)
        if not legs:
            return
        entry_id = self.ledger.post(legs)
        for leg in legs:
            if leg.kind is USER:
                self._touched[leg.owner] = None
        self._emit(LedgerPosted(seq=0, cause=self._cause, entry_id=entry_id, memo=memo, legs=legs))

    def _reject(self, request, error: Rejected, original_order_id: int | None = None) -> None:
        """Answer a refused request: an order's through its book (``RejectRequest``), so that
        every order answer is on ``matcher.events``; any other on ``wallet.events``."""
        answer = {
            "request_id": request.request_id,
            "user_id": request.user_id,
            "order_id": getattr(request, "order_id", None),
            "code": error.code,
            "msg": error.msg,
            "original_order_id": original_order_id,
        }
        if type(request) in _ORDER_REQUESTS and request.symbol in self.symbols:
            self._out.append(RejectRequest(symbol=request.symbol, ts=request.ts, **answer))
        else:
            self._emit(OrderRequestRejected(seq=0, cause=self._cause, **answer))

    # --- requests (orders.requests) ---------------------------------------------------------

    def _spec(self, symbol: str) -> SymbolSpec:
        spec = self.symbols.get(symbol)
        if spec is None:
            raise Rejected(codes.INVALID_SYMBOL, f"Invalid symbol {symbol!r}.")
        return spec

    def _request(self, request) -> str:
        try:
            _REQUESTS[type(request)](self, request)
        except Rejected as error:
            self._reject(request, error)
        return request.request_id

    def _hold_price(self, spec: SymbolSpec, cmd: PlaceOrder) -> int:
        """Price the order's margin: its limit price, or the edge of the market protection band."""
        kind = cmd.order_type
        if kind in LIMIT_PRICED:
            if cmd.price is None:
                raise Rejected(codes.MANDATORY_PARAM)
            if cmd.price <= 0:
                raise Rejected(codes.INVALID_PARAM, "Price must be positive.")
            return cmd.price
        if kind is OrderType.LIQUIDATION:
            raise Rejected(codes.INVALID_ORDER_TYPE)
        reference = None
        if kind in STOP_PRICED:  # a stop-limit returned above: it is margined at its limit
            reference = cmd.stop_price
        elif kind is OrderType.TRAILING_STOP:
            reference = cmd.activation_price
        if reference is None or reference <= 0:
            reference = self.marks.get(cmd.symbol) or self.last_prices.get(cmd.symbol)
        if reference is None:
            raise Rejected(
                codes.NEW_ORDER_REJECTED,
                f"No mark or last price for {cmd.symbol} yet: a market order cannot be margined.",
            )
        bound = spec.market_take_bound
        if cmd.side is Side.BUY:
            return ceil_div(reference * (RATE_ONE + bound), RATE_ONE)
        return max(1, reference * (RATE_ONE - bound) // RATE_ONE)

    @staticmethod
    def required(spec: SymbolSpec, price: int, lots: int, leverage: int) -> int:
        """Hold for ``lots`` at ``price``: notional / leverage + the taker fee, both rounded up."""
        notional = spec.notional(price, lots)
        return ceil_div(notional, leverage) + spec.fee(notional, maker=False)

    def _place(self, cmd: PlaceOrder) -> None:
        coid = cmd.client_order_id
        if coid is not None:
            original = self.client_ids.setdefault((cmd.user_id, coid), cmd.order_id)
            if original != cmd.order_id:
                return self._duplicate(cmd, original)
        spec = self._spec(cmd.symbol)
        if cmd.qty <= 0 and not cmd.close_position:
            raise Rejected(codes.INVALID_PARAM, "Quantity must be positive.")
        if cmd.order_id in self.holds.by_order:
            raise Rejected(codes.NEW_ORDER_REJECTED, f"Order id {cmd.order_id} is already open.")
        if cmd.reduce_only or cmd.close_position:
            self._out.append(cmd)  # reduces a position: needs no new margin
            return
        leverage = cmd.leverage
        if leverage is None:
            leverage = self.leverage_of(cmd.user_id, cmd.symbol)
        elif not 1 <= leverage <= spec.max_leverage:
            raise Rejected(codes.INVALID_LEVERAGE, f"Leverage {leverage} is not valid.")
        price = self._hold_price(spec, cmd)
        amount = self.required(spec, price, cmd.qty, leverage)
        if amount > self.available(cmd.user_id):
            raise Rejected(codes.MARGIN_INSUFFICIENT)
        self.holds.open(
            Hold(
                cmd.order_id,
                cmd.user_id,
                cmd.symbol,
                cmd.request_id,
                price,
                leverage,
                cmd.qty,
                0,
                amount,
            )
        )
        # no AccountUpdated yet: it follows the book's answer (``_accepted``), in the turn
        # that also settles what matching did, so both go out in one produce request
        self._out.append(cmd)

    def _duplicate(self, cmd: PlaceOrder, original: int) -> None:
        """Answer a retry with the order that holds its client id: no check, no hold, no
        forwarding (the matcher's own -4015 stays a second line of defence)."""
        msg = f"Duplicate client order id; original order_id={original}"
        self._reject(cmd, Rejected(codes.DUPLICATE_CLIENT_ORDER_ID, msg), original)

    def _amend(self, cmd: AmendOrder) -> None:
        spec = self._spec(cmd.symbol)
        hold = self.holds.by_order.get(cmd.order_id)
        if hold is not None and hold.user_id == cmd.user_id and hold.symbol == cmd.symbol:
            price = cmd.price if cmd.price is not None else hold.price
            remaining = cmd.qty - hold.filled if cmd.qty is not None else hold.remaining
            if price > 0 and remaining > 0:  # else the matcher rejects it
                needed = self.required(spec, price, remaining, hold.leverage)
                extra = needed - hold.amount
                if extra > 0:
                    if extra > self.available(cmd.user_id):
                        raise Rejected(codes.MARGIN_INSUFFICIENT)
                    self.holds.set_amount(hold, needed)  # told with the book's answer
        self._out.append(cmd)

    def _forward(self, cmd: CancelOrder | CancelAll) -> None:
        self._spec(cmd.symbol)
        self._out.append(cmd)

    def _deposit(self, cmd: Deposit) -> None:
        _check_transfer(cmd.amount)
        if self.balance(cmd.user_id) + cmd.amount > MAX_BALANCE:
            raise Rejected(
                codes.BALANCE_LIMIT,
                f"Deposit refused: the balance would pass {format_cash(MAX_BALANCE)} USDT.",
            )
        if -self.ledger.balance(OUTSIDE) + cmd.amount > MAX_INSIDE:
            raise Rejected(
                codes.BALANCE_LIMIT,
                "Deposit refused: the exchange would hold more than "
                f"{format_cash(MAX_INSIDE)} USDT.",
            )
        self._post(f"deposit {cmd.request_id}", transfer(OUTSIDE, 0, USER, cmd.user_id, cmd.amount))

    def _withdraw(self, cmd: Withdraw) -> None:
        _check_transfer(cmd.amount)
        if cmd.amount > self.withdrawable(cmd.user_id):
            raise Rejected(codes.BALANCE_INSUFFICIENT)
        self._post(
            f"withdrawal {cmd.request_id}", transfer(USER, cmd.user_id, OUTSIDE, 0, cmd.amount)
        )
        self._emit(
            WithdrawalCompleted(
                seq=0,
                cause=self._cause,
                request_id=cmd.request_id,
                user_id=cmd.user_id,
                amount=cmd.amount,
            )
        )

    def _set_leverage(self, cmd: SetLeverage) -> None:
        spec = self._spec(cmd.symbol)
        if not 1 <= cmd.leverage <= spec.max_leverage:
            raise Rejected(codes.INVALID_LEVERAGE, f"Leverage {cmd.leverage} is not valid.")
        position = self.positions.get(cmd.user_id, {}).get(cmd.symbol)
        if position is not None:
            value = self._position_value(cmd.symbol, *position)
            if cmd.leverage > spec.bracket_for(value).max_leverage:
                raise Rejected(codes.MAX_POSITION_AT_LEVERAGE)
            before = self.position_margin(cmd.user_id)
            after = self.position_margin(cmd.user_id, (cmd.symbol, cmd.leverage))
            if after > before and self.available(cmd.user_id) - (after - before) < 0:
                raise Rejected(codes.MARGIN_INSUFFICIENT)
        self.leverage.setdefault(cmd.user_id, {})[cmd.symbol] = cmd.leverage
        self._touched[cmd.user_id] = None
        self._emit(
            LeverageSet(
                seq=0,
                cause=self._cause,
                request_id=cmd.request_id,
                user_id=cmd.user_id,
                symbol=cmd.symbol,
                leverage=cmd.leverage,
            )
        )

    # --- matcher events ---------------------------------------------------------------------

    def _matcher(self, event: MatcherEvent) -> str | None:
        if event.symbol not in self.symbols:
            return None
        if event.seq <= self.matcher_seq.get(event.symbol, 0):
            return None  # applied before
        self.matcher_seq[event.symbol] = event.seq
        handler = _MATCHER.get(type(event))
        if handler is not None:
            handler(self, event)
        for user in account_users(event):  # told even when nothing moved: the read side
            if self.shard.owns(user):  # counts on an answer for each (docs/READ-MODEL.md)
                self._touched[user] = None
        return None

    def _filled(self, event: OrderFilled) -> None:
        spec = self.symbols[event.symbol]
        self.last_prices[event.symbol] = event.price
        notional = spec.notional(event.price, event.qty)
        self._release_fill(event.taker_order_id, event.qty, event.taker_remaining)
        self._release_fill(event.maker_order_id, event.qty, event.maker_remaining)
        if self.shard.owns(event.taker_user_id):
            self._post(
                f"taker fee trade {event.symbol}#{event.trade_id}",
                transfer(USER, event.taker_user_id, FEES, 0, spec.fee(notional, maker=False)),
            )
        if self.shard.owns(event.maker_user_id):
            self._post(
                f"maker fee trade {event.symbol}#{event.trade_id}",
                transfer(USER, event.maker_user_id, FEES, 0, spec.fee(notional, maker=True)),
            )

    def _release_fill(self, order_id: int, qty: int, remaining: int) -> None:
        """Release the filled share of a hold (rounded down); the last fill releases the rest."""
        hold = self.holds.by_order.get(order_id)
        if hold is None:
            return
        self._touched[hold.user_id] = None
        hold.filled += qty
        if remaining <= 0:
            self.holds.close(hold)
            return
        before = remaining + qty
        keep = hold.amount - hold.amount * qty // before
        hold.remaining = remaining
        self.holds.set_amount(hold, keep)

    def _ended(self, event: OrderCancelled | OrderExpired) -> None:
        hold = self.holds.by_order.get(event.order_id)
        if hold is not None:
            self._touched[hold.user_id] = None
            self.holds.close(hold)

    def _accepted(self, event: OrderAccepted) -> None:
        hold = self.holds.by_order.get(event.order_id)
        if hold is not None:  # the hold taken when the order came: now told
            self._touched[hold.user_id] = None

    def _rejected(self, event: OrderRejected) -> None:
        if event.order_id is None or event.pre_trade:
            return  # a refusal of ours changed no hold
        hold = self.holds.by_order.get(event.order_id)
        if hold is None:
            return
        self._touched[hold.user_id] = None
        if event.request_id == hold.request_id:
            self.holds.close(hold)  # the placement itself was refused
        else:  # a refused amend (or cancel): drop any extra reserved for it
            spec = self.symbols[hold.symbol]
            current = self.required(spec, hold.price, hold.remaining, hold.leverage)
            self.holds.set_amount(hold, min(hold.amount, current))

    def _amended(self, event: OrderAmended) -> None:
        hold = self.holds.by_order.get(event.order_id)
        if hold is None:
            return
        spec = self.symbols[hold.symbol]
        if event.price is not None:
            hold.price = event.price
        hold.remaining = max(0, event.qty - hold.filled)
        self._touched[hold.user_id] = None
        self.holds.set_amount(hold, self.required(spec, hold.price, hold.remaining, hold.leverage))

    def _mark(self, event: MarkPriceSet) -> None:
        self.marks[event.symbol] = event.mark_price

    # --- position events --------------------------------------------------------------------

    def _position_changed(self, event: PositionChanged) -> None:
        if event.symbol not in self.symbols:
            return
        book = self.positions.setdefault(event.user_id, {})
        if event.size:
            book[event.symbol] = (event.size, event.entry_notional)
        else:
            book.pop(event.symbol, None)
            if not book:
                del self.positions[event.user_id]
        self._touched[event.user_id] = None
        self._post(
            f"realised pnl {event.symbol}#{event.trade_id}",
            transfer(PNL, 0, USER, event.user_id, event.realised_pnl),
        )

    def _funding(self, event: FundingPaid) -> None:
        self._post(
            f"funding {event.symbol}@{event.funding_time}",
            transfer(FUNDING, 0, USER, event.user_id, event.amount),
        )

    def _liquidation(self, event: LiquidationSettled) -> None:
        self._touched[event.user_id] = None
        self._post(
            f"liquidation {event.symbol}",
            transfer(USER, event.user_id, INSURANCE, 0, event.insurance_delta),
        )


def _check_transfer(amount: int) -> None:
    """Refuse a deposit or withdrawal amount outside 1 unit..MAX_TRANSFER."""
    if amount <= 0:
        raise Rejected(codes.INVALID_PARAM, "Amount must be positive.")
    if amount > MAX_TRANSFER:
        raise Rejected(
            codes.INVALID_PARAM, f"Amount above the maximum {format_cash(MAX_TRANSFER)} USDT."
        )


def _user_of(event: WalletEvent) -> int:
    user_id = getattr(event, "user_id", None)
    if user_id is not None:
        return user_id
    for leg in getattr(event, "legs", ()):
        if leg.kind is USER:
            return leg.owner
    return 0


def _none(core: WalletCore, event) -> None:
    return None


# Dispatch tables: each handler takes the message of the type it is keyed by.
_REQUESTS: dict[type[Message], Callable[[WalletCore, Any], None]] = {
    PlaceOrder: WalletCore._place,
    AmendOrder: WalletCore._amend,
    CancelOrder: WalletCore._forward,
    CancelAll: WalletCore._forward,
    Deposit: WalletCore._deposit,
    Withdraw: WalletCore._withdraw,
    SetLeverage: WalletCore._set_leverage,
}

_ORDER_REQUESTS = (PlaceOrder, AmendOrder, CancelOrder, CancelAll)
"""The requests a book answers, refusals included."""

_MATCHER: dict[type[Message], Callable[[WalletCore, Any], None]] = {
    OrderAccepted: WalletCore._accepted,
    OrderFilled: WalletCore._filled,
    OrderCancelled: WalletCore._ended,
    OrderExpired: WalletCore._ended,
    OrderRejected: WalletCore._rejected,
    OrderAmended: WalletCore._amended,
    MarkPriceSet: WalletCore._mark,
    BatchCompleted: _none,
}

_HANDLERS: dict[type[Message], Callable[[WalletCore, Any], str | None]] = {
    kind: WalletCore._request for kind in _REQUESTS
}
_HANDLERS.update(
    {
        kind: WalletCore._matcher
        for kind in (
            *_MATCHER,
            *(c for c in MatcherEvent.__subclasses__() if c not in _MATCHER),
        )
    }
)
_HANDLERS.update(
    {
        PositionChanged: lambda core, e: core._position_changed(e),
        FundingPaid: lambda core, e: core._funding(e),
        LiquidationSettled: lambda core, e: core._liquidation(e),
    }
)
