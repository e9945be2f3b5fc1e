"""The pure matching core: one price-time priority book per symbol, commands in, events out."""

from services.matcher.core.engine import MatchingCore, batch_class

__all__ = ["MatchingCore", "batch_class"]
