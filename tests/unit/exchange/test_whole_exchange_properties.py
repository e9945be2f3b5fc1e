"""Random trading through the real wallet, matching and position cores, wired as the topics wire
them, under random schedules and batch cuts (tests/unit/exchange/network.py).

After every burst of requests settles: each user's commands took effect in their log order,
every engine holds the same positions, reducing orders never opened or grew a position, money is
conserved. Then the same command logs are replayed in other batch cuts and must again keep every
user's order (tests/unit/exchange/invariants.py says how each rule is read off the logs).
"""

from __future__ import annotations

import random

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from libs.messages import (
    AmendOrder,
    AutoDeleveraged,
    CancelAll,
    CancelOrder,
    Deposit,
    LiquidationTriggered,
    OrderType,
    PlaceOrder,
    SetLeverage,
    Side,
    TimeInForce,
    Withdraw,
)
from libs.money import parse_cash
from services.matcher.core import MatchingCore
from tests.unit.exchange import invariants
from tests.unit.exchange.network import Network

SYMBOL = "BTC-PERP"
MAKER, TAPE = 100, 200  # the market maker; a taker that prints a trade at each new level
TRADERS = (1, 2, 3, 4)
NS = 1_000_000_000
FUNDING_SECONDS = 10
START = 500_000  # 50,000.0 in ticks of 0.1

place_kinds = st.sampled_from(
    [
        (OrderType.LIMIT, TimeInForce.GTC),
        (OrderType.LIMIT, TimeInForce.GTC),
        (OrderType.LIMIT, TimeInForce.IOC),
        (OrderType.LIMIT, TimeInForce.FOK),
        (OrderType.LIMIT, TimeInForce.GTX),
        (OrderType.MARKET, TimeInForce.IOC),
    ]
)
trader = st.sampled_from(TRADERS)
place = st.tuples(
    st.just("place"),
    trader,
    st.sampled_from([Side.BUY, Side.SELL]),
    place_kinds,
    st.integers(-60, 60),  # price offset from the index, in basis points
    st.sampled_from([3, 10, 40, 100, 250, 400]),  # lots of 0.001 BTC
    st.sampled_from(["", "", "", "reduce", "close"]),
)
by_kind = {
    "place": place,
    "cancel": st.tuples(st.just("cancel"), trader, st.integers(0, 40)),  # k-th newest own order
    "cancel_all": st.tuples(st.just("cancel_all"), trader),
    "amend": st.tuples(
        st.just("amend"), trader, st.integers(0, 40), st.integers(-40, 40), st.integers(1, 400)
    ),
    "move": st.tuples(  # the index moves (basis points); does the maker requote?
        st.just("move"), st.sampled_from([-400, -200, -80, -20, 20, 80, 200, 400]), st.booleans()
    ),
    "funding": st.tuples(st.just("funding")),  # a funding time passes
    "withdraw": st.tuples(st.just("withdraw"), trader, st.integers(1, 100)),
}
weights = ["place"] * 6 + ["cancel"] * 2 + ["cancel_all", "amend", "move", "move", "funding"]
actions = st.sampled_from([*weights, "withdraw"]).flatmap(by_kind.__getitem__)
seeds = st.integers(0, 2**32).map(random.Random)  # the schedule: who reads next, batch cuts
bursts = st.lists(st.lists(actions, min_size=1, max_size=6), min_size=4, max_size=14)


