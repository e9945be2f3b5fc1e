"""The wallet's keys in the Redis read model (written by the wallet, read by the gateway).

- ``wallet:account:{user}``: hash of ``balance``, ``holds``, ``available``, ``margin`` (position
  initial margin) and ``upnl``, integers in 1e-8 USDT; and ``caused:{topic}:{partition}`` ->
  the offset after the cause of the user's last position event applied.
- ``wallet:leverage:{user}``: hash of symbol -> leverage in force (the default where unset).
- ``wallet:ready``: set once the full picture is written; when it is missing (Redis restarted
  or flushed) the next publish writes every user again.
- ``wallet:applied``: hash ``topic:partition`` -> the next input offset the hashes above
  reflect, written after them in each publish (the gateway's read-your-writes waits on it and
  on the ``caused`` fields, see docs/READ-MODEL.md).
"""

from __future__ import annotations

OWNED_PATTERNS = ("wallet:*",)
"""Every key the wallet writes."""
READY_KEY = "wallet:ready"
APPLIED_KEY = "wallet:applied"


def account_key(user_id: int) -> str:
    return f"wallet:account:{user_id}"


def leverage_key(user_id: int) -> str:
    return f"wallet:leverage:{user_id}"


def caused_field(topic: str, partition: int) -> str:
    """Return the account hash's field of the user's last position event caused by a record
    of this (logical) topic and partition."""
    return f"caused:{topic}:{partition}"
