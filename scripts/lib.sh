# Shared by scripts/bench-compare.sh, scripts/bench-http.sh, scripts/package-test.sh and
# scripts/soak.sh. Source it from
# the repository's root:
#
#   STOP_WAIT=50 KEEP_WORK= source scripts/lib.sh NAME
#
# NAME prefixes log lines and names the work directory. It defines log and die; WORK, a
# temporary directory removed on exit (kept, and said so, when KEEP_WORK is not empty); PIDS,
# the processes to stop on exit (TERM, then KILL after STOP_WAIT tenths of a second, 50 by
# default), with the traps that do it; stop PID; wait_port; apt_install; and start_postgres.

LIB_NAME=$1
log() { printf '%s: %s\n' "$LIB_NAME" "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/openclaw-mcp-$LIB_NAME.XXXXXX")
PIDS=()
cleanup() {
    local status=$? pid
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq "${STOP_WAIT:-50}"); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    done
    if [ -n "${KEEP_WORK:-}" ]; then log "logs kept in $WORK"; else rm -rf "$WORK"; fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# stop PID: stops one process this script started (TERM, then KILL after STOP_WAIT tenths).
stop() {
    local pid=$1
    kill "$pid" 2>/dev/null || true
    for _ in $(seq "${STOP_WAIT:-50}"); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# wait_port LOG SED_EXPR PID NAME: prints the port a process logged (bounded wait).
wait_port() {
    local file=$1 expr=$2 pid=$3 name=$4 port=
    for _ in $(seq 100); do
        port=$(sed -n "$expr" "$file" | head -n 1)
        [ -n "$port" ] && { echo "$port"; return 0; }
        kill -0 "$pid" 2>/dev/null || { cat "$file" >&2; die "$name exited at start-up"; }
        sleep 0.1
    done
    cat "$file" >&2
    die "$name did not report its port within 10 s"
}

# apt_install SECS PACKAGE...: installs Debian packages when running as root with apt-get
# (each apt-get bounded by SECS seconds, the index refreshed once if the first try fails);
# returns non-zero when it cannot, for the caller to decide.
apt_install() {
    local secs=$1
    shift
    [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null || return 1
    log "installing $* (Debian)"
    DEBIAN_FRONTEND=noninteractive timeout "$secs" apt-get install -y -qq "$@" >/dev/null 2>&1 ||
        { timeout 300 apt-get update -qq >/dev/null 2>&1 &&
            DEBIAN_FRONTEND=noninteractive timeout "$secs" apt-get install -y -qq "$@" >/dev/null 2>&1; }
}

# start_postgres [SERVER_OPTIONS]: a PostgreSQL server of its own in $WORK/pg (initdb, then
# pg_ctl start on a free port of 127.0.0.1; as `nobody` when run as root, since initdb refuses
# root), stopped on exit with the rest of PIDS. Sets PG_BIN, PG_DIR, PG_PORT, AS_PG (the command
# prefix that runs a server binary as its owner) and DATABASE_URL (user postgres, trust auth on
# loopback). SERVER_OPTIONS are added to the server's (e.g. "-c fsync=off" for tests).
start_postgres() {
    local options=${1:-}
    bash "$(dirname "${BASH_SOURCE[0]}")/pg-deps.sh"
    PG_BIN=$(dirname "$(find /usr/lib/postgresql -path "*/bin/initdb" 2>/dev/null | sort -V | tail -1)")
    [ -x "$PG_BIN/initdb" ] || PG_BIN=$(dirname "$(command -v initdb)")
    PG_DIR=$WORK/pg
    mkdir -p "$PG_DIR"
    AS_PG=()
    if [ "$(id -u)" = 0 ]; then
        chown -R 65534:65534 "$PG_DIR"
        chmod 755 "$WORK"
        AS_PG=(setpriv --reuid=65534 --regid=65534 --clear-groups --)
    fi
    "${AS_PG[@]}" "$PG_BIN/initdb" -D "$PG_DIR/data" -U postgres -A trust -E UTF8 --locale=C --no-sync >/dev/null
    PG_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    "${AS_PG[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/log" -w -t 30 \
        -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $PG_DIR -c max_connections=200 $options" start >/dev/null ||
        die "PostgreSQL did not start: $(cat "$PG_DIR/log")"
    PIDS+=("$(head -1 "$PG_DIR/data/postmaster.pid")")
    DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
    log "PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$PG_PORT"
}