class Market:
    """Sends the requests a burst of actions stands for, as the gateway would."""

    def __init__(self, net: Network) -> None:
        self.net = net
        self.spec = net.specs[SYMBOL]
        self.ids = iter(range(1, 1 << 40))
        self.sent: dict[int, list[int]] = {user: [] for user in (*TRADERS, MAKER, TAPE)}
        self.index_price = START
        self.ts = NS

    def _rid(self, kind: str) -> str:
        return f"{kind}{next(self.ids)}"

    def send_place(self, user, side, kind, tif, offset_bp, lots, flag) -> None:
        order_id = next(self.ids)
        price = self.index_price * (10_000 + offset_bp) // 10_000
        self.sent[user].append(order_id)
        self.net.request(
            PlaceOrder(
                request_id=f"p{order_id}",
                order_id=order_id,
                user_id=user,
                symbol=SYMBOL,
                side=side,
                order_type=kind,
                qty=0 if flag == "close" and kind is OrderType.MARKET else lots,
                price=None if kind is OrderType.MARKET else price,
                tif=tif,
                reduce_only=flag == "reduce",
                close_position=flag == "close" and kind is OrderType.MARKET,
            )
        )

    def quote(self) -> None:
        """The market maker replaces its quotes around the index: two levels a side."""
        self.net.request(CancelAll(request_id=self._rid("mm"), user_id=MAKER, symbol=SYMBOL))
        for side, sign in ((Side.BUY, -1), (Side.SELL, 1)):
            for bp, lots in ((5, 300), (25, 2_000)):
                self.send_place(MAKER, side, OrderType.LIMIT, TimeInForce.GTC, sign * bp, lots, "")

    def tick(self) -> None:
        self.net.index(SYMBOL, self.index_price, self.ts)

    def act(self, action: tuple) -> None:
        kind, *args = action
        if kind == "place":
            user, side, (order_type, tif), offset, lots, flag = args
            self.send_place(user, side, order_type, tif, offset, lots, flag)
        elif kind in ("cancel", "amend"):
            user, k = args[0], args[1]
            mine = self.sent[user]
            if not mine:
                return
            target = mine[-1 - k % len(mine)]
            if kind == "cancel":
                self.net.request(
                    CancelOrder(
                        request_id=self._rid("c"), user_id=user, symbol=SYMBOL, order_id=target
                    )
                )
            else:
                offset, lots = args[2], args[3]
                self.net.request(
                    AmendOrder(
                        request_id=self._rid("a"),
                        user_id=user,
                        symbol=SYMBOL,
                        order_id=target,
                        price=self.index_price * (10_000 + offset) // 10_000,
                        qty=lots,
                    )
                )
        elif kind == "cancel_all":
            self.net.request(CancelAll(request_id=self._rid("ca"), user_id=args[0], symbol=SYMBOL))
        elif kind == "move":
            bp, requote = args
            self.index_price = self.index_price * (10_000 + bp) // 10_000
            self.ts += NS
            if requote:  # and a trade there, so that the last price follows (the mark uses it)
                self.quote()
                side = Side.SELL if bp < 0 else Side.BUY
                self.send_place(TAPE, side, OrderType.MARKET, TimeInForce.IOC, 0, 3, "")
            self.tick()
        elif kind == "funding":
            self.ts += FUNDING_SECONDS * NS
            self.tick()
        elif kind == "withdraw":
            user, usdt = args
            self.net.request(
                Withdraw(request_id=self._rid("w"), user_id=user, amount=parse_cash(str(usdt)))
            )


def open_exchange(rng: random.Random) -> tuple[Network, Market]:
    net = Network(rng, funding_interval_seconds=FUNDING_SECONDS)
    market = Market(net)
    for user, usdt in ((MAKER, "10000000"), (TAPE, "100000"), *((u, "600") for u in TRADERS)):
        net.request(Deposit(request_id=f"d{user}", user_id=user, amount=parse_cash(usdt)))
    for user in TRADERS:
        net.request(SetLeverage(request_id=f"l{user}", user_id=user, symbol=SYMBOL, leverage=50))
    market.tick()
    market.quote()
    net.settle()
    return net, market


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(bursts, seeds)
def test_whatever_the_flow_schedule_and_batch_cuts_every_rule_holds_after_every_step(steps, rng):
    net, market = open_exchange(rng)
    for burst in steps:
        for action in burst:
            market.act(action)
        net.settle()
        assert invariants.everything(net) == []
    kinds = {type(e) for e in net.topic("positions.events")}
    event(f"liquidated: {LiquidationTriggered in kinds}, deleveraged: {AutoDeleveraged in kinds}")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bursts, seeds, seeds)
def test_cutting_the_same_command_log_into_other_batches_keeps_every_users_order(steps, rng, cuts):
    net, market = open_exchange(rng)
    for burst in steps:
        for action in burst:
            market.act(action)
        net.settle()
    for symbol, spec in net.specs.items():
        commands = net.commands(symbol)
        replay = Network(cuts)
        core = replay.books[symbol] = MatchingCore(spec)
        replay.logs[("orders.commands", spec.index)] = list(commands)
        offset = 0
        while offset < len(commands):
            size = cuts.randint(1, 12)
            batch = list(enumerate(commands))[offset : offset + size]
            for e in core.process_batch(batch):
                replay.append("matcher.events", spec.index, e)
            offset += size
        assert invariants.user_commands_in_log_order(replay, symbol) == []
        assert invariants.reduce_only_never_grows(replay, symbol) == []
