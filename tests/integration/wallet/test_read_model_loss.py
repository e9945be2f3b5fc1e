"""The engines' Redis read models notice a lost picture in the write itself (one round trip per
publish, no EXISTS of its own), on a real Redis."""

from __future__ import annotations

import redis

from libs.read_model.positions import READY_KEY as POSITIONS_READY
from libs.read_model.wallet import READY_KEY as WALLET_READY
from services.positions.read_model import RedisReadModel as PositionsModel
from services.wallet.read_model import RedisReadModel as WalletModel

DB = 13  # keys of their own: the wallet's and the engine's key names are not prefixed
USER = 987_654_321


def _url(redis_url: str) -> str:
    return f"{redis_url.rsplit('/', 1)[0]}/{DB}"


def test_a_partial_wallet_write_reports_a_lost_picture(redis_url: str) -> None:
    url = _url(redis_url)
    model, client = WalletModel(url), redis.Redis.from_url(url)
    account = {"balance": 1, "holds": 0, "available": 1, "margin": 0, "upnl": 0}
    pictures = {USER: (account, {"BTC-PERP": 20})}
    assert model.write(pictures, full=True, applied={"t:0": 1})
    assert model.write(pictures, full=False, applied={"t:0": 2})
    client.delete(WALLET_READY)
    assert not model.write(pictures, full=False, applied={"t:0": 3})
    assert model.write(pictures, full=True, applied={"t:0": 3})
    assert client.exists(WALLET_READY)
    assert model.write(pictures, full=False, applied={"t:0": 4})


def test_a_partial_position_write_reports_a_lost_picture(redis_url: str) -> None:
    url = _url(redis_url)
    model, client = PositionsModel(url), redis.Redis.from_url(url)
    views = {USER: {"BTC-PERP": '{"size": 1}'}}
    assert model.write(views, {}, full=True, applied={"t:0": 1})
    assert model.write(views, {}, full=False, applied={"t:0": 2})
    client.delete(POSITIONS_READY)
    assert not model.write(views, {}, full=False, applied={"t:0": 3})
    assert model.write(views, {}, full=True, applied={"t:0": 3})
    assert model.write(views, {}, full=False, applied={"t:0": 4})
