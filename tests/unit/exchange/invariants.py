"""What must hold of a settled exchange, checked against its logs (the topics), not its code.

Each check reads the logs a `Network` wrote and the engines' states, and returns a list of
violations (empty when the rule holds), so a failing property says what went wrong.
"""

from __future__ import annotations

from libs.codes import UNKNOWN_ORDER
from libs.messages import (
    AmendOrder,
    BatchCompleted,
    CancelAll,
    CancelOrder,
    Deleveraged,
    Deposit,
    LedgerAccountKind,
    LedgerPosted,
    LiquidationOrder,
    OrderAccepted,
    OrderAmended,
    OrderCancelled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderRequestRejected,
    PlaceOrder,
    RejectRequest,
    Side,
    WithdrawalCompleted,
)
from tests.unit.exchange.network import Network

USER_COMMANDS = (PlaceOrder, CancelOrder, CancelAll, AmendOrder, RejectRequest)
ANSWERS = (OrderAccepted, OrderRejected, OrderCancelled, OrderAmended)


def position_changes(event) -> list[tuple[int, int]]:
    """Return the (user, signed lots) moves of position a matcher event makes."""
    if type(event) is OrderFilled:
        taker = event.qty if event.taker_side is Side.BUY else -event.qty
        return [(event.taker_user_id, taker), (event.maker_user_id, -taker)]
    if type(event) is Deleveraged:  # the bust position closed against each counterparty
        sign = 1 if event.side is Side.BUY else -1
        moves = []
        for match in event.matches:
            moves += [(event.user_id, sign * match.qty), (match.user_id, -sign * match.qty)]
        return moves
    return []


def user_commands_in_log_order(net: Network, symbol: str) -> list[str]:
    """Each user's commands take effect in their log order, however the log was batched.

    The first answer to each command (accepted, rejected, cancelled, amended) names the
    command's offset; per user those offsets must rise. A cancel may say "unknown order" for
    an order the same user placed before it only once that order has ended; after a batch
    with a cancel-all, none of that user's orders placed before it is open.
    """
    commands, wrong = net.commands(symbol), []
    first_seen: set[int] = set()
    last_answered: dict[int, int] = {}
    placed_at: dict[int, int] = {}  # order id -> offset of its PlaceOrder
    open_orders: dict[int, int] = {}  # order id -> user
    ended: set[int] = set()
    for event in net.matcher_events(symbol):
        kind = type(event)
        if kind is BatchCompleted:
            for offset in range(event.first_offset, event.cmd_offset + 1):
                cmd = commands[offset]
                if type(cmd) is CancelAll:
                    left = [
                        o
                        for o, u in open_orders.items()
                        if u == cmd.user_id and placed_at.get(o, offset) < offset
                    ]
                    if left:
                        wrong.append(f"{symbol}@{offset}: cancel-all left orders {left} open")
            continue
        cmd = commands[event.cmd_offset]
        if kind in ANSWERS and isinstance(cmd, USER_COMMANDS) and event.user_id == cmd.user_id:
            if event.cmd_offset not in first_seen:
                first_seen.add(event.cmd_offset)
                before = last_answered.get(cmd.user_id, -1)
                if event.cmd_offset < before:
                    wrong.append(
                        f"{symbol}: user {cmd.user_id}'s command @{event.cmd_offset} took "
                        f"effect after their command @{before}"
                    )
                last_answered[cmd.user_id] = max(before, event.cmd_offset)
            if kind is OrderRejected and event.code == UNKNOWN_ORDER and type(cmd) is CancelOrder:
                target = cmd.order_id
                if (
                    placed_at.get(target, event.cmd_offset) < event.cmd_offset
                    and target not in ended
                ):
                    wrong.append(f"{symbol}@{event.cmd_offset}: cancel of open order {target}")
        if kind is OrderAccepted:
            open_orders[event.order_id] = event.user_id
            placed_at.setdefault(event.order_id, event.cmd_offset)
        elif kind is OrderFilled:
            for order, remaining in (
                (event.taker_order_id, event.taker_remaining),
                (event.maker_order_id, event.maker_remaining),
            ):
                if remaining == 0:
                    open_orders.pop(order, None)
                    ended.add(order)
        elif kind in (OrderCancelled, OrderExpired) or (
            kind is OrderRejected and event.order_id and not event.pre_trade  # not the wallet's
        ):
            open_orders.pop(event.order_id, None)
            ended.add(event.order_id)
    for offset, cmd in enumerate(commands):  # placements the matcher never answered are bugs
        if type(cmd) is PlaceOrder and offset not in first_seen:
            wrong.append(f"{symbol}@{offset}: place of order {cmd.order_id} got no answer")
    return wrong


