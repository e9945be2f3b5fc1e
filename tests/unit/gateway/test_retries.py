"""The gateway's recent placements: what a retry is answered from before the log knows it."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from services.gateway.retries import RecentPlacements


def test_a_client_id_names_its_first_placement_until_the_log_refuses_it():
    recent = RecentPlacements()
    recent.add(1, "x", 10)
    recent.add(1, "x", 11)  # a second placement never takes the id over
    assert recent.get(1, "x") == 10 and recent.get(2, "x") is None
    recent.lost(1, "x", 11)  # not the holder: nothing changes
    assert recent.get(1, "x") == 10
    recent.lost(1, "x", 10)
    assert recent.get(1, "x") is None and len(recent) == 0


def test_the_original_named_by_the_wallet_replaces_a_guess():
    recent = RecentPlacements()
    recent.add(1, "x", 11)  # placed here as new: the gateway had forgotten an older one
    recent.original(1, "x", 10)  # the wallet answered -4015 naming 10
    assert recent.get(1, "x") == 10


@given(st.lists(st.tuples(st.integers(1, 3), st.sampled_from("abcdef")), max_size=60))
def test_at_most_capacity_placements_are_kept_each_with_an_id_it_was_placed_with(keys):
    recent, placed = RecentPlacements(capacity=5), {}
    for order_id, (user, coid) in enumerate(keys, 1):
        recent.add(user, coid, order_id)
        placed.setdefault((user, coid), []).append(order_id)
        assert recent.get(user, coid) in placed[(user, coid)]  # the newest key is always kept
    assert len(recent) == min(5, len(placed))
    for (user, coid), ids in placed.items():
        assert recent.get(user, coid) in (None, *ids)
        if len(placed) <= 5:  # nothing pushed out: each keeps its first id
            assert recent.get(user, coid) == ids[0]
