"""Positions from fills: size, entry, realised PnL on reduce and flip, fees, idempotence."""

from __future__ import annotations

from libs.messages import AccountRisk, MarkPriceUpdated, OrderFilled, PositionChanged, Side
from libs.read_model.positions import PositionFacts, view
from tests.unit.positions.kit import BTC, Feed, lots, messages, read_view, ticks, usdt


def changed(out, user):
    return [m for m in messages(out, PositionChanged) if m.user_id == user]


def test_a_fill_opens_opposite_positions_for_taker_and_maker_with_their_fees():
    feed = Feed()
    out = feed.fill(1, 2, "50000", "1")
    (buyer,) = changed(out, 1)
    (seller,) = changed(out, 2)
    assert (buyer.size, buyer.entry_notional, buyer.realised_pnl) == (lots("1"), usdt("50000"), 0)
    assert (seller.size, seller.entry_notional) == (-lots("1"), usdt("50000"))
    assert buyer.fee == usdt("25")  # taker 0.05%
    assert seller.fee == usdt("10")  # maker 0.02%
    assert len(messages(out, AccountRisk)) == 2


def test_adding_averages_the_entry_and_reducing_realises_pnl():
    feed = Feed()
    feed.fill(1, 2, "50000", "1")
    feed.fill(1, 2, "52000", "1")
    position = feed.core.accounts[1].positions["BTC-PERP"]
    assert position.entry == usdt("102000")  # average entry 51000
    out = feed.fill(3, 1, "53000", "1.5", taker="sell")
    (reduce,) = changed(out, 1)
    # closes 1.5 of 2: entry part 76500, value 79500 -> +3000
    assert reduce.realised_pnl == usdt("3000")
    assert (reduce.size, reduce.entry_notional) == (lots("0.5"), usdt("25500"))


def test_a_flip_realises_the_old_side_and_opens_the_rest_at_the_fill_price():
    feed = Feed()
    feed.fill(1, 2, "51000", "0.5")
    out = feed.fill(3, 1, "50000", "1.5", taker="sell")
    (flip,) = changed(out, 1)
    assert flip.realised_pnl == usdt("-500")  # 0.5 closed at 50000 from 51000
    assert (flip.size, flip.entry_notional) == (-lots("1"), usdt("50000"))


def test_a_short_profits_when_price_falls():
    feed = Feed()
    feed.fill(2, 1, "50000", "2", taker="sell")
    out = feed.fill(1, 3, "48000", "2")
    (close,) = changed(out, 1)
    assert close.realised_pnl == usdt("4000")
    assert close.size == 0
    assert "BTC-PERP" not in feed.core.accounts[1].positions


def test_a_replayed_matcher_event_is_applied_once():
    feed = Feed()
    fill = OrderFilled(
        symbol="BTC-PERP",
        seq=1,
        cmd_offset=0,
        trade_id=1,
        price=ticks("50000"),
        qty=lots("1"),
        taker_order_id=1,
        taker_user_id=1,
        taker_side=Side.BUY,
        taker_remaining=0,
        maker_order_id=2,
        maker_user_id=2,
        maker_remaining=0,
    )
    assert feed.matcher(fill)
    digest = feed.core.digest()
    assert feed.matcher(fill) == []
    assert feed.core.digest() == digest


def test_a_self_trade_leaves_the_position_unchanged():
    feed = Feed()
    feed.fill(1, 2, "50000", "1")
    feed.fill(1, 1, "50500", "0.5")
    assert feed.core.accounts[1].positions["BTC-PERP"].size == lots("1")


def test_the_read_model_shows_entry_break_even_mark_upnl_and_liquidation_price():
    feed = Feed()
    feed.balance(1, "10000")
    feed.fill(1, 2, "50000", "1")
    feed.mark("51000", 1)
    view = read_view(feed.core, 1)["BTC-PERP"]
    assert view["size"] == lots("1")
    assert view["entry_price"] == ticks("50000")
    assert view["mark"] == ticks("51000")
    assert view["upnl"] == usdt("1000")
    assert view["break_even"] == ticks("50050.1")  # entry + the 25 USDT taker fee, net of close
    assert view["liq_price"] > 0
    assert 0 < view["margin_ratio"] < 100 * 10**6


def test_the_local_balance_follows_realised_pnl_and_fees_until_the_wallet_speaks():
    feed = Feed()
    feed.balance(1, "1000")
    feed.fill(1, 2, "50000", "1")
    feed.fill(3, 1, "50100", "1", taker="sell")
    # -25 taker fee, +100 realised, -25.05 taker fee on the close
    assert feed.core.accounts[1].balance == usdt("1000") - usdt("25") + usdt("100") - usdt("25.05")
    feed.balance(1, "999")
    assert feed.core.accounts[1].balance == usdt("999")


def test_snapshot_restore_gives_the_same_digest_and_the_same_future():
    feed = Feed()
    feed.balance(1, "5000")
    feed.fill(1, 2, "50000", "1")
    feed.index("50010", 10)
    feed.mark("50010", 10)
    restored = Feed(type(feed.core).restore(feed.core.specs, feed.core.snapshot()))
    restored.seq = dict(feed.seq)
    restored.trade, restored.offset = feed.trade, feed.offset
    assert restored.core.digest() == feed.core.digest()
    a = feed.fill(3, 1, "49000", "0.3", taker="sell")
    b = restored.fill(3, 1, "49000", "0.3", taker="sell")
    assert [o.message for o in a] == [o.message for o in b]
    assert restored.core.digest() == feed.core.digest()
    assert BTC.name in restored.core.markets


def test_the_events_tell_the_read_side_enough_to_compute_the_engines_view():
    """The projector keeps what ``PositionChanged``, ``MarkPriceUpdated`` and the balance say;
    the gateway computes the view from them with the engine's own formulas."""
    feed = Feed()
    feed.balance(1, "10000")
    out = feed.fill(1, 2, "50000", "1")
    out += feed.fill(1, 3, "52000", "0.5")
    out += feed.fill(4, 1, "53000", "0.7", taker="sell")  # reduces: the fees shrink with it
    out += feed.mark("51000", 1)
    facts = {m.symbol: PositionFacts(m.size, m.entry_notional, m.fees) for m in changed(out, 1)}
    [mark] = messages(out, MarkPriceUpdated)
    assert mark.next_funding_time > mark.ts
    account = feed.core.accounts[1]
    computed = view(feed.core.specs, facts, account.balance, {"BTC-PERP": mark.mark_price})
    assert computed == read_view(feed.core, 1)
    shown = computed["BTC-PERP"]  # the engine's own rules agree with the view
    assert shown["liq_price"] == feed.core.liquidation_price(account, "BTC-PERP")
    assert shown["margin_ratio"] == feed.core.margin_ratio(account)
    assert facts["BTC-PERP"].fees == account.positions["BTC-PERP"].fees > 0
