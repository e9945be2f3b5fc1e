"""The read model as a pure projection: decoded Kafka records in, Redis commands out.

This module holds the transitions and the order they apply in; an order's state and hash are
``orders.py``, a book's level totals ``depth.py``, the accounts, positions and markets the
engines' events tell ``pictures.py``, the key names ``libs/read_model/keys.py``.

``Projection.apply`` takes one record of ``orders.requests``, ``matcher.events``,
``wallet.events`` or ``positions.events``; ``Projection.flush`` returns the Redis commands
(writes and ``PUBLISH``es, in order) that the records applied since the last flush imply,
ending with the ``projector:offsets`` they cover. The I/O shell (``app.py``) runs them in
one atomic batch, so Redis and the offsets it covers move together. No I/O, no clock here:
trades, fills and candles take the time of their matcher batch (``BatchCompleted.ts``), per
symbol never earlier than the symbol's previous trades, so a rebuild gives the same times.

Ordering rules that make the result the same whatever order the topics are read in:

- Matcher events are applied a whole batch at a time (buffered until the partition's
  ``BatchCompleted``). Inside a batch a taker is accepted before it fills, so the book can look
  crossed; at a batch boundary it is the matcher's book, so every depth message and every
  ``book:{symbol}`` snapshot is uncrossed. A partition's offset moves past a batch only once
  the batch is applied.
- A wallet or position event waits (with the rest of its partition, in order) until the
  record that caused it (its ``cause``, a logical topic name mapped to the topic read here by
  ``Topics.prefix``, when on a topic the projector reads) is applied. So a
  wallet rejection always finds the pending order it refuses and is told apart from a refused
  amend or cancel, and a user's stream shows a fill before the balance and position it moved.
- Matcher events may come before their ``PlaceOrder`` (the topics are read independently):
  the order is then created from ``OrderAccepted`` (or a placement ``OrderRejected``) and kept
  in memory until its request arrives to add the request's ``ts``; the request then never
  turns it back into ``Pending``.

In memory lives only what the book and the open orders need: the orders that are open,
pending, or closed but still waiting for their request (``held``), and each symbol's level
totals and depth update id; and each symbol's clock and the open candle of each of its candle
series (``candles.py``). Closed orders and closed candles live only in Redis.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from libs import codes
from libs.messages import (
    AccountUpdated,
    AutoDeleveraged,
    BatchCompleted,
    Cause,
    Deleveraged,
    FundingPaid,
    FundingRateSet,
    LeverageSet,
    LiquidationSettled,
    LiquidationTriggered,
    MarkPriceUpdated,
    Message,
    OrderAccepted,
    OrderAmended,
    OrderCancelled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderRequestRejected,
    OrderStatus,
    OrderTriggered,
    OrderType,
    PlaceOrder,
    PositionChanged,
    Side,
)
from libs.read_model import keys
from libs.read_model.candles import Candle
from libs.redis_batch import Command, flat
from libs.symbols import SymbolSpec
from libs.topics import MATCHER_EVENTS, Topics, physical_topic
from services.projector.candles import Candles
from services.projector.depth import Book
from services.projector.income import Income
from services.projector.orders import LIQUIDATION_ID_BIT, Order
from services.projector.pictures import Pictures

TRIM_ORDER_HISTORY = """
local old = redis.call('ZRANGE', KEYS[1], 0, -(tonumber(ARGV[1]) + 1))
for _, id in ipairs(old) do
  if redis.call('HEXISTS', KEYS[2], id) == 0 then
    local order = ARGV[2] .. id
    local coid = redis.call('HGET', order, 'client_order_id')
    if coid and coid ~= '' and redis.call('GET', ARGV[3] .. coid) == id then
      redis.call('DEL', ARGV[3] .. coid)
    end
    redis.call('DEL', order)
    redis.call('ZREM', KEYS[1], id)
  end
