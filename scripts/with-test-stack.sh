#!/usr/bin/env bash
# Run COMMAND against a fresh throw-away stack (infra/stack-test.toml, or the table STACK names):
# wipe its run dir (.run/test), start it,
# export KAFKA_BOOTSTRAP_SERVERS / DATABASE_URL / REDIS_URL, run COMMAND, always tear the stack
# down, and exit with COMMAND's status. `make test` and `make bench` use it.
#
#   scripts/with-test-stack.sh .venv/bin/python -m pytest tests
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

STACK="${STACK:-infra/stack-test.toml}"  # another stack table: STACK=infra/stack-cluster-test.toml
supervise() { python3 scripts/supervise.py "$@"; }

[[ $# -gt 0 ]] || { echo "usage: with-test-stack.sh COMMAND [ARG...]" >&2; exit 2; }

supervise down "$STACK" >/dev/null   # a stack left over from an interrupted run
rm -rf "$(python3 -c 'import sys; sys.path.insert(0, "scripts"); import supervise
print(supervise.load_stack(supervise.Path(sys.argv[1]).resolve()).run_dir)' "$STACK")"
trap 'supervise down "$STACK"' EXIT
supervise up "$STACK"
eval "$(supervise env "$STACK")"

status=0
"$@" || status=$?
exit "$status"
