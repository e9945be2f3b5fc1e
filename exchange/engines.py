"""The services this command line drives, imported here and nowhere else in the package.

Moving a service (the projector to ``services/projector``, the index feed out of
``services/positions``) is a change to this file only.
"""

from __future__ import annotations

from exchange.stack import Target
from libs.bus import Bus
from libs.symbols import default_symbols
from services.gateway.keys import OFFSETS_KEY as PROJECTOR_OFFSETS_KEY
from services.gateway.keys import parse_offsets_field
from services.matcher.app import rebuild as _rebuild_matcher
from services.matcher.host import BATCH, LOAD, CoreHost, pack, unpack
from services.matcher.recovery import landed, replay_batches
from services.matcher.settings import MatcherSettings
from services.positions.app import rebuild as _rebuild_positions
from services.positions.settings import PositionsSettings
from services.wallet.app import rebuild as _rebuild_wallet
from services.wallet.settings import WalletSettings

__all__ = [
    "BATCH",
    "LOAD",
    "PROJECTOR_OFFSETS_KEY",
    "CoreHost",
    "landed",
    "pack",
    "parse_offsets_field",
    "rebuild",
    "replay_batches",
    "unpack",
]

REBUILDS = ("wallet", "positions", "matcher")
"""The engines with a rebuild from the topics alone. The gateway projector has none: its
state is the Redis read model, which it reloads from Redis, not from the topics."""


def matcher_settings(target: Target) -> MatcherSettings:
    return MatcherSettings.model_validate(
        {
            "kafka_bootstrap_servers": target.bootstrap,
            "commands_topic": target.topic("orders.commands"),
            "events_topic": target.topic("matcher.events"),
            "snapshots_topic": target.topic("matcher.snapshots"),
        }
    )


def rebuild(engine: str, target: Target, bus: Bus, symbol: str | None = None) -> dict:
    """Return ``engine``'s digest rebuilt from ``target``'s topics read through ``bus``
    (the matcher's: the book of ``symbol``), producing nothing."""
    if engine == "wallet":
        # validated, not read from the environment: the target names the deployment
        wallet = WalletSettings.model_validate(
            {"kafka_bootstrap_servers": target.bootstrap, "topic_prefix": target.prefix}
        )
        return _rebuild_wallet(wallet, bus)
    if engine == "positions":
        positions = PositionsSettings.model_validate(
            {"kafka_bootstrap_servers": target.bootstrap, "topic_prefix": target.prefix}
        )
        return _rebuild_positions(positions, bus)
    if engine == "matcher":
        if symbol is None:
            raise ValueError("the matcher rebuilds one book: name its symbol")
        return _rebuild_matcher(matcher_settings(target), symbol, bus)
    raise ValueError(f"no rebuild for {engine!r} (one of {', '.join(REBUILDS)})")


def symbols() -> list[str]:
    """Return the listed symbols, in partition order."""
    return list(default_symbols())
