"""Message contracts: every command and event on the bus, and their wire codec."""

from libs.messages.base import Command, Event, Message
from libs.messages.codec import ALL_MESSAGES, ANY, Codec, DecodeError, encode, encode_json
from libs.messages.commands import (
    AmendOrder,
    CancelAll,
    CancelOrder,
    Deposit,
    HaltSymbol,
    LiquidationOrder,
    MarkPriceTick,
    MatcherCommand,
    OrderRequest,
    PlaceOrder,
    ResumeSymbol,
    SetLeverage,
    Withdraw,
)
from libs.messages.enums import (
    EndReason,
    LedgerAccountKind,
    OrderType,
    SelfTradePrevention,
    Side,
    TimeInForce,
    TriggerBy,
)
from libs.messages.events import (
    AccountRisk,
    AccountUpdated,
    AutoDeleveraged,
    BatchCompleted,
    Cause,
    FundingPaid,
    FundingRateSet,
    IndexPriceTick,
    LedgerLeg,
    LedgerPosted,
    LeverageSet,
    LiquidationSettled,
    LiquidationTriggered,
    MarkPriceSet,
    MarkPriceUpdated,
    MatcherEvent,
    OrderAccepted,
    OrderAmended,
    OrderCancelled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderRequestRejected,
    OrderTriggered,
    PositionChanged,
    PositionEvent,
    SymbolHalted,
    SymbolResumed,
    WalletEvent,
    WithdrawalCompleted,
)

__all__ = [name for name in dir() if not name.startswith("_")]
