"""The position engine's pure core: positions, marks, funding, margin and liquidation."""

from services.positions.core.engine import Out, PositionsCore, adl_trade_id, liquidation_id

__all__ = ["Out", "PositionsCore", "adl_trade_id", "liquidation_id"]