end
return #old
"""
"""Drop a user's orders beyond the newest ``ORDER_HISTORY`` (KEYS: the user's ``orders:all``,
``projector:held``; ARGV: the limit, the order key prefix, the user's client-id key prefix), with
their hashes and client-id keys. Orders the projector still holds (open, pending) are kept."""


def _may_cause_income(event: Message) -> bool:
    """Whether a matcher event may cause an income row: a fill or deleverage (a position
    change), or the end of a liquidation order (its settlement)."""
    kind = type(event)
    if kind is OrderFilled or kind is Deleveraged:
        return True
    if kind is OrderExpired or kind is OrderRejected or kind is OrderCancelled:
        order_id = getattr(event, "order_id", None) or 0
        return order_id & LIQUIDATION_ID_BIT != 0
    return False


def _json(value: object) -> bytes:
    return orjson.dumps(value)


def projected_topics(topics: Topics) -> list[str]:
    """The four topics the projector reads, as ``topics`` names them."""
    return [topics.requests, topics.matcher_events, topics.wallet_events, topics.positions_events]


@dataclass(frozen=True, slots=True)
class Input:
    """One consumed record, decoded; ``message`` None: malformed (skipped, offset passed)."""

    topic: str
    partition: int
    offset: int
    message: Message | None


class Projection:
    """The read model's state and transitions; see the module docstring."""

    def __init__(self, topics: Topics, specs: dict[str, SymbolSpec]) -> None:
        self.topics = topics
        self.specs = specs
        self.orders: dict[int, Order] = {}
        self.books: dict[str, Book] = {symbol: Book() for symbol in specs}
        self.offsets: dict[tuple[str, int], int] = {}
        """Per partition, the offset after the last record applied (what Redis will cover)."""
        self._batches: dict[tuple[str, int], list[tuple[int, Message | None]]] = {}
        self._waiting: dict[tuple[str, int], deque[Input]] = {}
        self._inputs = frozenset(projected_topics(topics))
        self.candles = Candles()
        self.income = Income()
        self._batch_ts = 0  # ns: the time of the matcher batch being applied
        # each handler takes the kind it is keyed by (Any: a dict cannot say so per entry)
        self._matcher: dict[type[Message], Callable[[Any], None]] = {
            OrderAccepted: self._accepted,
            OrderFilled: self._filled,
            OrderCancelled: self._cancelled,
            OrderExpired: self._expired,
            OrderRejected: self._rejected,
            OrderAmended: self._amended,
            OrderTriggered: self._triggered,
        }
        self._others: dict[type[Message], Callable[[Any], None]] = {
            PlaceOrder: self._requested,
            OrderRequestRejected: self._request_rejected,
            AccountUpdated: self._account,
            LeverageSet: self._leverage,
            PositionChanged: self._position,
            MarkPriceUpdated: self._mark,
            FundingRateSet: self._funding_rate,
            FundingPaid: self._funding_paid,
            LiquidationTriggered: self._liquidation,
            LiquidationSettled: self._liquidation,
            AutoDeleveraged: self._liquidation,
        }
        self._start_output()

    @classmethod
    def restore(
        cls,
        topics: Topics,
        specs: dict[str, SymbolSpec],
        offsets: dict[tuple[str, int], int],
        held: list[Order],
        update_ids: dict[str, int],
        candles: dict[str, dict[str, Candle]] | None = None,
        clock: dict[str, int] | None = None,
        record_times: dict[tuple[int, int], int] | None = None,
    ) -> Projection:
        """Return the projection that wrote this Redis state: its offsets, the orders it held,
        each book's update id (the level totals follow from the open orders), the newest
        candle of each series (symbol -> interval -> candle), each symbol's clock (the
        newest trade's ``ts``) and the remembered matcher record times (``income.py``)."""
        projection = cls(topics, specs)
        projection.offsets = dict(offsets)
        projection.candles = Candles(candles, clock)
        projection.income = Income(record_times)
        for symbol, update_id in update_ids.items():
            projection._book_of(symbol).update_id = update_id
        for order in held:
            projection.orders[order.order_id] = order
            projection._book(order)
        for book in projection.books.values():
            book.before = {}
        return projection

    # --- input --------------------------------------------------------------------------------

    def apply(self, item: Input) -> None:
        """Apply one record (or buffer it until it may be applied)."""
        key = (item.topic, item.partition)
        if item.topic == self.topics.matcher_events:
            self._matcher_record(key, item)
        elif item.topic == self.topics.requests:
            self._other(key, item)
        elif item.topic in (self.topics.wallet_events, self.topics.positions_events):
            if key in self._waiting or not self._cause_applied(item.message):
                self._waiting.setdefault(key, deque()).append(item)
                return
            self._other(key, item)
        else:
            raise ValueError(f"not a topic of the projector: {item.topic!r}")
        if self._waiting:
            self._release_waiting()

    def _other(self, key: tuple[str, int], item: Input) -> None:
        try:
            message = item.message
            handler = None if message is None else self._others.get(type(message))
            if handler is not None:
                handler(message)
        finally:
            self._advance(key, item.offset)

    def _matcher_record(self, key: tuple[str, int], item: Input) -> None:
        batch = self._batches.setdefault(key, [])
        completed = item.message
        batch.append((item.offset, completed))
        if type(completed) is not BatchCompleted:
            return
        del self._batches[key]
        self._batch_ts = completed.ts
        # every record of matcher.events is a matcher event, and each names its symbol
        symbols = {event.symbol for _, event in batch if event is not None}  # type: ignore[attr-defined]
        try:
            for offset, event in batch:
                if event is not None and event.symbol in self.specs:  # type: ignore[attr-defined]
                    handler = self._matcher.get(type(event))
                    if handler is not None:
                        handler(event)
                    if _may_cause_income(event):
                        at = self.candles.time(event.symbol, self._batch_ts)  # type: ignore[attr-defined]
                        self.income.remember(item.partition, offset, at)
        finally:
            self.candles.settle()
            self._advance(key, item.offset)
            for symbol in sorted(symbols):
                self._publish_depth(symbol)

    def _cause_applied(self, message: Message | None) -> bool:
        """Whether the record that caused a wallet or position event is applied (or is on a
        topic the projector does not read, such as ``index.prices``)."""
        cause = getattr(message, "cause", None)
        if cause is None:
            return True
        topic = physical_topic(cause.topic, self.topics.prefix)
        if topic not in self._inputs:
            return True
        return self.offsets.get((topic, cause.partition), 0) > cause.offset

    def _release_waiting(self) -> None:
        """Apply the waiting events whose causes are now applied, until none is (one released
        event may be the cause another waits for)."""
        released = True
        while released and self._waiting:
            released = False
            for key in list(self._waiting):
                queue = self._waiting[key]
                while queue and self._cause_applied(queue[0].message):
                    self._other(key, queue.popleft())
                    released = True
                if not queue:
                    del self._waiting[key]

    def waiting(self) -> dict[tuple[str, int], int]:
        """Return, per partition, how many read records wait for their cause."""
        return {key: len(queue) for key, queue in self._waiting.items()}

    def _advance(self, key: tuple[str, int], offset: int) -> None:
        self.offsets[key] = offset + 1
        self._moved.add(key)

    # --- output -------------------------------------------------------------------------------

    def _start_output(self) -> None:
        self._out: list[Command] = []
        self._dirty: dict[int, Order] = {}
        self._created: list[Order] = []
        self._lists: dict[str, int] = {}
        self._changed_books: set[str] = set()
        self._moved: set[tuple[str, int]] = set()
        self._pictures = Pictures()

    def flush(self) -> list[Command]:
        """Return the Redis commands for everything applied since the last flush, in order:
        publications and list pushes as they happened, then the final state of every order,
        list, book, account, position and market touched, then the offsets covered."""
        out = self._out
        for order in self._dirty.values():
            oid = order.order_id
            out.append(("HSET", keys.order_key(oid), *flat(order.fields())))
            verb = "SADD" if order.is_open else "SREM"
            out.append((verb, keys.open_orders_key(order.user_id), oid))
            if self.orders.get(oid) is order:
                out.append(("HSET", keys.HELD_KEY, oid, "1" if order.requested else "0"))
            else:
                out.append(("HDEL", keys.HELD_KEY, oid))
        for order in self._created:
            out.append(("ZADD", keys.all_orders_key(order.user_id), order.order_id, order.order_id))
        for user in sorted({order.user_id for order in self._created}):
            out.append(
                (
                    "CALL",
                    "trim_order_history",
                    2,
                    keys.all_orders_key(user),
                    keys.HELD_KEY,
                    keys.ORDER_HISTORY,
                    keys.ORDER_KEY_PREFIX,
                    keys.client_order_prefix(user),
                )
            )
        for key, keep in self._lists.items():
            out.append(("LTRIM", key, 0, keep - 1))
        out += self.candles.commands()
        out += self._pictures.commands()
        out += self.income.commands()
        for symbol in sorted(self._changed_books):
            book = self.books[symbol]
            out.append(
                (
                    "HSET",
                    keys.book_key(symbol),
                    "bids",
                    _json(book.bids()),
                    "asks",
                    _json(book.asks()),
                    "update_id",
                    book.update_id,
                )
            )
        if self._moved:
            moved = sorted(self._moved)
            offsets = [(keys.offsets_field(t, p), self.offsets[(t, p)]) for t, p in moved]
            out.append(("HSET", keys.OFFSETS_KEY, *flat(dict(offsets))))
        self._start_output()
        return out

    def _publish(self, channel: str, payload: dict) -> None:
        self._out.append(("PUBLISH", channel, _json(payload)))

    def _push(self, key: str, payload: bytes, keep: int) -> None:
        self._out.append(("LPUSH", key, payload))
        self._lists[key] = keep

    def _changed(self, order: Order) -> None:
        """Publish the order's new state, mark its hash for writing, forget it once done."""
        self._publish(keys.user_channel(order.user_id), {"type": "order", **order.fields()})
        self._dirty[order.order_id] = order
        if not order.held and self.orders.get(order.order_id) is order:
            del self.orders[order.order_id]

    def _create(self, order: Order) -> None:
        self.orders[order.order_id] = order
        self._created.append(order)

    def _claim_client_id(self, order: Order, *, first_only: bool) -> None:
        """Point ``coid:{user}:{id}`` at the order. An accepted order takes it over; a pending
        or refused one only claims an unused id, so a duplicate (-4015) or a margin rejection
        never hides the order that holds it in the matcher."""
        if order.client_order_id:
            key = keys.client_order_key(order.user_id, order.client_order_id)
            self._out.append(("SET", key, order.order_id, *(("NX",) if first_only else ())))

    # --- the book -----------------------------------------------------------------------------

    def _book_of(self, symbol: str) -> Book:
        book = self.books.get(symbol)
        if book is None:
            book = self.books[symbol] = Book()
        return book

    # resting_lots is 0 for an order without a price, so below order.price is an int
    def _book(self, order: Order) -> None:
        lots = order.resting_lots
        if lots:
            self._book_of(order.symbol).add(order.side, order.price, lots)  # type: ignore[arg-type]

    def _unbook(self, order: Order) -> None:
        lots = order.resting_lots
        if lots:
            self._book_of(order.symbol).add(order.side, order.price, -lots)  # type: ignore[arg-type]

    def _publish_depth(self, symbol: str) -> None:
        book = self.books.get(symbol)
        if book is None:
            return
        bids, asks = book.take_changes()
        if not bids and not asks:
            return
        book.update_id += 1
        self._changed_books.add(symbol)
        self._publish(
            keys.depth_channel(symbol),
            {
                "symbol": symbol,
                "first_update_id": book.update_id,
                "update_id": book.update_id,
                "bids": bids,
                "asks": asks,
            },
        )

    # --- orders.requests ----------------------------------------------------------------------

    def _requested(self, cmd: PlaceOrder) -> None:
        order = self.orders.get(cmd.order_id)
        if order is None:
            order = Order(cmd.order_id, cmd.user_id, cmd.symbol, cmd.request_id, requested=True)
            order.take_terms(cmd)
            self._create(order)
        elif order.requested:
            return  # the same request again: nothing new
        else:  # the matcher (or a rejection) came first: add what only the request knows
            order.requested = True
            if not order.side:
                order.take_terms(cmd)
        order.ts = cmd.ts
        self._claim_client_id(order, first_only=True)
        self._changed(order)

    # --- matcher.events -----------------------------------------------------------------------

    def _accepted(self, event: OrderAccepted) -> None:
        order = self.orders.get(event.order_id)
        if order is None:
            liquidation = (
                event.order_type is OrderType.LIQUIDATION
                or event.order_id & LIQUIDATION_ID_BIT != 0
            )
            order = Order(
                event.order_id, event.user_id, event.symbol, event.request_id, requested=liquidation
            )
            self._create(order)
        else:
            self._unbook(order)
        order.take_terms(event)
        order.filled, order.status, order.triggered = 0, OrderStatus.NEW, False
        order.reason, order.code, order.msg = "", None, ""
        self._claim_client_id(order, first_only=False)
        self._book(order)
        self._changed(order)

    def _filled(self, event: OrderFilled) -> None:
        spec = self.specs[event.symbol]
        notional = spec.notional(event.price, event.qty)
        taker_side = str(event.taker_side)
        at = self.candles.time(event.symbol, self._batch_ts)
        self.candles.trade(
            event.symbol,
            at,
            event.trade_id,
            event.price,
            event.qty,
            notional,
            event.taker_side == Side.BUY,
        )
        trade = _json(
            {
                "trade_id": event.trade_id,
                "price": event.price,
                "qty": event.qty,
                "taker_side": taker_side,
                "ts": at,
            }
        )
        self._push(keys.trades_key(event.symbol), trade, keys.TRADES_KEPT)
        self._out.append(("PUBLISH", keys.trades_channel(event.symbol), trade))
        maker_side = str(Side.SELL if event.taker_side == Side.BUY else Side.BUY)
        self._fill(
            event,
            event.taker_order_id,
            event.taker_user_id,
            taker_side,
            event.taker_remaining,
            at,
            maker=False,
            fee=spec.fee(notional, maker=False),
        )
        self._fill(
            event,
            event.maker_order_id,
            event.maker_user_id,
            maker_side,
            event.maker_remaining,
            at,
            maker=True,
            fee=spec.fee(notional, maker=True),
        )

    def _fill(
        self,
        event: OrderFilled,
        order_id: int,
        user_id: int,
        side: str,
        remaining: int,
        at: int,
        *,
        maker: bool,
        fee: int,
    ) -> None:
        fill = {
            "trade_id": event.trade_id,
            "order_id": order_id,
            "symbol": event.symbol,
            "side": side,
            "price": event.price,
            "qty": event.qty,
            "maker": maker,
            "fee": fee,
            "liquidation": event.liquidation,
            "ts": at,
        }
        self._push(keys.fills_key(user_id), _json(fill), keys.FILLS_KEPT)
        self._publish(keys.user_channel(user_id), {"type": "fill", **fill})
        order = self.orders.get(order_id)
        if order is None:
            return
        self._unbook(order)
        order.filled += event.qty
        # filled + remaining is the order's size, also where the matcher sized it on execution
        # (a close-position order takes the position's size when it fires)
        order.qty = order.filled + remaining
        order.status = OrderStatus.FILLED if remaining == 0 else OrderStatus.PARTIALLY_FILLED
        self._book(order)
        self._changed(order)

    def _ended(self, event: OrderCancelled | OrderExpired, status: str) -> None:
        order = self.orders.get(event.order_id)
        if order is None:
            return
        self._unbook(order)
        order.status, order.reason = status, str(event.reason)
        order.filled, order.qty = event.filled, event.filled + event.remaining
        self._changed(order)

    def _cancelled(self, event: OrderCancelled) -> None:
        self._ended(event, OrderStatus.CANCELLED)

    def _expired(self, event: OrderExpired) -> None:
        self._ended(event, OrderStatus.EXPIRED)

    def _rejected(self, event: OrderRejected) -> None:
        if event.order_id is None:
            return  # a refused cancel-all
        order = self.orders.get(event.order_id)
        if order is not None:
            if order.status == OrderStatus.PENDING and order.request_id == event.request_id:
                self._reject(order, event.code, event.msg)
            return  # else a refused cancel or amend (or a repeated id) of an order we hold
        if event.code == codes.UNKNOWN_ORDER:
            return  # a cancel or amend of an order that is not open
        # a placement refused before its request was read: the request adds the terms later
        order = Order(
            event.order_id,
            event.user_id,
            event.symbol,
            event.request_id,
            requested=event.order_id & LIQUIDATION_ID_BIT != 0,
        )
        self._create(order)
        self._reject(order, event.code, event.msg)

    def _reject(self, order: Order, code: int, msg: str) -> None:
        order.status, order.code, order.msg = OrderStatus.REJECTED, code, msg
        self._changed(order)

    def _amended(self, event: OrderAmended) -> None:
        order = self.orders.get(event.order_id)
        if order is None:
            return
        self._unbook(order)
        if event.price is not None:
            order.price = event.price
        order.qty = event.qty
        self._book(order)
        self._changed(order)

    def _triggered(self, event: OrderTriggered) -> None:
        order = self.orders.get(event.order_id)
        if order is None:
            return
        self._unbook(order)
        order.triggered = True  # a limit kind now rests (after its taker pass); a market kind takes
        self._book(order)
        self._changed(order)

    # --- wallet.events and positions.events ---------------------------------------------------

    def _request_rejected(self, event: OrderRequestRejected) -> None:
        order = None if event.order_id is None else self.orders.get(event.order_id)
        if (
            order is not None
            and order.status == OrderStatus.PENDING
            and order.request_id == event.request_id
        ):
            self._reject(order, event.code, event.msg)

    def _account(self, event: AccountUpdated) -> None:
        self._pictures.account(event)
        self._publish(
            keys.user_channel(event.user_id),
            {
                "type": "account",
                "balance": event.balance,
                "holds": event.holds,
                "available": event.available,
            },
        )

    def _leverage(self, event: LeverageSet) -> None:
        self._pictures.leverage(event)

    def _position(self, event: PositionChanged) -> None:
        self._pictures.position(event)
        self.income.position(event, self._time_of(event.cause, event.symbol))
        self._publish(
            keys.user_channel(event.user_id),
            {
                "type": "position",
                "symbol": event.symbol,
                "size": event.size,
                "entry_notional": event.entry_notional,
                "realised_pnl": event.realised_pnl,
                "fee": event.fee,
            },
        )

    def _funding_paid(self, event: FundingPaid) -> None:
        self.income.funding(event)
        self._publish(
            keys.user_channel(event.user_id),
            {
                "type": "funding",
                "symbol": event.symbol,
                "amount": event.amount,
                "rate": event.rate,
                "funding_time": event.funding_time,
            },
        )

    def _liquidation(
        self, event: LiquidationTriggered | LiquidationSettled | AutoDeleveraged
    ) -> None:
        body = {
            name: getattr(event, name)
            for name in event.__struct_fields__
            if name not in ("seq", "cause", "user_id")
        }
        if type(event) is LiquidationSettled:
            self.income.liquidation(event, self._time_of(event.cause, event.symbol))
        kind = {
            LiquidationTriggered: "triggered",
            LiquidationSettled: "settled",
            AutoDeleveraged: "adl",
        }[type(event)]
        self._publish(
            keys.user_channel(event.user_id), {"type": "liquidation", "event": kind, **body}
        )

    def _time_of(self, cause: Cause, symbol: str) -> int:
        """The time (ms) of a position event: its matcher cause's, else the symbol's clock."""
        otherwise = self.candles.time(symbol, 0)
        if cause.topic != MATCHER_EVENTS:
            return otherwise
        return self.income.time_of(cause, otherwise)

    def _mark(self, event: MarkPriceUpdated) -> None:
        self._pictures.mark(event)
        self._publish(
            keys.mark_channel(event.symbol),
            {"type": "mark", "mark": event.mark_price, "index": event.index_price, "ts": event.ts},
        )

    def _funding_rate(self, event: FundingRateSet) -> None:
        self._pictures.funding(event)
        key, at = keys.funding_rates_key(event.symbol), event.funding_time // 1_000_000
        entry = {"funding_time": event.funding_time, "rate": event.rate, "mark": event.mark_price}
        self._out.append(("ZREMRANGEBYSCORE", key, at, at))
        self._out.append(("ZADD", key, at, _json(entry)))
        self._out.append(("ZREMRANGEBYRANK", key, 0, -(keys.FUNDING_RATES_KEPT + 1)))
        self._publish(
            keys.mark_channel(event.symbol),
            {"type": "funding", "rate": event.rate, "funding_time": event.funding_time},
        )

    # --- views --------------------------------------------------------------------------------

    def digest_json(self) -> dict:
        """The digest and what it covers: the projector's ``/digest``, and what a rebuild from
        the topics reports to be compared with it (``python -m exchange verify``)."""
        return {
            "digest": self.digest(),
            "orders_held": len(self.orders),
            "offsets": {keys.offsets_field(t, p): o for (t, p), o in sorted(self.offsets.items())},
        }

    def digest(self) -> str:
        """Return a hash of the applied state (held orders, books, open candles and clocks,
        offsets): equal for equal inputs however they were batched, and after a restore from
        Redis."""
        state = {
            "orders": [
                [order.fields(), order.requested] for _, order in sorted(self.orders.items())
            ],
            "books": {
                symbol: [book.update_id, book.bids(), book.asks()]
                for symbol, book in sorted(self.books.items())
            },
            "offsets": sorted([t, p, o] for (t, p), o in self.offsets.items()),
            "candles": self.candles.state(),
        }
        return hashlib.sha256(_json(state)).hexdigest()
