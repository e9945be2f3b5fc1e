"""The position engine's core: matcher, wallet and index events in, events and commands out.

Pure: no Kafka, no clock, no randomness. Time is the ``ts`` of the mark-price ticks the
matcher echoes (``MarkPriceSet``); ids of liquidation orders derive from the matcher ``seq`` of
the event that caused them. Positions change only by what the matcher reports (fills and
deleverages), so the engine and the book agree on every position at every point of the
symbol's event stream. ``apply_*`` return ``Out`` records naming the topic and partition each
message belongs to; the service produces them.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from fractions import Fraction
from typing import TypedDict, Unpack, cast

import msgspec

from libs import perpetual as f
from libs.messages import (
    AccountRisk,
    AccountUpdated,
    AutoDeleveraged,
    CancelAll,
    Cause,
    Deleverage,
    Deleveraged,
    FundingPaid,
    FundingRateSet,
    IndexPriceTick,
    LedgerAccountKind,
    LedgerPosted,
    LeverageSet,
    LiquidationOrder,
    LiquidationSettled,
    LiquidationTriggered,
    MarkPriceSet,
    MarkPriceTick,
    MarkPriceUpdated,
    MatcherEvent,
    Message,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    PositionChanged,
    Side,
    WalletEvent,
)
from libs.symbols import SymbolSpec
from libs.topics import ALL_USERS, POSITIONS_EVENTS, Shard, market_partition, user_partition
from libs.topics import COMMANDS as COMMANDS_TOPIC
from services.positions.core.book import TopOfBook
from services.positions.core.snapshot import (
    POSITIONS_STATE,
    VERSION,
    AccountState,
    LiquidationState,
    MarketState,
    PositionsState,
    PositionState,
)
from services.positions.core.state import (
    NOT_INDEXED,
    Account,
    Liquidation,
    Market,
    Position,
)

EVENTS = POSITIONS_EVENTS  # the logical names of what the engine writes (Out.topic)
COMMANDS = COMMANDS_TOPIC
NS = 1_000_000_000
PENDING_INDEX_LIMIT = 4096
ADL_COUNTERPARTIES = 256
"""At most this many ranked counterparties in one ``Deleverage`` (a command stays small)."""


@dataclass(frozen=True, slots=True)
class Out:
    """One message to produce: topic, partition, key."""

    topic: str
    partition: int
    key: bytes
    message: Message


class CoreOptions(TypedDict, total=False):
    """``PositionsCore``'s keyword options, as a service keeps them to build and restore cores."""

    funding_interval_seconds: int | None
    basis_window: int
    shard: Shard


def liquidation_id(symbol_index: int, seq: int, k: int) -> int:
    """Return the id of the k-th liquidation order caused by matcher event ``seq``.

    Bit 62 set keeps it clear of gateway ids; symbol, seq and k make it unique and replayable.
    """
    return (1 << 62) | (symbol_index << 54) | (seq << 20) | k