def reduce_only_never_grows(net: Network, symbol: str) -> list[str]:
    """A reduce-only, close-position or liquidation order never opens or grows a position."""
    reducing = {
        c.order_id
        for c in net.commands(symbol)
        if (type(c) is PlaceOrder and (c.reduce_only or c.close_position))
        or type(c) is LiquidationOrder
    }
    held: dict[int, int] = {}
    wrong = []
    for event in net.matcher_events(symbol):
        moves = position_changes(event)
        orders = (event.taker_order_id, event.maker_order_id) if type(event) is OrderFilled else ()
        for i, (user, delta) in enumerate(moves):
            before = held.get(user, 0)
            after = held[user] = before + delta
            grew = before == 0 or abs(after) > abs(before) or before * after < 0
            if i < len(orders) and orders[i] in reducing and grew:
                wrong.append(
                    f"{symbol}: reducing order {orders[i]} of user {user} took the position "
                    f"from {before} to {after}"
                )
    return wrong


def positions_agree(net: Network) -> list[str]:
    """The matcher, the position engine and the wallet hold the same position for everyone."""
    wrong = []
    for symbol, book in net.books.items():
        users = set(book.positions)
        users |= {u for u, a in net.positions.accounts.items() if symbol in a.positions}
        users |= {u for u, p in net.wallet.positions.items() if symbol in p}
        for user in sorted(users):
            matcher = book.positions.get(user, 0)
            account = net.positions.accounts.get(user)
            engine = (
                account.positions[symbol].size if account and symbol in account.positions else 0
            )
            wallet = net.wallet.positions.get(user, {}).get(symbol, (0, 0))[0]
            if not matcher == engine == wallet:
                wrong.append(
                    f"{symbol} user {user}: matcher {matcher}, positions {engine}, wallet {wallet}"
                )
        replayed: dict[int, int] = {}
        for event in net.matcher_events(symbol):
            for user, delta in position_changes(event):
                replayed[user] = replayed.get(user, 0) + delta
        if {u: s for u, s in replayed.items() if s} != {
            u: s for u, s in book.positions.items() if s
        }:
            wrong.append(f"{symbol}: the matcher's positions are not the sum of its events")
    return wrong


def money_conserved(net: Network) -> list[str]:
    """Every entry sums to zero; users' money + fees + insurance + funding + open uPnL equals
    what came in minus what went out, tallied from the requests and the wallet's answers."""
    wrong = []
    wallet_events = net.topic("wallet.events")
    for event in wallet_events:
        if type(event) is LedgerPosted and sum(leg.amount for leg in event.legs) != 0:
            wrong.append(f"ledger entry {event.entry_id} does not sum to zero")
    refused = {e.request_id for e in wallet_events if type(e) is OrderRequestRejected}
    deposited = sum(
        r.amount
        for r in net.topic("orders.requests")
        if type(r) is Deposit and r.request_id not in refused
    )
    withdrawn = sum(e.amount for e in wallet_events if type(e) is WithdrawalCompleted)
    ledger, core = net.wallet.ledger, net.positions
    users = {owner for kind, owner in ledger.balances if kind is LedgerAccountKind.USER}
    held = sum(
        ledger.balance(kind)
        for kind in (LedgerAccountKind.FEES, LedgerAccountKind.INSURANCE, LedgerAccountKind.FUNDING)
    )
    unrealised = sum(
        core.upnl(name, p) for a in core.accounts.values() for name, p in a.positions.items()
    )
    inside = sum(net.wallet.balance(u) for u in users) + held + unrealised
    if inside != deposited - withdrawn:
        wrong.append(
            f"money inside {inside} != deposits {deposited} - withdrawals {withdrawn} "
            f"(off by {inside - deposited + withdrawn})"
        )
    return wrong


def everything(net: Network) -> list[str]:
    wrong = positions_agree(net) + money_conserved(net)
    for symbol in net.books:
        wrong += user_commands_in_log_order(net, symbol) + reduce_only_never_grows(net, symbol)
    return wrong
