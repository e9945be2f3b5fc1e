"""Many Redis writes as one command: a Lua script runs a batch that arrives as one argument.

redis-py spends Python time on every command of a pipeline (it packs each argument into RESP,
then parses each reply), and the read model's writer sends dozens per batch: under load, in a
py-spy profile, that was half of the projector's CPU (and, when the engines still wrote their
own keys, a fifth of the wallet's and more than a quarter of the position engine's). Here the
batch is msgpack (packed in C by msgspec), sent as the one argument of one EVALSHA, and Redis
runs its commands inside the script: atomically, as MULTI/EXEC would, so a reader never sees
half a batch.

Every argument goes as a msgpack string: Lua numbers are doubles, so an integer past 2**53
would not arrive exact; and Redis's cmsgpack reads no binary type, so bytes must be UTF-8 (JSON,
names). A command carries at most ``MAX_ARGS`` arguments (Lua's ``unpack`` limit).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import msgspec
import redis

Command = Sequence[str | bytes | int | float]
"""One Redis command, name first: ``("HSET", key, field, value, ...)``."""

MAX_ARGS = 7000  # Lua's C stack holds 8000 values (LUAI_MAXCSTACK)

# KEYS[1], when given, is a key whose absence means Redis lost what was written before (a
# restart or a FLUSHALL): then nothing of the batch is applied and the script returns 0.
# ("CALL", name, numkeys, key..., arg...) runs the writer's own procedure ``name`` (a script
# cannot EVAL another) with KEYS and ARGV as EVAL would give them.
_RUN = """
if #KEYS == 1 and redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local commands = cmsgpack.unpack(ARGV[1])
for i = 1, #commands do
  local c = commands[i]
  if c[1] == 'CALL' then
    local n = tonumber(c[3])
    local keys, argv = {}, {}
    for j = 1, n do keys[j] = c[3 + j] end
    for j = 4 + n, #c do argv[#argv + 1] = c[j] end
    procedures[c[2]](keys, argv)
  else
    redis.call(unpack(c))
  end
end
return 1
"""


def script(procedures: Mapping[str, str]) -> str:
    """Return the batch script with ``procedures`` (name -> the body of a script that reads
    KEYS and ARGV) callable from the batch."""
    assert all(name.isidentifier() for name in procedures), procedures
    defined = "".join(
        f"procedures[{name!r}] = function(KEYS, ARGV)\n{body.strip()}\nend\n"
        for name, body in procedures.items()
    )
    return "local procedures = {}\n" + defined + _RUN


_encoder = msgspec.msgpack.Encoder()


def _arg(value: object) -> str:
    # One type() call tested by identity is the fast path here; mypy does not narrow `value`
    # through `kind`, so the two ignores below say what the test already proved.
    kind = type(value)
    if kind is str:
        return value  # type: ignore[return-value]  # exactly str (kind is str)
    if kind is bytes:
        return value.decode()  # type: ignore[attr-defined]  # exactly bytes (kind is bytes)
    if kind is int or kind is float:
        return str(value)
    if isinstance(value, str):
        return str(value)  # a StrEnum (OrderStatus): its value
    raise TypeError(f"a Redis argument must be str, bytes, int or float, not {kind.__name__}")


def flat(mapping: Mapping[str, str | bytes | int | float]) -> list[str | bytes | int | float]:
    """Return a hash's fields and values, one after the other (HSET's arguments)."""
    return [item for pair in mapping.items() for item in pair]


def pack(commands: Sequence[Command]) -> bytes:
    """Return the script's argument for ``commands`` (every argument as a string)."""
    batch = []
    for command in commands:
        if len(command) > MAX_ARGS:
            raise ValueError(f"a {command[0]!r} of {len(command)} arguments: split it")
        batch.append([_arg(a) for a in command])
    return _encoder.encode(batch)


class RedisBatch:
    """Run batches of commands on one Redis, each in one round trip."""

    def __init__(self, client: redis.Redis, procedures: Mapping[str, str] | None = None) -> None:
        # EVALSHA, and the script loaded again when Redis does not know it (after a restart)
        self._script = client.register_script(script(procedures or {}))

    def run(self, commands: Sequence[Command], *, unless_missing: str | None = None) -> bool:
        """Run ``commands`` in order, atomically. With ``unless_missing``: only when that key
        exists; return False (nothing applied) when it does not. Raise ``redis.RedisError``
        when Redis did not take the batch (a command in it failing included)."""
        if not commands and unless_missing is None:
            return True
        keys = [] if unless_missing is None else [unless_missing]
        return bool(self._script(keys=keys, args=[pack(commands)]))