class PositionsCore:
    """Positions, marks, funding and liquidations of every user on every listed symbol."""

    def __init__(
        self,
        specs: dict[str, SymbolSpec],
        *,
        funding_interval_seconds: int | None = None,
        basis_window: int = 60,
        shard: Shard = ALL_USERS,
    ) -> None:
        self.specs = specs
        # The users whose positions this core keeps: of a book's events it applies their
        # part. Market-wide work (marks to the matcher, mark and funding-rate events) is done
        # by the shard that owns the symbol's market partition, once.
        self.shard = shard
        self.funding_interval_seconds = funding_interval_seconds
        self.basis_window = basis_window
        self.markets = {name: Market(spec) for name, spec in specs.items()}
        self.accounts: dict[int, Account] = {}
        self.insurance = 0  # the insurance fund as the wallet's ledger reports it
        self.insurance_reserved = 0  # fees the fund backs for liquidations in flight
        self.wallet_seq: dict[int, int] = {}  # last wallet.events seq per partition
        self.out_seq: dict[int, int] = {}  # last positions.events seq per partition
        self._out: list[Out] = []
        self._cause = Cause("", 0, 0)

    # -- helpers ---------------------------------------------------------------------------
    def interval_ns(self, spec: SymbolSpec) -> int:
        seconds = self.funding_interval_seconds or spec.funding_interval_seconds
        return seconds * NS

    def account(self, user: int) -> Account:
        account = self.accounts.get(user)
        if account is None:
            account = self.accounts[user] = Account(user)
        return account

    def _event(self, partition: int, key: bytes, build: type, **fields: object) -> None:
        seq = self.out_seq.get(partition, 0) + 1
        self.out_seq[partition] = seq
        message = build(seq=seq, cause=self._cause, **fields)
        self._out.append(Out(EVENTS, partition, key, message))

    def _user_event(self, user: int, build: type, **fields: object) -> None:
        partition = user_partition(user, self.shard.partitions)
        seq = self.out_seq.get(partition, 0) + 1
        self.out_seq[partition] = seq
        message = build(seq=seq, cause=self._cause, user_id=user, **fields)
        self._out.append(Out(EVENTS, partition, str(user).encode(), message))

    def _market_event(self, symbol: str, build: type, **fields: object) -> None:
        spec = self.specs[symbol]
        if not self.shard.owns_market(spec.index):
            return  # another shard says it
        partition = market_partition(spec.index, self.shard.partitions)
        self._event(partition, symbol.encode(), build, symbol=symbol, **fields)

    def _command(self, symbol: str, command: Message) -> None:
        self._out.append(Out(COMMANDS, self.specs[symbol].index, symbol.encode(), command))

    def _take(self) -> list[Out]:
        out, self._out = self._out, []
        return out

    def mark_of(self, symbol: str, position: Position) -> int:
        return f.mark_or_entry(
            self.markets[symbol].spec, position.size, position.entry, self.markets[symbol].mark
        )

    def upnl(self, symbol: str, position: Position) -> int:
        spec = self.specs[symbol]
        return f.unrealised_pnl(spec, position.size, position.entry, self.mark_of(symbol, position))

    def maintenance(self, symbol: str, position: Position) -> int:
        spec = self.specs[symbol]
        notional = spec.notional(self.mark_of(symbol, position), abs(position.size))
        return spec.maintenance_margin(notional)

    def risk(self, account: Account) -> tuple[int, int, int]:
        """Return (uPnL, initial margin, maintenance margin) of an account at the marks."""
        upnl = initial = maintenance = 0
        for symbol, position in account.positions.items():
            spec = self.specs[symbol]
            notional = spec.notional(self.mark_of(symbol, position), abs(position.size))
            upnl += self.upnl(symbol, position)
            maintenance += spec.maintenance_margin(notional)
            leverage = account.leverage.get(symbol, spec.default_leverage)
            initial += f.ceil_div(notional, leverage)
        return upnl, initial, maintenance

    def margin_ratio(self, account: Account) -> int:
        """Return MM / (wallet balance + uPnL) in rate units (cross margin)."""
        upnl, _, maintenance = self.risk(account)
        return f.margin_ratio(maintenance, (account.balance or 0) + upnl)

    def liquidation_price(self, account: Account, symbol: str) -> int:
        """Return the position's cross liquidation price with the others at their marks."""
        position = account.positions[symbol]
        other_mm = other_upnl = 0
        if len(account.positions) > 1:
            for name, other in account.positions.items():
                if name != symbol:
                    other_mm += self.maintenance(name, other)
                    other_upnl += self.upnl(name, other)
        return f.liquidation_price(
            self.specs[symbol],
            position.size,
            position.entry,
            account.balance or 0,
            other_mm,
            other_upnl,
        )

    def _unindex(self, account: Account) -> None:
        for symbol, position in account.positions.items():
            if position.liq != NOT_INDEXED:
                self.markets[symbol].risk.remove(position.size > 0, position.liq, account.user)
                position.liq = NOT_INDEXED

    def _reindex(self, account: Account) -> None:
        """Recompute the account's liquidation prices and file them in the at-risk index."""
        self._unindex(account)
        if account.balance is None or account.liquidating:
            return  # unknown balance: never liquidate on a guess; liquidating: already handled
        for symbol, position in account.positions.items():
            price = self.liquidation_price(account, symbol)
            if position.size > 0 and price == 0:
                continue  # a long that no price can liquidate
            position.liq = price
            self.markets[symbol].risk.add(position.size > 0, price, account.user)

    def _file_multi(self, account: Account) -> None:
        """File the account in ``Market.multi`` of its symbols if it holds more than one."""
        several = len(account.positions) > 1
        for symbol, market in self.markets.items():
            if several and symbol in account.positions:
                market.multi.add(account.user)
            else:
                market.multi.discard(account.user)

    def _account_risk(self, account: Account) -> None:
        upnl, initial, maintenance = self.risk(account)
        self._user_event(
            account.user,
            AccountRisk,
            unrealised_pnl=upnl,
            initial_margin=initial,
            maintenance_margin=maintenance,
        )

    # -- positions from fills ----------------------------------------------------------------
    def _fill(self, user: int, symbol: str, delta: int, price: int, fee: int, trade_id: int) -> int:
        """Apply ``delta`` lots at ``price`` to a position; emit PositionChanged; return PnL."""
        spec = self.specs[symbol]
        market = self.markets[symbol]
        account = self.account(user)
        position = account.positions.get(symbol)
        opened = position is None
        if position is None:
            position = account.positions[symbol] = Position()
        if position.liq != NOT_INDEXED:
            market.risk.remove(position.size > 0, position.liq, user)
            position.liq = NOT_INDEXED
        qty = abs(delta)
        old = position.size
        realised = 0
        if old == 0 or (old > 0) == (delta > 0):
            position.size += delta
            position.entry += spec.notional(price, qty)
            position.fees += fee
        else:
            closing = min(qty, abs(old))
            closed = f.close_entry(position.entry, old, closing)
            realised = f.sign(old) * (spec.notional(price, closing) - closed)
            position.fees -= position.fees * closing // abs(old)
            position.entry -= closed
            position.size += f.sign(delta) * closing
            opening = qty - closing
            if opening:  # the fill flipped the position
                position.size = f.sign(delta) * opening
                position.entry = spec.notional(price, opening)
                position.fees = fee * opening // qty
        market.open_interest += max(position.size, 0) - max(old, 0)
        if account.balance is not None:
            account.balance += realised - fee  # the wallet's next AccountUpdated overrides
        if position.size:
            market.holders[user] = position
        else:
            del account.positions[symbol]
            market.holders.pop(user, None)
        if opened or not position.size:
            self._file_multi(account)
        self._user_event(
            user,
            PositionChanged,
            symbol=symbol,
            trade_id=trade_id,
            size=position.size,
            entry_notional=position.entry,
            realised_pnl=realised,
            fee=fee,
            fees=position.fees if position.size else 0,
        )
        return realised

    def _on_fill(self, event: OrderFilled) -> None:
        symbol, market = event.symbol, self.markets[event.symbol]
        spec = market.spec
        notional = spec.notional(event.price, event.qty)
        taker_fee = spec.fee(notional, maker=False)
        taker_delta = event.qty if event.taker_side == Side.BUY else -event.qty
        owns = self.shard.owns
        if owns(event.taker_user_id):
            taker = event.taker_user_id
            self._fill(taker, symbol, taker_delta, event.price, taker_fee, event.trade_id)
        maker_fee = spec.fee(notional, maker=True)
        if owns(event.maker_user_id):
            maker = event.maker_user_id
            self._fill(maker, symbol, -taker_delta, event.price, maker_fee, event.trade_id)
        market.last_trade = event.price
        liquidation = market.liquidations.get(event.taker_order_id) if event.liquidation else None
        if liquidation is not None:
            bound = spec.notional(liquidation.bankruptcy, event.qty)
            liquidation.surplus += liquidation.side * (notional - bound)
            liquidation.fees += taker_fee
            liquidation.remaining -= event.qty
            if event.taker_remaining == 0 or liquidation.remaining <= 0:
                self._finish_liquidation(symbol, liquidation)
        for user in dict.fromkeys((event.taker_user_id, event.maker_user_id)):
            if not owns(user):
                continue
            account = self.accounts[user]
            if not account.liquidating:
                self._reindex(account)
            self._account_risk(account)

    # -- marks, funding, liquidation checks --------------------------------------------------
    def _on_mark(self, event: MarkPriceSet) -> None:
        symbol, market = event.symbol, self.markets[event.symbol]
        if event.ts <= market.mark_ts:
            return  # a liquidation fence repeating a tick, or a stale one: never go back
        market.mark = event.mark_price
        market.mark_ts = event.ts
        self._funding(symbol, market, event.ts)
        index = market.pending_index.pop(event.ts, None)
        if event.index_price:  # the index the tick was computed from: equal in every shard
            index = event.index_price
        if index is not None:
            for ts in [t for t in market.pending_index if t < event.ts]:
                del market.pending_index[ts]
            mid = market.book.mid()
            reference = mid if mid is not None else market.last_trade
            if reference is not None:
                market.premium_samples += 1
                premium = f.premium_index(reference, index)
                market.premium_sum += market.premium_samples * premium
        self._market_event(
            symbol,
            MarkPriceUpdated,
            mark_price=event.mark_price,
            index_price=index if index is not None else market.index,
            ts=event.ts,
            next_funding_time=market.next_funding,
            # the book's count of every user (0: a log from before the book counted), not the
            # part this engine's users hold
            open_interest=event.open_interest or market.open_interest,
        )
        self._check(symbol, market, event.seq)

    def _funding(self, symbol: str, market: Market, ts: int) -> None:
        """Pay every funding time the mark at ``ts`` reached, each at the crossing mark.

        The first is paid at the interval's average premium; the ones missed after it had no
        samples (no mark arrived), so they are paid at the rate of an empty interval.
        """
        interval = self.interval_ns(market.spec)
        if not market.next_funding:
            market.next_funding = (ts // interval + 1) * interval
            return
        while ts >= market.next_funding:
            premium = f.average_premium(market.premium_sum, market.premium_samples)
            market.last_rate = f.funding_rate(market.spec, premium)
            market.premium_sum = market.premium_samples = 0
            self._pay_funding(symbol, market, market.next_funding)
            market.next_funding += interval

    def _pay_funding(self, symbol: str, market: Market, funding_time: int) -> None:
        rate = market.last_rate
        self._market_event(
            symbol, FundingRateSet, rate=rate, funding_time=funding_time, mark_price=market.mark
        )
        sizes = {user: position.size for user, position in market.holders.items()}
        payments = f.funding_payments(market.spec, rate, market.mark, sizes)
        for user in sorted(payments):
            amount = payments[user]
            account = self.accounts[user]
            if account.balance is not None:
                account.balance += amount
            self._user_event(
                user,
                FundingPaid,
                symbol=symbol,
                amount=amount,
                rate=rate,
                funding_time=funding_time,
            )
            if not account.liquidating:
                self._reindex(account)

    def _check(self, symbol: str, market: Market, seq: int) -> None:
        """Check the accounts whose liquidation price the mark reached, and every account that
        also holds another symbol (its prices here are stale); liquidate the bust.

        Every bust account's cancel-alls (and fences) go out before any of the liquidation
        orders: an order sent first could fill a later bust account's resting order, changing
        a position whose bankruptcy price is already fixed (it would end below zero)."""
        at_risk = set(market.risk.at_risk(market.mark))
        counter = 0
        orders: list[LiquidationOrder] = []
        for user in sorted(at_risk | market.multi):
            account = self.accounts[user]
            if account.liquidating or account.balance is None:
                continue
            upnl, _, maintenance = self.risk(account)
            if maintenance > 0 and maintenance >= account.balance + upnl:
                counter = self._liquidate(account, symbol, seq, counter, orders)
            elif user in at_risk:
                self._reindex(account)  # its price was stale (other marks, balance moved)
            else:
                continue  # a multi-symbol account still safe: nothing to say on every tick
            self._account_risk(account)
        for order in orders:
            self._command(order.symbol, order)

    def _liquidate(
        self,
        account: Account,
        symbol: str,
        seq: int,
        counter: int,
        orders: list[LiquidationOrder],
    ) -> int:
        """Start liquidating every position of a bust account: send its cancel-alls, add its
        liquidation orders to ``orders`` (the caller sends them); return the id counter."""
        self._unindex(account)
        upnl, _, maintenance = self.risk(account)
        equity = (account.balance or 0) + upnl
        symbols = sorted(account.positions)
        plans: list[tuple[str, Position, int]] = []
        allotted = 0
        for i, name in enumerate(symbols):
            position = account.positions[name]
            if i == len(symbols) - 1:
                share = equity - allotted
            else:
                share = equity * self.maintenance(name, position) // maintenance
            allotted += share
            spec = self.specs[name]
            mark = self.mark_of(name, position)
            bankruptcy = f.bankruptcy_price(spec, position.size, mark, share)
            plans.append((name, position, bankruptcy))
            self._user_event(
                account.user,
                LiquidationTriggered,
                symbol=name,
                size=position.size,
                bankruptcy_price=bankruptcy,
                mark_price=mark,
            )
        fees = [
            self.specs[n].fee(self.specs[n].notional(bp, abs(p.size)), maker=False)
            for n, p, bp in plans
        ]
        # The fund backs the taker fee of a close at the bankruptcy price when it can (its
        # spare balance covers every fee of this account). When it cannot, the orders are
        # bounded tighter, at the price whose proceeds pay their own fee: no deficit is left
        # for anyone, and what the book cannot absorb there is deleveraged.
        covered = self.insurance - self.insurance_reserved >= sum(fees)
        index = self.specs[symbol].index
        for (name, position, bankruptcy), fee in zip(plans, fees, strict=True):
            market = self.markets[name]
            # the shard in the id: shards liquidating on the same mark never share one
            order_id = liquidation_id(
                index, seq, counter * self.shard.partitions + self.shard.partition
            )
            counter += 1
            qty = abs(position.size)
            side = f.sign(position.size)
            reserve = fee if covered else 0
            bound = bankruptcy if covered else f.fee_covering_bound(market.spec, side, bankruptcy)
            self.insurance_reserved += reserve
            market.liquidations[order_id] = Liquidation(
                order_id, account.user, side, bankruptcy, qty, qty, reserve=reserve
            )
            account.liquidating += 1
            request = f"liq:{order_id}"
            self._command(name, CancelAll(request_id=request, user_id=account.user, symbol=name))
            fence_mark, fence_ts = market.sent_mark, market.sent_ts
            if not fence_mark:  # no tick sent by this engine yet: repeat the applied one
                fence_mark, fence_ts = market.mark, market.mark_ts
            if fence_mark:
                # A fence: the matcher applies what precedes it first, so the cancels land
                # before the liquidation order (which a batch would otherwise put first). It
                # repeats the last tick sent, so the matcher's mark never steps back.
                self._command(name, MarkPriceTick(symbol=name, mark_price=fence_mark, ts=fence_ts))
            orders.append(
                LiquidationOrder(
                    request_id=request,
                    order_id=order_id,
                    user_id=account.user,
                    symbol=name,
                    side=Side.SELL if side > 0 else Side.BUY,
                    qty=qty,
                    price=bound,
                    ts=market.mark_ts,
                )
            )
        return counter

    def _finish_liquidation(self, symbol: str, liquidation: Liquidation) -> None:
        """The liquidation order ended: send what is left of the position to be deleveraged
        (the book's ``Deleveraged`` then settles it), or settle now."""
        if liquidation.adl:
            return  # already deleveraging
        account = self.account(liquidation.user)
        position = account.positions.get(symbol)
        if (
            liquidation.remaining > 0
            and position is not None
            and f.sign(position.size) == liquidation.side
        ):
            qty = min(liquidation.remaining, abs(position.size))
            counterparties = self._adl_counterparties(symbol, liquidation.side, account.user, qty)
            if counterparties:
                liquidation.adl = qty
                self._command(
                    symbol,
                    Deleverage(
                        liquidation_id=liquidation.order_id,
                        user_id=account.user,
                        symbol=symbol,
                        side=Side.SELL if liquidation.side > 0 else Side.BUY,
                        qty=qty,
                        price=liquidation.bankruptcy,
                        counterparties=counterparties,
                        ts=self.markets[symbol].mark_ts,
                    ),
                )
                return
        self._settle(symbol, liquidation)

    def _settle(self, symbol: str, liquidation: Liquidation) -> None:
        """End a liquidation: book its insurance delta, let the account be checked again."""
        self.markets[symbol].liquidations.pop(liquidation.order_id, None)
        self.insurance_reserved -= liquidation.reserve
        account = self.account(liquidation.user)
        self._user_event(
            account.user,
            LiquidationSettled,
            symbol=symbol,
            insurance_delta=liquidation.surplus - liquidation.fees,
        )
        account.liquidating = max(0, account.liquidating - 1)
        if not account.liquidating:
            self._reindex(account)

    def _adl_counterparties(self, symbol: str, side: int, bust: int, qty: int) -> tuple[int, ...]:
        """Return the head of the ADL ranking whose positions cover ``qty`` twice over (they
        may shrink before the book applies the command), at most ``ADL_COUNTERPARTIES``."""
        holders = self.markets[symbol].holders
        chosen: list[int] = []
        covered = 0
        for user in self.adl_ranking(symbol, side, bust):
            if covered >= 2 * qty or len(chosen) == ADL_COUNTERPARTIES:
                break
            chosen.append(user)
            covered += abs(holders[user].size)
        return tuple(chosen)

    def adl_ranking(self, symbol: str, side: int, exclude: int) -> list[int]:
        """Return the opposite positions to a bust ``side``, most deleveraged first.

        Binance's ranking: PnL% x effective leverage when in profit, PnL% / leverage otherwise,
        with PnL% = uPnL / entry notional and effective leverage = |notional at mark| /
        (balance + uPnL); ties go to the smaller user id.
        """
        market = self.markets[symbol]
        scored: list[tuple[Fraction, int]] = []
        for user, position in market.holders.items():
            account = self.accounts[user]
            if user == exclude or f.sign(position.size) != -side or account.liquidating:
                continue
            upnl = self.upnl(symbol, position)
            pnl = Fraction(upnl, position.entry or 1)
            notional = market.spec.notional(self.mark_of(symbol, position), abs(position.size))
            total_upnl, _, _ = self.risk(account)
            margin = (account.balance or 0) + total_upnl
            leverage = Fraction(notional, margin) if margin > 0 else Fraction(10**18)
            score = pnl * leverage if pnl > 0 else pnl / max(leverage, Fraction(1, 10**18))
            scored.append((-score, user))
        scored.sort()
        return [user for _, user in scored]

    def _on_deleveraged(self, event: Deleveraged) -> None:
        """Apply what the book deleveraged, like fee-free fills at the bankruptcy price, then
        settle the liquidation it ends."""
        symbol, bust = event.symbol, event.user_id
        owns = self.shard.owns
        for match in event.matches:
            user, qty = match.user_id, match.qty
            delta = qty if event.side == Side.BUY else -qty  # the bust's: its closing side
            if owns(user):
                self._fill(user, symbol, -delta, event.price, 0, match.trade_id)
            if owns(bust):
                self._fill(bust, symbol, delta, event.price, 0, match.trade_id)
            for mine, theirs in ((user, bust), (bust, user)):
                if not owns(mine):
                    continue
                self._user_event(
                    mine,
                    AutoDeleveraged,
                    symbol=symbol,
                    qty=qty,
                    price=event.price,
                    counterparty_user_id=theirs,
                )
            if owns(user):
                self._reindex(self.accounts[user])
        liquidation = self.markets[symbol].liquidations.get(event.liquidation_id)
        if liquidation is not None and liquidation.adl:
            self._settle(symbol, liquidation)
        elif event.matches and owns(bust) and not self.accounts[bust].liquidating:
            self._reindex(self.accounts[bust])

    # -- inputs ------------------------------------------------------------------------------
    def apply_matcher(self, event: MatcherEvent, cause: Cause) -> list[Out]:
        """Apply one matcher event (once: a seq at or below the last applied is dropped)."""
        market = self.markets.get(event.symbol)
        if market is None or event.seq <= market.seq:
            return []
        market.seq = event.seq
        self._cause = cause
        market.book.apply(event)
        # dispatch on the exact type; mypy does not narrow through `kind`, hence the casts
        kind = type(event)
        if kind is OrderFilled:
            self._on_fill(cast(OrderFilled, event))
        elif kind is MarkPriceSet:
            self._on_mark(cast(MarkPriceSet, event))
        elif kind is Deleveraged:
            self._on_deleveraged(cast(Deleveraged, event))
        elif kind is OrderExpired or kind is OrderRejected:
            ended = cast("OrderExpired | OrderRejected", event)
            liquidation = market.liquidations.get(ended.order_id or 0)
            if liquidation is not None:
                self._finish_liquidation(event.symbol, liquidation)
        return self._take()

    def apply_wallet(self, event: WalletEvent, cause: Cause) -> list[Out]:
        """Apply one wallet event: balances, leverage settings, the insurance fund."""
        if event.seq <= self.wallet_seq.get(cause.partition, 0):
            return []
        self.wallet_seq[cause.partition] = event.seq
        self._cause = cause
        # dispatch on the exact type; mypy does not narrow through `kind`, hence the casts
        kind = type(event)
        if kind is AccountUpdated:
            updated = cast(AccountUpdated, event)
            account = self.account(updated.user_id)
            account.balance = updated.balance
            if not account.liquidating:
                self._reindex(account)
        elif kind is LedgerPosted:
            for leg in cast(LedgerPosted, event).legs:
                if leg.kind == LedgerAccountKind.INSURANCE:
                    self.insurance += leg.amount
        elif kind is LeverageSet:
            lev = cast(LeverageSet, event)
            self.account(lev.user_id).leverage[lev.symbol] = lev.leverage
        return self._take()

    def apply_index(self, tick: IndexPriceTick, cause: Cause) -> list[Out]:
        """Take an index price; compute the mark and send it to the matcher as a tick."""
        market = self.markets.get(tick.symbol)
        if market is None or tick.ts <= market.index_ts or tick.price <= 0:
            return []
        if not self.shard.owns_market(market.spec.index):
            return []  # its marks come from another shard, with their index (MarkPriceSet)
        self._cause = cause
        market.index, market.index_ts = tick.price, tick.ts
        mid = market.book.mid()
        if mid is not None:
            market.basis.append(mid - tick.price)
            while len(market.basis) > self.basis_window:
                market.basis.popleft()
        average = None
        if market.basis:
            total = sum(market.basis)
            n = len(market.basis)
            average = total // n if total >= 0 else -((-total) // n)
        interval = self.interval_ns(market.spec)
        to_funding = (market.next_funding - tick.ts) if market.next_funding else interval
        to_funding = min(max(to_funding, 0), interval)
        mark = f.mark_price(
            tick.price, market.last_rate, to_funding, interval, average, market.last_trade
        )
        market.pending_index[tick.ts] = tick.price
        while len(market.pending_index) > PENDING_INDEX_LIMIT:
            del market.pending_index[next(iter(market.pending_index))]
        market.sent_mark, market.sent_ts = max(mark, 1), tick.ts
        self._command(
            tick.symbol,
            MarkPriceTick(
                symbol=tick.symbol, mark_price=market.sent_mark, ts=tick.ts, index_price=tick.price
            ),
        )
        return self._take()

    # -- snapshot (the convention of libs/state.py) -------------------------------------------
    def to_state(self) -> PositionsState:
        """Return the whole state as a canonical value (equal histories, equal states)."""
        markets = []
        for name in sorted(self.markets):
            m = self.markets[name]
            markets.append(
                MarketState(
                    name,
                    m.seq,
                    m.mark,
                    m.mark_ts,
                    m.last_trade,
                    m.index,
                    m.index_ts,
                    list(m.basis),
                    sorted(m.pending_index.items()),
                    m.next_funding,
                    m.last_rate,
                    m.premium_sum,
                    m.premium_samples,
                    [
                        LiquidationState(
                            o.order_id,
                            o.user,
                            o.side,
                            o.bankruptcy,
                            o.qty,
                            o.remaining,
                            o.surplus,
                            o.fees,
                            o.reserve,
                            o.adl,
                        )
                        for _, o in sorted(m.liquidations.items())
                    ],
                    m.book.to_state(),
                    m.sent_mark,
                    m.sent_ts,
                )
            )
        accounts = [
            AccountState(
                user,
                a.balance,
                a.liquidating,
                sorted(a.leverage.items()),
                [PositionState(s, p.size, p.entry, p.fees) for s, p in sorted(a.positions.items())],
            )
            for user, a in sorted(self.accounts.items())
        ]
        return PositionsState(
            VERSION,
            markets,
            accounts,
            self.insurance,
            sorted(self.wallet_seq.items()),
            sorted(self.out_seq.items()),
        )

    @classmethod
    def from_state(
        cls, specs: dict[str, SymbolSpec], state: PositionsState, **options: Unpack[CoreOptions]
    ) -> PositionsCore:
        """Return a core of ``specs`` holding ``state``."""
        core = cls(specs, **options)
        for saved in state.markets:
            m = core.markets[saved.symbol]
            m.seq, m.mark, m.mark_ts = saved.seq, saved.mark, saved.mark_ts
            m.last_trade, m.index, m.index_ts = saved.last_trade, saved.index, saved.index_ts
            m.basis = deque(saved.basis)
            m.pending_index = dict(saved.pending_index)
            m.next_funding, m.last_rate = saved.next_funding, saved.last_rate
            m.premium_sum, m.premium_samples = saved.premium_sum, saved.premium_samples
            for o in saved.liquidations:
                m.liquidations[o.order_id] = Liquidation(*msgspec.structs.astuple(o))
                core.insurance_reserved += o.reserve
            m.book = TopOfBook.from_state(saved.book)
            m.sent_mark, m.sent_ts = saved.sent_mark, saved.sent_ts
        for a in state.accounts:
            account = core.account(a.user)
            account.balance, account.liquidating = a.balance, a.liquidating
            account.leverage = dict(a.leverage)
            for p in a.positions:
                position = Position(p.size, p.entry, p.fees)
                account.positions[p.symbol] = position
                core.markets[p.symbol].holders[a.user] = position
                core.markets[p.symbol].open_interest += max(p.size, 0)
            core._file_multi(account)
        for user in sorted(core.accounts):
            account = core.accounts[user]
            if not account.liquidating:
                core._reindex(account)
        core.insurance = state.insurance
        core.wallet_seq = dict(state.wallet_seq)
        core.out_seq = dict(state.out_seq)
        return core

    def snapshot(self) -> bytes:
        return POSITIONS_STATE.encode(self.to_state())

    @classmethod
    def restore(
        cls, specs: dict[str, SymbolSpec], data: bytes, **options: Unpack[CoreOptions]
    ) -> PositionsCore:
        return cls.from_state(specs, POSITIONS_STATE.decode(data), **options)

    def digest(self) -> str:
        return POSITIONS_STATE.digest(self.to_state())
