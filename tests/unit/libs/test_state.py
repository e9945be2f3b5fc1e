"""The snapshot convention (libs/state.py): versioned, typed state, one codec for bytes, the
version check and the digest, and every core keeps to it."""

from __future__ import annotations

import msgspec
import pytest

from libs.state import State, StateCodec, StateVersionError
from libs.symbols import default_symbols
from services.matcher.core import MatchingCore
from services.matcher.core.snapshot import MATCHING_STATE
from services.positions.core import PositionsCore
from services.positions.core.snapshot import POSITIONS_STATE
from services.wallet.core import WALLET_STATE, WalletCore


class Counter(State, frozen=True):
    name: str
    count: int


def _v1_to_v2(raw: list) -> list:
    return [2, raw[1], raw[2] * 10]  # v1 counted in tens


CODEC = StateCodec(Counter, 2, {1: _v1_to_v2})


def test_a_state_round_trips_and_equal_states_have_equal_digests():
    state = Counter(2, "a", 7)
    assert CODEC.decode(CODEC.encode(state)) == state
    assert (
        CODEC.digest(state) == CODEC.digest(Counter(2, "a", 7)) != CODEC.digest(Counter(2, "a", 8))
    )


def test_an_older_version_is_upgraded_and_a_newer_one_refused():
    assert CODEC.decode(msgspec.msgpack.encode([1, "a", 7])) == Counter(2, "a", 70)
    with pytest.raises(StateVersionError, match="v3: this code reads v2"):
        CODEC.decode(msgspec.msgpack.encode([3, "a", 7]))
    with pytest.raises(StateVersionError, match="not a versioned Counter"):
        CODEC.decode(msgspec.msgpack.encode({"version": 2}))
    with pytest.raises(StateVersionError):
        CODEC.encode(Counter(1, "a", 7))  # a state is written in the codec's version only


@pytest.mark.parametrize(
    ("core", "codec", "rebuild"),
    [
        (
            MatchingCore(default_symbols()["BTC-PERP"]),
            MATCHING_STATE,
            lambda s: MatchingCore.from_state(default_symbols()["BTC-PERP"], s),
        ),
        (WalletCore(), WALLET_STATE, WalletCore.from_state),
        (
            PositionsCore(default_symbols()),
            POSITIONS_STATE,
            lambda s: PositionsCore.from_state(default_symbols(), s),
        ),
    ],
    ids=["matcher", "wallet", "positions"],
)
def test_every_core_keeps_the_convention(core, codec, rebuild):
    state = core.to_state()
    assert isinstance(state, State) and state.version == codec.version
    assert rebuild(codec.decode(core.snapshot())).to_state() == state
    assert core.digest() == codec.digest(state)
    newer = msgspec.msgpack.encode(
        [codec.version + 1, *msgspec.msgpack.decode(core.snapshot())[1:]]
    )
    with pytest.raises(StateVersionError):
        codec.decode(newer)
