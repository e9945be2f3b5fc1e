"""The matching core of one symbol: commands in, events out, no I/O, no clock, no randomness.

``MatchingCore.process_batch`` applies a batch of ``(offset, command)`` pairs from the symbol's
``orders.commands`` partition and returns the matcher events they caused. See docs/MATCHING.md.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import msgspec

from libs import codes
from libs.messages import (
    LIMIT_PRICED,
    STOP_PRICED,
    AmendOrder,
    BatchCompleted,
    CancelAll,
    CancelOrder,
    Deleverage,
    Deleveraged,
    DeleverageMatch,
    EndReason,
    HaltSymbol,
    LiquidationOrder,
    MarkPriceSet,
    MarkPriceTick,
    MatcherCommand,
    MatcherEvent,
    OrderAccepted,
    OrderAmended,
    OrderCancelled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderTriggered,
    OrderType,
    PlaceOrder,
    RejectRequest,
    ResumeSymbol,
    SelfTradePrevention,
    Side,
    SymbolHalted,
    SymbolResumed,
    TimeInForce,
    TriggerBy,
)
from libs.money import RATE_ONE
from libs.symbols import SymbolSpec
from services.matcher.core.book import BookSide
from services.matcher.core.orders import Order
from services.matcher.core.snapshot import MATCHING_STATE, VERSION, MatchingState, OrderState
from services.matcher.core.stops import fires, immediately_triggers

BUY, SELL = Side.BUY, Side.SELL
GTC, IOC, FOK, GTX = TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK, TimeInForce.GTX
LIMIT, MARKET = OrderType.LIMIT, OrderType.MARKET
STP_NONE = SelfTradePrevention.NONE
EXPIRES_MAKER = (SelfTradePrevention.EXPIRE_MAKER, SelfTradePrevention.EXPIRE_BOTH)
EXPIRES_TAKER = (SelfTradePrevention.EXPIRE_TAKER, SelfTradePrevention.EXPIRE_BOTH)
MIN_CALLBACK_RATE = RATE_ONE // 1000  # 0.1%
MAX_CALLBACK_RATE = RATE_ONE // 10  # 10%
NO_LIMIT = -(1 << 62)  # a limit key every level crosses: a market order without a band

FENCES = (MarkPriceTick, HaltSymbol, ResumeSymbol)
"""Commands that are applied exactly where they stand in the log, splitting a batch in two."""

SYSTEM = (LiquidationOrder, Deleverage)
"""The position engine's commands on a bankrupt position: first in a batch, outside any
user's own order (docs/MATCHING.md, Batches)."""


def batch_class(cmd: MatcherCommand) -> int:
    """Return a command's own priority inside a batch: lower goes first. A user's command may
    go later than this, never earlier: after that user's earlier commands (``_ordered``)."""
    kind = type(cmd)
    if kind is PlaceOrder:
        return 2 if cast(PlaceOrder, cmd).order_type is MARKET else 3
    if kind is LiquidationOrder or kind is Deleverage:
        return 0
    return 1  # cancel, cancel-all, amend


def _with_enums(cmd: PlaceOrder) -> PlaceOrder:
    """Return ``cmd`` with enum members where a caller passed plain strings (decoded ones
    already hold members; the core compares members by identity)."""
    return msgspec.structs.replace(
        cmd,
        side=Side(cmd.side),
        order_type=OrderType(cmd.order_type),
        tif=TimeInForce(cmd.tif),
        stp=SelfTradePrevention(cmd.stp),
        trigger_by=TriggerBy(cmd.trigger_by),
    )


