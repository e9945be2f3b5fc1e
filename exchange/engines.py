"""The services this command line drives, imported here and nowhere else in the package.

Moving a service is a change to this file only.
"""

from __future__ import annotations

from exchange.stack import Target
from libs.bus import Bus
from libs.read_model.keys import OFFSETS_KEY as PROJECTOR_OFFSETS_KEY
from libs.read_model.keys import offsets_field, parse_offsets_field
from libs.symbols import default_symbols
from libs.topics import Shard, Topics
from services.matcher.app import rebuild as _rebuild_matcher
from services.matcher.host import BATCH, LOAD, CoreHost, pack, unpack
from services.matcher.recovery import landed, replay_batches
from services.matcher.settings import MatcherSettings
from services.positions.app import rebuild as _rebuild_positions
from services.positions.settings import PositionsSettings
from services.projector.projection import Input, Projection, projected_topics
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
    "rebuild_projector",
    "replay_batches",
    "unpack",
]

REBUILDS = ("wallet", "positions", "matcher", "projector")
"""The engines with a rebuild from the topics alone."""


def matcher_settings(target: Target) -> MatcherSettings:
    return MatcherSettings.model_validate(
        {
            "kafka_bootstrap_servers": target.bootstrap,
            "topic_prefix": target.prefix,
        }
    )


def rebuild(
    engine: str, target: Target, bus: Bus, symbol: str | None = None, shard: int = 0
) -> dict:
    """Return ``engine``'s digest rebuilt from ``target``'s topics read through ``bus``
    (the matcher's: the book of ``symbol``; the wallet's and positions': user shard
    ``shard``), producing nothing."""
    if engine == "wallet":
        # validated, not read from the environment: the target names the deployment
        wallet = WalletSettings.model_validate(
            {"kafka_bootstrap_servers": target.bootstrap, "topic_prefix": target.prefix}
        )
        return _rebuild_wallet(wallet, bus, Shard(shard, target.user_partitions))
    if engine == "positions":
        positions = PositionsSettings.model_validate(
            {"kafka_bootstrap_servers": target.bootstrap, "topic_prefix": target.prefix}
        )
        return _rebuild_positions(positions, bus, Shard(shard, target.user_partitions))
    if engine == "projector":
        return rebuild_projector(target, bus)
    if engine == "matcher":
        if symbol is None:
            raise ValueError("the matcher rebuilds one book: name its symbol")
        return _rebuild_matcher(matcher_settings(target), symbol, bus)
    raise ValueError(f"no rebuild for {engine!r} (one of {', '.join(REBUILDS)})")


def rebuild_projector(target: Target, bus: Bus, upto: dict[str, int] | None = None) -> dict:
    """Return the digest of the projector's state rebuilt from its four topics, each
    partition read up to ``upto`` (``offsets`` of a live ``/digest``: the same offsets; a
    partition it does not name is not read) or to its end.

    The projector itself reloads from Redis; this is the same ``Projection`` fed from offset 0.
    Its state does not depend on how its topics interleave (a wallet or position event waits
    for its cause), so reading them one after another gives the live one's digest."""
    topics = Topics(target.prefix)
    projection = Projection(topics, default_symbols())
    for topic in projected_topics(topics):
        for partition, end in sorted(bus.end_offsets(topic).items()):
            stop = end if upto is None else upto.get(offsets_field(topic, partition), 0)
            if stop <= 0:
                continue
            for record in bus.replay(topic, partition, 0):
                if record.offset >= stop:
                    break
                message = topics.codec(topic).decode_input(record)
                item = Input(record.topic, record.partition, record.offset, message)
                try:
                    projection.apply(item)
                except Exception:  # the live projector skips it the same way (and counts it)
                    continue
            projection.flush()  # the Redis commands are not wanted: forget them as we go
    return projection.digest_json()


def symbols() -> list[str]:
    """Return the listed symbols, in partition order."""
    return list(default_symbols())
