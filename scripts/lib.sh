# Shared by scripts/bench-compare.sh, scripts/bench-http.sh, scripts/package-test.sh and
# scripts/soak.sh. Source it from
# the repository's root:
#
#   STOP_WAIT=50 KEEP_WORK= source scripts/lib.sh NAME
#
# NAME prefixes log lines and names the work directory. It defines log and die; WORK, a
# temporary directory removed on exit (kept, and said so, when KEEP_WORK is not empty); PIDS,
# the processes to stop on exit (TERM, then KILL after STOP_WAIT tenths of a second, 50 by
# default), with the traps that do it; stop PID; wait_port; and apt_install.

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
