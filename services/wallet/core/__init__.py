"""The wallet's pure core: ledger, holds, leverage, positions, pre-trade check. No I/O."""

from services.wallet.core.engine import DEFAULT_LEVERAGE, Rejected, WalletCore
from services.wallet.core.holds import Hold, Holds
from services.wallet.core.ledger import Ledger, LedgerError, transfer
from services.wallet.core.snapshot import digest, dump, load

__all__ = [
    "DEFAULT_LEVERAGE",
    "Hold",
    "Holds",
    "Ledger",
    "LedgerError",
    "Rejected",
    "WalletCore",
    "digest",
    "dump",
    "load",
    "transfer",
]
