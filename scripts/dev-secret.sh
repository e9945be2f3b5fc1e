#!/usr/bin/env bash
# Run a command with JWT_SECRET set: the environment's when given (production), else a random
# one kept in .run/jwt-secret so sessions survive a local restart. Never committed anywhere.
#
#   scripts/dev-secret.sh COMMAND [ARGS...]
set -euo pipefail
if [[ -z "${JWT_SECRET:-}" ]]; then
    file="${RUN_DIR:-.run}/jwt-secret"
    if [[ ! -s "$file" ]]; then
        mkdir -p "$(dirname "$file")"
        (umask 077 && od -An -tx1 -N32 /dev/urandom | tr -d ' \n' > "$file")
    fi
    JWT_SECRET="$(cat "$file")"
    export JWT_SECRET
fi
exec "$@"
