#!/usr/bin/env bash
# Run a local Redis (the gateway's rebuildable read model: no persistence).
#
#   scripts/redis.sh ensure                 install `redis-server` when missing (root + apt), else fail
#   scripts/redis.sh start DATA_DIR PORT    exec redis-server in the foreground on 127.0.0.1:PORT
#   scripts/redis.sh wait PORT [TIMEOUT_S]  wait until it answers PING
set -euo pipefail

die() { echo "redis.sh: $*" >&2; exit 1; }

ensure() {
    command -v redis-server >/dev/null && return 0
    echo "redis.sh: redis-server not found" >&2
    "$(dirname "${BASH_SOURCE[0]}")/apt-install.sh" redis-server
    command -v redis-server >/dev/null || die "redis-server still missing after installing it"
}

start() {
    [[ $# -eq 2 ]] || die "usage: redis.sh start DATA_DIR PORT"
    command -v redis-server >/dev/null || die "redis-server not installed: run 'scripts/redis.sh ensure'"
    mkdir -p "$1"
    exec redis-server --port "$2" --bind 127.0.0.1 --dir "$1" --save '' --appendonly no
}

wait_ready() {
    [[ $# -ge 1 ]] || die "usage: redis.sh wait PORT [TIMEOUT_S]"
    local deadline=$((SECONDS + ${2:-30}))
    until [[ "$(redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null)" == PONG ]]; do
        ((SECONDS < deadline)) || die "Redis at 127.0.0.1:$1 not answering PING within ${2:-30}s"
        sleep 0.2
    done
}

case "${1:-}" in
    ensure) ensure ;;
    start) shift; start "$@" ;;
    wait) shift; wait_ready "$@" ;;
    *) die "usage: redis.sh {ensure|start DATA_DIR PORT|wait PORT [TIMEOUT_S]}" ;;
esac
