"""The wallet's pure core: ledger, holds, leverage, positions, pre-trade check. No I/O."""

from services.wallet.core.engine import Rejected, WalletCore
from services.wallet.core.holds import Hold, Holds
from services.wallet.core.ledger import Ledger, LedgerError, transfer
from services.wallet.core.snapshot import WALLET_STATE, WalletState

__all__ = [
    "WALLET_STATE",
    "Hold",
    "Holds",
    "Ledger",
    "LedgerError",
    "Rejected",
    "WalletCore",
    "WalletState",
    "transfer",
]
