"""The position engine's pure core: positions, marks, funding, margin and liquidation."""

from services.positions.core.engine import Out, PositionsCore, liquidation_id

__all__ = ["Out", "PositionsCore", "liquidation_id"]