class MatchingCore:
    """Price-time priority order book of one symbol, with its stops, filters and positions."""

    __slots__ = (
        "_band_high",
        "_band_low",
        "_handlers",
        "_max_open",
        "_max_qty",
        "_min_price_qty",
        "_min_qty",
        "_out",
        "asks",
        "bids",
        "client_ids",
        "halt_reason",
        "halted",
        "last_offset",
        "last_price",
        "mark_price",
        "mark_ts",
        "orders",
        "positions",
        "reduce_only",
        "seq",
        "spec",
        "stops",
        "symbol",
        "trade_id",
        "user_orders",
    )

    def __init__(self, spec: SymbolSpec) -> None:
        self.spec = spec
        self.symbol = spec.name
        # the symbol filters, as plain attributes for the hot path
        self._min_qty, self._max_qty = spec.min_qty, spec.max_qty
        # price * qty * cash_per_tick_lot >= min_notional  <=>  price * qty >= _min_price_qty
        self._min_price_qty = -(-spec.min_notional // spec.cash_per_tick_lot)
        self._max_open = spec.max_open_orders
        # the percent-price band, for the short path; open until a mark (a price above this
        # small-int bound, which keeps the comparison cheap, just takes the checked path)
        self._band_low, self._band_high = 0, (1 << 30) - 1
        self.bids = BookSide(True)
        self.asks = BookSide(False)
        self.orders: dict[int, Order] = {}  # resting in the book
        self.stops: dict[int, Order] = {}  # waiting for their trigger, in placement order
        self.user_orders: dict[int, dict[int, None]] = {}  # user -> open order ids (both kinds)
        self.reduce_only: dict[int, Order] = {}  # resting reduce-only orders
        self.client_ids: dict[tuple[int, str], int] = {}  # (user, client order id) -> order id
        self.positions: dict[int, int] = {}  # user -> net lots from this core's fills
        self.seq = 0
        self.last_offset = -1
        self.trade_id = 0
        self.last_price: int | None = None
        self.mark_price: int | None = None
        self.mark_ts = 0  # the ts of the tick that set it
        self.halted = False
        self.halt_reason = ""
        self._out: list[MatcherEvent] = []
        # each handler takes the command of the type it is keyed by
        self._handlers: dict[type[MatcherCommand], Callable[[int, Any], None]] = {
            PlaceOrder: self._place,
            CancelOrder: self._cancel,
            CancelAll: self._cancel_all,
            AmendOrder: self._amend,
            LiquidationOrder: self._liquidate,
            Deleverage: self._deleverage,
            MarkPriceTick: self._mark,
            HaltSymbol: self._halt,
            ResumeSymbol: self._resume,
            RejectRequest: self._refused,
        }

    # --- public API -------------------------------------------------------------------------

    def process_batch(self, batch: list[tuple[int, MatcherCommand]]) -> list[MatcherEvent]:
        """Apply one batch in priority order and return its events, ending with BatchCompleted.

        Commands at or below ``last_offset`` were applied before and are skipped, so a
        replayed batch is a no-op. Offsets inside a batch must increase.
        """
        if len(batch) == 1:  # the common case at low load: no sorting, no filtering
            offset, cmd = batch[0]
            if offset <= self.last_offset:
                return []
            out: list[MatcherEvent] = []
            self._out = out
            trades = self.trade_id
            if type(cmd) is PlaceOrder:
                self._place(offset, cmd)
            else:
                self._handlers[type(cmd)](offset, cmd)
            if (self.reduce_only or self.stops) and self.trade_id != trades:
                self._after_trades(offset)
            self.last_offset = offset
            self.seq = seq = self.seq + 1
            # positional, in field order: symbol, seq, cmd_offset, first_offset, size, ts
            out.append(BatchCompleted(self.symbol, seq, offset, offset, 1, cmd.ts))
            return out
        applied = self.last_offset  # a local: a comprehension using self would make it a cell
        fresh = [item for item in batch if item[0] > applied]
        if not fresh:
            return []
        out = []
        self._out = out
        for offset, cmd in self._ordered(fresh):
            self._apply(offset, cmd)
        first, last = fresh[0][0], fresh[-1][0]
        self.last_offset = last
        self.seq = seq = self.seq + 1
        ts = max([item[1].ts for item in fresh])  # the batch's time: its latest command's
        out.append(BatchCompleted(self.symbol, seq, last, first, len(fresh), ts))
        return out

    def depth(self, levels: int) -> tuple[int, list[tuple[int, int]], list[tuple[int, int]]]:
        """Return (seq, bids, asks): up to ``levels`` aggregated [(price, lots)], best first."""
        return self.seq, self.bids.depth(levels), self.asks.depth(levels)

    # --- snapshot (the convention of libs/state.py) ------------------------------------------

    def to_state(self) -> MatchingState:
        """Return the whole state as a canonical value (equal histories, equal states)."""
        return MatchingState(
            version=VERSION,
            symbol=self.symbol,
            seq=self.seq,
            last_offset=self.last_offset,
            trade_id=self.trade_id,
            last_price=self.last_price,
            mark_price=self.mark_price,
            mark_ts=self.mark_ts,
            halted=self.halted,
            halt_reason=self.halt_reason,
            book=[_order_state(o) for side in (self.bids, self.asks) for o in side.orders()],
            stops=[_order_state(o) for o in self.stops.values()],
            positions=sorted((u, p) for u, p in self.positions.items() if p),
            client_ids=sorted((u, c, o) for (u, c), o in self.client_ids.items()),
        )

    @classmethod
    def from_state(cls, spec: SymbolSpec, state: MatchingState) -> MatchingCore:
        """Return a core of ``spec`` holding ``state``."""
        if state.symbol != spec.name:
            raise ValueError(f"a snapshot of {state.symbol}, not {spec.name}")
        core = cls(spec)
        core.seq, core.last_offset, core.trade_id = state.seq, state.last_offset, state.trade_id
        core.last_price = state.last_price
        if state.mark_price is not None:
            core.set_mark(state.mark_price)
        core.mark_ts = state.mark_ts
        core.halted, core.halt_reason = state.halted, state.halt_reason
        for saved in state.book:
            core._rest(_order(saved))
        for saved in state.stops:
            order = _order(saved)
            core.stops[order.order_id] = order
            core._index(order)
        core.positions = dict(state.positions)
        core.client_ids = {(u, c): o for u, c, o in state.client_ids}
        return core

    def snapshot(self) -> bytes:
        return MATCHING_STATE.encode(self.to_state())

    @classmethod
    def restore(cls, spec: SymbolSpec, data: bytes) -> MatchingCore:
        return cls.from_state(spec, MATCHING_STATE.decode(data))

    def digest(self) -> str:
        return MATCHING_STATE.digest(self.to_state())

    def open_order(self, order_id: int) -> Order | None:
        """Return an open order (resting or waiting for its trigger), if any."""
        return self.orders.get(order_id) or self.stops.get(order_id)

    # --- batching ---------------------------------------------------------------------------

    @staticmethod
    def _ordered(batch):
        """Yield a batch's commands in the order they apply: fences where they stand; between
        two fences the system's commands, then by class (cancels, markets, the rest), in log
        order inside a class, except that a user's command never goes before that user's
        earlier one: it takes the class of the user's previous command when that is later.
        So each user's commands keep their log order (a cancel never overtakes the place it
        names) and the classes order the users' flows against each other."""
        buckets: tuple[list, list, list, list] = ([], [], [], [])
        latest: dict[int, int] = {}  # user -> the class their last command went in
        for item in batch:
            cmd = item[1]
            kind = type(cmd)
            if kind is PlaceOrder:
                rank = 2 if cmd.order_type is MARKET else 3
            elif kind in FENCES:
                for bucket in buckets:
                    yield from bucket
                    bucket.clear()
                latest.clear()
                yield item
                continue
            elif kind in SYSTEM:
                buckets[0].append(item)
                continue
            else:
                rank = 1
            user = cmd.user_id
            before = latest.get(user, 0)
            if before > rank:
                rank = before
            else:
                latest[user] = rank
            buckets[rank].append(item)
        for bucket in buckets:
            yield from bucket

    def _apply(self, offset: int, cmd: MatcherCommand) -> None:
        trades = self.trade_id
        self._handlers[type(cmd)](offset, cmd)
        if self.trade_id != trades and (self.reduce_only or self.stops):
            self._after_trades(offset)

    def _after_trades(self, offset: int) -> None:
        """Expire reduce-only orders the trades made useless; fire stops they triggered."""
        if self.reduce_only:
            self._enforce_reduce_only(offset)
        if self.stops and not self.halted:
            self._run_triggers(offset)

    # --- events -----------------------------------------------------------------------------

    def _reject(self, offset, cmd, order_id, code: int, msg: str, original=None, pre_trade=False):
        self.seq += 1
        self._out.append(
            OrderRejected(
                symbol=self.symbol,
                seq=self.seq,
                cmd_offset=offset,
                request_id=getattr(cmd, "request_id", ""),
                user_id=getattr(cmd, "user_id", 0),
                order_id=order_id,
                code=code,
                msg=msg,
                original_order_id=original,
                pre_trade=pre_trade,
            )
        )

    def _expire(self, offset: int, order: Order, reason: EndReason) -> None:
        self.seq += 1
        self._out.append(
            OrderExpired(
                symbol=self.symbol,
                seq=self.seq,
                cmd_offset=offset,
                order_id=order.order_id,
                user_id=order.user_id,
                reason=reason,
                filled=order.filled,
                remaining=order.remaining,
            )
        )

    def _cancelled(self, offset, order: Order, request_id: str, reason: EndReason) -> None:
        self.seq += 1
        self._out.append(
            OrderCancelled(
                symbol=self.symbol,
                seq=self.seq,
                cmd_offset=offset,
                order_id=order.order_id,
                user_id=order.user_id,
                request_id=request_id,
                reason=reason,
                filled=order.filled,
                remaining=order.remaining,
            )
        )

    # --- index upkeep -----------------------------------------------------------------------

    def _index(self, order: Order) -> None:
        ids = self.user_orders.get(order.user_id)
        if ids is None:
            self.user_orders[order.user_id] = {order.order_id: None}
        else:
            ids[order.order_id] = None

    def _unindex(self, order: Order) -> None:
        ids = self.user_orders[order.user_id]
        del ids[order.order_id]
        if not ids:
            del self.user_orders[order.user_id]

    def _remove_open(self, order: Order) -> None:
        """Take an open order out of the book (or the stops) and every index."""
        oid = order.order_id
        if oid in self.orders:
            (self.bids if order.is_buy else self.asks).remove(order)
            del self.orders[oid]
            self.reduce_only.pop(oid, None)
        else:
            del self.stops[oid]
        self._unindex(order)

    def _rest(self, order: Order) -> None:
        side = self.bids if order.is_buy else self.asks
        price: int = order.price  # type: ignore[assignment]  # resting: priced (no cast: hot path)
        level = side.levels.get(price)
        if level is None:
            side.add(order)  # a new level: let the side insert its price key
        else:
            level.append(order)
        oid = order.order_id
        self.orders[oid] = order
        ids = self.user_orders.get(order.user_id)
        if ids is None:
            self.user_orders[order.user_id] = {oid: None}
        else:
            ids[oid] = None
        if order.reduce_only:
            self.reduce_only[order.order_id] = order

    # --- filters ----------------------------------------------------------------------------

    def _band(self, bound: int) -> tuple[int, int]:
        """Return the (lowest, highest) price within ``bound`` (a rate) of the mark price."""
        mark = cast(int, self.mark_price)  # a band is asked for only once a mark is set
        return -((-mark * (RATE_ONE - bound)) // RATE_ONE), mark * (RATE_ONE + bound) // RATE_ONE

    def _filter(self, price: int | None, qty: int, notional_price: int | None, exempt: bool):
        """Return (code, msg) of the first symbol filter the order fails, or None."""
        spec = self.spec
        if qty < spec.min_qty:
            return codes.FILTER_LOT_SIZE, "Filter failure: LOT_SIZE (qty below min_qty)"
        if qty > spec.max_qty:
            return codes.QTY_ABOVE_MAX, "Quantity greater than max quantity"
        if price is not None and self.mark_price is not None:
            low, high = self._band(spec.price_band)
            if not low <= price <= high:
                band = f"[{spec.ticks_to_price(low)}, {spec.ticks_to_price(high)}]"
                return codes.PERCENT_PRICE, f"Limit price outside {band} (PERCENT_PRICE)"
        if (
            notional_price is not None
            and not exempt
            and notional_price * qty * spec.cash_per_tick_lot < spec.min_notional
        ):
            return codes.MIN_NOTIONAL, "Order's notional must be no smaller than min_notional"
        return None

    def _reducible(self, user_id: int, is_buy: bool) -> int:
        """Return how many lots a ``is_buy`` order of the user can reduce its position by."""
        position = self.positions.get(user_id, 0)
        return -position if is_buy else position

    # --- commands ---------------------------------------------------------------------------

    def _place(self, offset: int, cmd: PlaceOrder) -> None:
        """Place an order. A plain order (a GTC limit without STP, reduce-only or
        close-position) that passes every filter takes this short path; everything else goes
        through ``_place_checked``, which applies the same rules and names the broken one."""
        price, qty = cmd.price, cmd.qty  # (pairs: a four-way unpack would build a tuple)
        uid, oid = cmd.user_id, cmd.order_id
        side, coid = cmd.side, cmd.client_order_id
        is_buy = side is BUY
        ids = self.user_orders.get(uid)
        if not (
            cmd.order_type is LIMIT
            and cmd.tif is GTC
            and cmd.stp is STP_NONE
            and (is_buy or side is SELL)
            and not (self.halted or cmd.reduce_only or cmd.close_position)
            and price is not None
            and self._band_low <= price <= self._band_high
            and self._min_qty <= qty <= self._max_qty
            and price * qty >= self._min_price_qty
            and cmd.symbol == self.symbol
            and oid not in self.orders
            and (not self.stops or oid not in self.stops)
            and (ids is None or len(ids) < self._max_open)
            and (coid is None or (uid, coid) not in self.client_ids)
        ):
            return self._place_checked(offset, cmd)
        if coid is not None:
            self.client_ids[(uid, coid)] = oid
        self.seq = seq = self.seq + 1
        self._out.append(  # positional, in field order (see OrderAccepted)
            OrderAccepted(
                self.symbol,
                seq,
                offset,
                oid,
                uid,
                cmd.request_id,
                side,
                LIMIT,
                GTC,
                qty,
                price,
                cmd.stop_price,
                False,  # reduce_only
                coid,
            )
        )
        if is_buy:
            opp, own, limit_key = self.asks, self.bids, -price
        else:
            opp, own, limit_key = self.bids, self.asks, price
        keys = opp.keys
        remaining = qty
        if keys and keys[-1] >= limit_key:
            if self.reduce_only:  # a resting reduce-only maker may cap a fill: the full loop
                taker = Order(cmd, oid, uid, is_buy, price, qty, qty)
                self._match(taker, opp, limit_key, offset)  # cannot end it: no STP, no reduce
                remaining = taker.remaining
            else:
                remaining = self._match_plain(opp, limit_key, offset, oid, uid, side, qty)
            if not remaining:
                return
            if ids is not None and not ids:  # a self-trade emptied it (and dropped it)
                ids = None
        # rest: what _rest does, for an order known to be plain (built only if it rests)
        order = Order(cmd, oid, uid, is_buy, price, qty, remaining)  # positional, field order
        level = own.levels.get(price)
        if level is None:
            own.add(order)  # a new level: let the side insert its price key
        else:
            level.append(order)
        self.orders[oid] = order
        if ids is None:
            self.user_orders[uid] = {oid: None}
        else:
            ids[oid] = None

    def _place_checked(self, offset: int, cmd: PlaceOrder) -> None:
        """Place any order, checking every rule and naming the one it breaks."""
        oid = cmd.order_id
        if (
            type(cmd.side) is not Side
            or type(cmd.order_type) is not OrderType
            or type(cmd.tif) is not TimeInForce
            or type(cmd.stp) is not SelfTradePrevention
            or type(cmd.trigger_by) is not TriggerBy
        ):
            try:
                cmd = _with_enums(cmd)
            except ValueError as error:
                return self._reject(offset, cmd, oid, codes.INVALID_PARAM, str(error))
        problem = self._entry_problem(cmd.symbol, oid)
        if problem is not None:
            return self._reject(offset, cmd, oid, *problem)
        uid = cmd.user_id
        coid = cmd.client_order_id
        if coid is not None:
            original = self.client_ids.get((uid, coid))
            if original is not None:
                return self._reject(
                    offset,
                    cmd,
                    oid,
                    codes.DUPLICATE_CLIENT_ORDER_ID,
                    f"Duplicate client order id; original order_id={original}",
                )
            self.client_ids[(uid, coid)] = oid
        kind, price, qty = cmd.order_type, cmd.price, cmd.qty
        plain = (  # a plain limit order inside every filter: the hot path skips _check_place
            kind is LIMIT
            and price is not None
            and self.mark_price is None
            and not cmd.reduce_only
            and not cmd.close_position
            and self._min_qty <= qty <= self._max_qty
            and price * qty >= self._min_price_qty
            and len(self.user_orders.get(uid, ())) < self._max_open
        )
        if not plain:
            problem = self._check_place(cmd)
            if problem is not None:
                return self._reject(offset, cmd, oid, *problem)
        self.seq += 1
        self._out.append(
            OrderAccepted(
                symbol=self.symbol,
                seq=self.seq,
                cmd_offset=offset,
                order_id=oid,
                user_id=uid,
                request_id=cmd.request_id,
                side=cmd.side,
                order_type=kind,
                tif=cmd.tif,
                qty=qty,
                price=price,
                stop_price=cmd.stop_price,
                reduce_only=cmd.reduce_only,
                client_order_id=coid,
            )
        )
        is_buy = cmd.side is BUY
        reduce_only = cmd.reduce_only or cmd.close_position
        if kind is LIMIT:
            order = Order.of(cmd, is_buy, price, qty, reduce_only)
            self._execute(order, offset, cmd.tif, price)
        elif kind is MARKET:
            qty = cmd.qty
            if cmd.close_position:
                qty = max(self._reducible(uid, is_buy), 0)
            order = Order.of(cmd, is_buy, None, qty, reduce_only)
            self._execute(order, offset, IOC if cmd.tif is not FOK else FOK, None)
        else:
            order = Order.of(cmd, is_buy, cmd.price, cmd.qty, reduce_only)
            if kind is OrderType.TRAILING_STOP and cmd.activation_price is None:
                order.activated = True
                order.extreme = self._reference(cmd.trigger_by)
            self.stops[oid] = order
            self._index(order)

    def _entry_problem(self, symbol: str, oid: int) -> tuple[int, str] | None:
        """Return (code, msg) when no new order may enter this book now, else None."""
        if self.halted:
            return codes.NEW_ORDER_REJECTED, "Symbol is halted"
        if symbol != self.symbol:
            return codes.INVALID_SYMBOL, "Invalid symbol"
        if oid in self.orders or oid in self.stops:
            return codes.NEW_ORDER_REJECTED, "Order id in use"
        return None

    def _check_place(self, cmd: PlaceOrder) -> tuple[int, str] | None:
        """Return (code, msg) when the order must be rejected, else None."""
        kind, price, stop = cmd.order_type, cmd.price, cmd.stop_price
        if kind in LIMIT_PRICED:
            if price is None:
                return codes.MANDATORY_PARAM, "Mandatory parameter 'price' was not sent"
            if price <= 0:
                return codes.INVALID_PARAM, "Price must be positive"
        elif kind is OrderType.LIQUIDATION:
            return codes.INVALID_ORDER_TYPE, "Liquidation orders come from the risk engine"
        elif cmd.tif is GTX:
            return codes.INVALID_ORDER_TYPE, "Post-only needs a limit price"
        else:
            price = None
        if kind in STOP_PRICED:
            if stop is None:
                return codes.MANDATORY_PARAM, "Mandatory parameter 'stopPrice' was not sent"
            if stop <= 0:
                return codes.INVALID_PARAM, "Stop price must be positive"
        if kind is OrderType.TRAILING_STOP:
            rate = cmd.callback_rate
            if rate is None:
                return codes.MANDATORY_PARAM, "Mandatory parameter 'callbackRate' was not sent"
            if not MIN_CALLBACK_RATE <= rate <= MAX_CALLBACK_RATE:
                return codes.INVALID_PARAM, "Callback rate must be within [0.1%, 10%]"
        if cmd.close_position and kind in LIMIT_PRICED:
            return codes.INVALID_PARAM, "Close-position needs a market-type order"
        reduce = cmd.reduce_only or cmd.close_position
        if not cmd.close_position:
            notional_price = price if price is not None else stop
            if notional_price is None:
                notional_price = self.mark_price
            problem = self._filter(price, cmd.qty, notional_price, reduce)
            if problem is not None:
                return problem
        if len(self.user_orders.get(cmd.user_id, ())) >= self.spec.max_open_orders:
            return codes.MAX_OPEN_ORDERS, "Reach max open order limit"
        if reduce and self._reducible(cmd.user_id, cmd.side == BUY) <= 0:
            return codes.REDUCE_ONLY_REJECTED, "ReduceOnly Order is rejected"
        if kind in STOP_PRICED:
            reference = self._reference(cmd.trigger_by)
            if reference is not None and immediately_triggers(cmd, reference):
                return codes.WOULD_IMMEDIATELY_TRIGGER, "Order would immediately trigger"
        return None

    def _reference(self, trigger_by: TriggerBy) -> int | None:
        return self.mark_price if trigger_by is TriggerBy.MARK else self.last_price

    def _liquidate(self, offset: int, cmd: LiquidationOrder) -> None:
        oid = cmd.order_id
        if type(cmd.side) is not Side:
            try:
                cmd = msgspec.structs.replace(cmd, side=Side(cmd.side))
            except ValueError as error:
                return self._reject(offset, cmd, oid, codes.INVALID_PARAM, str(error))
        problem = self._entry_problem(cmd.symbol, oid)
        if problem is not None:
            return self._reject(offset, cmd, oid, *problem)
        if cmd.qty <= 0 or cmd.price <= 0:
            return self._reject(offset, cmd, oid, codes.INVALID_PARAM, "Bad qty or price")
        self.seq += 1
        self._out.append(
            OrderAccepted(
                symbol=self.symbol,
                seq=self.seq,
                cmd_offset=offset,
                order_id=oid,
                user_id=cmd.user_id,
                request_id=cmd.request_id,
                side=cmd.side,
                order_type=OrderType.LIQUIDATION,
                tif=IOC,
                qty=cmd.qty,
                price=cmd.price,
            )
        )
        # reduce-only: it closes what the book's positions hold when it runs, never more (the
        # position engine's view of the size can lag, e.g. behind a Deleverage in flight)
        order = Order.of(cmd, cmd.side == BUY, cmd.price, cmd.qty, True)
        self._execute(order, offset, IOC, cmd.price)

    def _deleverage(self, offset: int, cmd: Deleverage) -> None:
        """Close the bankrupt position against the ranked counterparties; one Deleveraged.

        Not a trade on the book: the last trade price (the stops' reference) stays. The trade
        ids it takes make the step after every command expire the resting reduce-only orders
        that no longer reduce. Applies while halted too: it is the end of a liquidation.
        """
        positions = self.positions
        bust, closes_long = cmd.user_id, cmd.side == SELL
        left = 0
        if cmd.symbol == self.symbol and cmd.price > 0 and (closes_long or cmd.side == BUY):
            held = positions.get(bust, 0)
            left = min(cmd.qty, held if closes_long else -held)  # <= 0: nothing to close
        matches = []
        for user in cmd.counterparties:
            if left <= 0:
                break
            if user == bust:
                continue
            held = positions.get(user, 0)
            take = min(left, -held if closes_long else held)
            if take <= 0:
                continue  # flat or on the same side by now
            positions[user] = held + take if closes_long else held - take
            self.trade_id += 1
            matches.append(DeleverageMatch(self.trade_id, user, take))
            left -= take
        qty = sum(match.qty for match in matches)
        if qty:
            held = positions.get(bust, 0)
            positions[bust] = held - qty if closes_long else held + qty
        self.seq += 1
        self._out.append(
            Deleveraged(
                symbol=self.symbol,
                seq=self.seq,
                cmd_offset=offset,
                liquidation_id=cmd.liquidation_id,
                user_id=bust,
                side=SELL if closes_long else BUY,
                price=cmd.price,
                qty=qty,
                matches=tuple(matches),
            )
        )

    def _cancel(self, offset: int, cmd: CancelOrder) -> None:
        uid, oid = cmd.user_id, cmd.order_id
        if oid is None and cmd.client_order_id is not None:
            oid = self.client_ids.get((uid, cmd.client_order_id))
        order = None if oid is None else self.orders.get(oid) or self.stops.get(oid)
        if order is None or order.user_id != uid or cmd.symbol != self.symbol:
            return self._reject(
                offset, cmd, cmd.order_id, codes.UNKNOWN_ORDER, "Unknown order sent"
            )
        self._remove_open(order)
        self._cancelled(offset, order, cmd.request_id, EndReason.USER)

    def _cancel_all(self, offset: int, cmd: CancelAll) -> None:
        if cmd.symbol != self.symbol:
            return self._reject(offset, cmd, None, codes.INVALID_SYMBOL, "Invalid symbol")
        for oid in sorted(self.user_orders.get(cmd.user_id, ())):
            order = self.orders.get(oid) or self.stops[oid]
            self._remove_open(order)
            self._cancelled(offset, order, cmd.request_id, EndReason.CANCEL_ALL)

    def _amend(self, offset: int, cmd: AmendOrder) -> None:
        oid = cmd.order_id
        order = self.orders.get(oid)
        if order is None or order.user_id != cmd.user_id or cmd.symbol != self.symbol:
            return self._reject(offset, cmd, oid, codes.UNKNOWN_ORDER, "Unknown order sent")
        if self.halted:
            return self._reject(offset, cmd, oid, codes.NEW_ORDER_REJECTED, "Symbol is halted")
        # a resting order is priced
        price = cast(int, order.price) if cmd.price is None else cmd.price
        qty = order.qty if cmd.qty is None else cmd.qty
        if price == order.price and qty == order.qty:
            return self._reject(offset, cmd, oid, codes.NO_NEED_TO_MODIFY, "No need to modify")
        if price <= 0 or qty <= order.filled:
            return self._reject(
                offset, cmd, oid, codes.INVALID_PARAM, "Price must be positive, qty above filled"
            )
        problem = self._filter(price, qty, price, order.reduce_only)
        if problem is not None:
            return self._reject(offset, cmd, oid, *problem)
        keep = price == order.price and qty < order.qty
        if keep:
            order.remaining -= order.qty - qty
            order.qty = qty
        else:
            self._remove_open(order)
            order.price, order.qty, order.remaining = price, qty, qty - order.filled
        self.seq += 1
        self._out.append(
            OrderAmended(
                symbol=self.symbol,
                seq=self.seq,
                cmd_offset=offset,
                order_id=oid,
                user_id=order.user_id,
                request_id=cmd.request_id,
                price=price,
                qty=qty,
                kept_priority=keep,
            )
        )
        if not keep:
            # a resting order was placed (a liquidation is IOC and never rests)
            self._execute(order, offset, cast(PlaceOrder, order.cmd).tif, price)

    def _refused(self, offset: int, cmd: RejectRequest) -> None:
        """The wallet refused the request: answer it in sequence, change nothing."""
        self._reject(offset, cmd, cmd.order_id, cmd.code, cmd.msg, cmd.original_order_id, True)

    def _mark(self, offset: int, cmd: MarkPriceTick) -> None:
        if cmd.symbol != self.symbol or cmd.mark_price <= 0:
            return
        if cmd.ts < self.mark_ts:
            # a fence from a position engine shard that repeats an older tick than the one
            # applied (it does not send this symbol's marks): it orders, the mark stays
            return
        self.mark_ts = cmd.ts
        self.set_mark(cmd.mark_price)
        # Echo the mark into the symbol's event stream: downstream engines (positions: uPnL,
        # funding, liquidation) then see marks and fills in one total order, so they replay
        # deterministically.
        self.seq += 1
        self._out.append(
            MarkPriceSet(
                symbol=self.symbol,
                seq=self.seq,
                cmd_offset=offset,
                mark_price=cmd.mark_price,
                ts=cmd.ts,
                index_price=cmd.index_price,
                # the book knows every user's position (the engines, a shard's each)
                open_interest=sum(p for p in self.positions.values() if p > 0),
            )
        )
        if self.stops and not self.halted:
            self._run_triggers(offset)

    def set_mark(self, price: int) -> None:
        """Record the mark price and the percent-price band around it."""
        self.mark_price = price
        self._band_low, self._band_high = self._band(self.spec.price_band)

    def _halt(self, offset: int, cmd: HaltSymbol) -> None:
        self.halted = True
        self.halt_reason = cmd.reason
        self.seq += 1
        self._out.append(
            SymbolHalted(symbol=self.symbol, seq=self.seq, cmd_offset=offset, reason=cmd.reason)
        )

    def _resume(self, offset: int, cmd: ResumeSymbol) -> None:
        self.halted = False
        self.halt_reason = ""
        self.seq += 1
        self._out.append(SymbolResumed(symbol=self.symbol, seq=self.seq, cmd_offset=offset))
        if self.stops:
            self._run_triggers(offset)

    # --- matching ---------------------------------------------------------------------------

    def _execute(self, order: Order, offset: int, tif: TimeInForce, limit: int | None) -> None:
        """Match ``order`` as taker, then rest it or end it as its time in force says."""
        opp = self.asks if order.is_buy else self.bids
        banded = False
        if limit is not None:
            limit_key = limit * opp.sign
        elif self.mark_price is not None:
            low, high = self._band(self.spec.market_take_bound)
            limit_key = (high if order.is_buy else low) * opp.sign
            banded = True
        else:
            limit_key = NO_LIMIT
        keys = opp.keys
        crosses = bool(keys) and keys[-1] >= limit_key
        if not crosses and tif is GTC and limit is not None:
            return self._rest(order)  # the most common case: a passive limit order
        if order.remaining <= 0:
            return self._expire(offset, order, EndReason.REDUCE_ONLY)
        if tif is GTX and crosses:
            return self._expire(offset, order, EndReason.POST_ONLY)
        if tif is FOK and (not crosses or self._fillable(order, opp, limit_key) < order.remaining):
            return self._expire(offset, order, EndReason.FOK)
        if crosses and self._match(order, opp, limit_key, offset):
            return  # ended by self-trade prevention or reduce-only inside the match
        if not order.remaining:
            return
        if limit is None:
            reason = EndReason.MARKET_BAND if banded and keys else EndReason.NO_LIQUIDITY
            self._expire(offset, order, reason)
        elif tif is GTC or tif is GTX:
            self._rest(order)
        else:
            self._expire(offset, order, EndReason.IOC)

    def _fillable(self, taker: Order, opp: BookSide, limit_key: int) -> int:
        """Return how much of ``taker`` would fill now (for FOK), up to its remaining qty."""
        need = taker.remaining
        if taker.reduce_only:
            need = min(need, self._reducible(taker.user_id, taker.is_buy))
        stp = getattr(taker.cmd, "stp", STP_NONE)
        total = 0
        levels, sign = opp.levels, opp.sign
        for key in reversed(opp.keys):
            if key < limit_key:
                break
            for maker in levels[key * sign]:
                if stp is not STP_NONE and maker.user_id == taker.user_id:
                    if stp is SelfTradePrevention.EXPIRE_MAKER:
                        continue
                    return total
                qty = maker.remaining
                if maker.reduce_only:
                    qty = max(0, min(qty, self._reducible(maker.user_id, maker.is_buy)))
                total += qty
                if total >= need:
                    return need
        return total

    def _match(self, taker: Order, opp: BookSide, limit_key: int, offset: int) -> bool:
        """Fill ``taker`` against ``opp`` down to ``limit_key``; return True if it was ended."""
        keys, levels, sign = opp.keys, opp.levels, opp.sign
        orders, positions, out = self.orders, self.positions, self._out
        user_orders, symbol = self.user_orders, self.symbol
        tuid, toid, is_buy = taker.user_id, taker.order_id, taker.is_buy
        tside = BUY if is_buy else SELL
        liquidation = type(taker.cmd) is LiquidationOrder
        # not a liquidation: a PlaceOrder (mypy does not narrow through the flag)
        stp = STP_NONE if liquidation else taker.cmd.stp  # type: ignore[union-attr]
        stp_on = stp is not STP_NONE
        taker_reduce = taker.reduce_only
        remaining = taker.remaining
        settled = remaining  # the taker's position is written once, at the end (or before a cap)
        last_fill = 0
        ended = None
        seq, trade = self.seq, self.trade_id  # kept local; synced around the rare calls out
        while remaining and keys:
            key = keys[-1]
            if key < limit_key:
                break
            price = key * sign
            level = levels[price]
            while level:
                maker = level[0]
                muid = maker.user_id
                qty = remaining if remaining < maker.remaining else maker.remaining
                if stp_on and muid == tuid:
                    if stp in EXPIRES_MAKER:
                        self._drop_maker(level, maker)
                        self.seq = seq
                        self._expire(offset, maker, EndReason.STP)
                        seq = self.seq
                    if stp in EXPIRES_TAKER:
                        ended = EndReason.STP
                        break
                    continue
                if maker.reduce_only or taker_reduce:
                    if settled != remaining:  # the caps read positions: settle the taker's
                        taken = settled - remaining
                        positions[tuid] = positions.get(tuid, 0) + (taken if is_buy else -taken)
                        settled = remaining
                    if maker.reduce_only:
                        cap = self._reducible(muid, maker.is_buy)
                        if cap <= 0:
                            self._drop_maker(level, maker)
                            self.seq = seq
                            self._expire(offset, maker, EndReason.REDUCE_ONLY)
                            seq = self.seq
                            continue
                        if qty > cap:
                            qty = cap
                    if taker_reduce:
                        cap = self._reducible(tuid, is_buy)
                        if cap <= 0:
                            ended = EndReason.REDUCE_ONLY
                            break
                        if qty > cap:
                            qty = cap
                remaining -= qty
                last_fill = price
                maker_left = maker.remaining - qty
                maker.remaining = maker_left
                if is_buy:
                    positions[muid] = positions.get(muid, 0) - qty
                else:
                    positions[muid] = positions.get(muid, 0) + qty
                trade += 1
                seq += 1
                out.append(  # positional, in field order (see OrderFilled)
                    OrderFilled(
                        symbol,
                        seq,
                        offset,
                        trade,
                        price,
                        qty,
                        toid,
                        tuid,
                        tside,
                        remaining,
                        maker.order_id,
                        muid,
                        maker_left,
                        liquidation,
                    )
                )
                if not maker_left:
                    level.popleft()
                    mid = maker.order_id
                    del orders[mid]
                    ids = user_orders[muid]
                    del ids[mid]
                    if not ids:
                        del user_orders[muid]
                    if maker.reduce_only:
                        del self.reduce_only[mid]
                if not remaining:
                    break
            if not level:
                del levels[price]
                keys.pop()
            if ended is not None:
                break
        self.seq, self.trade_id = seq, trade
        if settled != remaining:
            taken = settled - remaining
            positions[tuid] = positions.get(tuid, 0) + (taken if is_buy else -taken)
        taker.remaining = remaining
        if last_fill:
            self.last_price = last_fill
        if ended is not None:
            self._expire(offset, taker, ended)
            return True
        return False

    def _match_plain(
        self, opp: BookSide, limit_key: int, offset: int, oid: int, uid: int, side: Side, qty: int
    ) -> int:
        """Fill a plain taker (a limit order without STP or reduce-only) of ``qty`` against
        ``opp`` down to ``limit_key``, whose best level it crosses; return what is left of it.
        Only while no reduce-only order rests: this is ``_match`` without the checks such a
        taker cannot need, and with the taker as plain values (no Order is built for a taker
        that fills completely).
        """
        keys, levels, sign = opp.keys, opp.levels, opp.sign
        orders, positions, out = self.orders, self.positions, self._out
        user_orders, symbol = self.user_orders, self.symbol
        is_buy = side is BUY
        remaining = qty
        seq, trade = self.seq, self.trade_id
        while True:  # the caller saw the best level cross
            price = keys[-1] * sign
            level = levels[price]
            while True:  # levels are never empty
                maker = level[0]
                muid, mid, maker_left = maker.user_id, maker.order_id, maker.remaining
                if remaining < maker_left:
                    fill = remaining
                    maker_left -= fill
                    maker.remaining = maker_left
                else:  # the maker fills completely and leaves the book (no store needed)
                    fill = maker_left
                    maker_left = 0
                remaining -= fill
                if is_buy:
                    positions[muid] = positions.get(muid, 0) - fill
                else:
                    positions[muid] = positions.get(muid, 0) + fill
                trade += 1
                seq += 1
                out.append(  # positional, in field order (see OrderFilled)
                    OrderFilled(
                        symbol,
                        seq,
                        offset,
                        trade,
                        price,
                        fill,
                        oid,
                        uid,
                        side,
                        remaining,
                        mid,
                        muid,
                        maker_left,
                    )
                )
                if maker_left:  # the taker is done, inside this maker
                    break
                level.popleft()
                del orders[mid]
                ids = user_orders[muid]
                del ids[mid]
                if not ids:
                    del user_orders[muid]
                if not remaining or not level:
                    break
            if not level:
                del levels[price]
                keys.pop()
            if not remaining or not keys or keys[-1] < limit_key:
                break
        self.seq, self.trade_id, self.last_price = seq, trade, price
        taken = qty - remaining
        positions[uid] = positions.get(uid, 0) + (taken if is_buy else -taken)
        return remaining

    def _drop_maker(self, level, maker: Order) -> None:
        """Remove the maker at the head of ``level`` (the caller drops the level if empty)."""
        level.popleft()
        del self.orders[maker.order_id]
        self.reduce_only.pop(maker.order_id, None)
        self._unindex(maker)

    def _enforce_reduce_only(self, offset: int) -> None:
        """Expire resting reduce-only orders that can no longer reduce their user's position."""
        for oid in sorted(self.reduce_only):
            order = self.reduce_only[oid]
            if self._reducible(order.user_id, order.is_buy) <= 0:
                self._remove_open(order)
                self._expire(offset, order, EndReason.REDUCE_ONLY)

    # --- triggers ---------------------------------------------------------------------------

    def _run_triggers(self, offset: int) -> None:
        """Fire every stop whose condition holds, in placement order, until none does."""
        while self.stops:
            fired = None
            for order in self.stops.values():
                # only placed orders wait for a trigger
                reference = self._reference(cast(PlaceOrder, order.cmd).trigger_by)
                if reference is not None and fires(order, reference):
                    fired = order, reference
                    break
            if fired is None:
                return
            order, reference = fired
            self._remove_open(order)
            self.seq += 1
            self._out.append(
                OrderTriggered(
                    symbol=self.symbol,
                    seq=self.seq,
                    cmd_offset=offset,
                    order_id=order.order_id,
                    user_id=order.user_id,
                    trigger_price=reference,
                )
            )
            self._execute_triggered(order, offset)

    def _execute_triggered(self, order: Order, offset: int) -> None:
        cmd = cast(PlaceOrder, order.cmd)  # only placed orders wait for a trigger
        trades = self.trade_id
        if order.reduce_only:
            reducible = self._reducible(order.user_id, order.is_buy)
            if cmd.close_position:
                order.qty = order.remaining = max(reducible, 0)
            elif reducible <= 0:
                return self._expire(offset, order, EndReason.REDUCE_ONLY)
        if cmd.order_type in LIMIT_PRICED:
            self._execute(order, offset, cmd.tif, cmd.price)
        else:
            order.price = None
            self._execute(order, offset, FOK if cmd.tif is FOK else IOC, None)
        if self.trade_id != trades and self.reduce_only:
            self._enforce_reduce_only(offset)


def _order_state(o: Order) -> OrderState:
    return OrderState(
        o.cmd,
        o.is_buy,
        o.price,
        o.qty,
        o.remaining,
        o.filled,
        o.reduce_only,
        o.activated,
        o.extreme,
    )


def _order(s: OrderState) -> Order:
    order = Order.of(s.cmd, s.is_buy, s.price, s.qty, s.reduce_only)
    order.remaining = s.remaining  # s.filled == s.qty - s.remaining: filled is derived
    order.activated, order.extreme = s.activated, s.extreme
    return order
