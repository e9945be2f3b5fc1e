#!/usr/bin/env bash
# Run a local Postgres server for the exchange from the system's packages.
#
#   scripts/postgres.sh ensure                 install `postgresql` when missing (root + apt), else fail
#   scripts/postgres.sh start DATA_DIR PORT    initdb DATA_DIR once (role + database `exchange`), then
#                                              exec postgres in the foreground on 127.0.0.1:PORT
#   scripts/postgres.sh wait PORT [TIMEOUT_S]  wait until the server accepts connections
#
# The server's DATABASE_URL is postgresql://exchange:exchange@127.0.0.1:PORT/exchange.
# As root the server runs as the `postgres` system user. We switch user with `setpriv`, which
# execs in place, rather than `runuser`, which stays as a parent that SIGKILLs its child two
# seconds after a SIGTERM: this way the supervisor's SIGINT reaches postgres itself (fast shutdown).
set -euo pipefail

DB_USER=exchange
DB_PASSWORD=exchange
DB_NAME=exchange

die() { echo "postgres.sh: $*" >&2; exit 1; }

bindir() {
    local d
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [[ -x "$d/postgres" && -x "$d/initdb" ]]; then echo "$d"; return 0; fi
    done
    if command -v pg_config >/dev/null && [[ -x "$(pg_config --bindir)/postgres" ]]; then
        pg_config --bindir; return 0
    fi
    return 1
}

ensure() {
    bindir >/dev/null && return 0
    echo "postgres.sh: no Postgres server binaries found" >&2
    "$(dirname "${BASH_SOURCE[0]}")/apt-install.sh" postgresql
    bindir >/dev/null || die "postgresql installed but no postgres binary under /usr/lib/postgresql/*/bin"
}

# Run a command as the server's user: `postgres` when we are root, ourselves otherwise.
as_pg() {
    if [[ $(id -u) -eq 0 ]]; then
        setpriv --reuid=postgres --regid=postgres --init-groups -- "$@"
    else
        "$@"
    fi
}

port_in_use() {
    python3 -c 'import socket,sys; s=socket.socket(); sys.exit(0 if s.connect_ex(("127.0.0.1", int(sys.argv[1]))) == 0 else 1)' "$1"
}

start() {
    [[ $# -eq 2 ]] || die "usage: postgres.sh start DATA_DIR PORT"
    local bin data_dir sock_dir port="$2"
    bin="$(bindir)" || die "Postgres not installed: run 'scripts/postgres.sh ensure' (package 'postgresql')"
    mkdir -p "$1"
    data_dir="$(cd "$1" && pwd)"
    sock_dir="$data_dir/socket"
    if port_in_use "$port"; then
        die "127.0.0.1:$port is already in use (another Postgres?): stop it or free the port"
    fi
    if [[ $(id -u) -eq 0 ]]; then
        id postgres >/dev/null 2>&1 || die "no 'postgres' system user: install the 'postgresql' package"
        chown postgres:postgres "$data_dir"
        chmod 700 "$data_dir"
    fi

    # A data dir without our marker is half-made (interrupted initdb): start it over.
    if [[ ! -f "$data_dir/.exchange-ready" ]]; then
        echo "postgres.sh: initdb $data_dir/pgdata" >&2
        rm -rf "$data_dir/pgdata"
        as_pg "$bin/initdb" -D "$data_dir/pgdata" -U postgres -E UTF8 --locale=C.UTF-8 \
            --auth-local=trust --auth-host=scram-sha-256 >/dev/null
        # Single-user mode creates the role and database without opening any port.
        as_pg "$bin/postgres" --single -D "$data_dir/pgdata" postgres >/dev/null <<SQL
CREATE ROLE $DB_USER LOGIN CREATEDB PASSWORD '$DB_PASSWORD';
CREATE DATABASE $DB_NAME OWNER $DB_USER;
SQL
        touch "$data_dir/.exchange-ready"
    fi
    mkdir -p "$sock_dir"
    [[ $(id -u) -eq 0 ]] && chown postgres:postgres "$sock_dir"

    if [[ $(id -u) -eq 0 ]]; then
        exec setpriv --reuid=postgres --regid=postgres --init-groups -- \
            "$bin/postgres" -D "$data_dir/pgdata" -p "$port" -k "$sock_dir" \
            -c listen_addresses=127.0.0.1
    fi
    exec "$bin/postgres" -D "$data_dir/pgdata" -p "$port" -k "$sock_dir" -c listen_addresses=127.0.0.1
}

wait_ready() {
    [[ $# -ge 1 ]] || die "usage: postgres.sh wait PORT [TIMEOUT_S]"
    local bin deadline
    bin="$(bindir)" || die "Postgres not installed"
    deadline=$((SECONDS + ${2:-60}))
    until "$bin/pg_isready" -q -h 127.0.0.1 -p "$1" -d "$DB_NAME" -U "$DB_USER"; do
        ((SECONDS < deadline)) || die "Postgres at 127.0.0.1:$1 not ready within ${2:-60}s"
        sleep 0.3
    done
}

case "${1:-}" in
    ensure) ensure ;;
    start) shift; start "$@" ;;
    wait) shift; wait_ready "$@" ;;
    *) die "usage: postgres.sh {ensure|start DATA_DIR PORT|wait PORT [TIMEOUT_S]}" ;;
esac
