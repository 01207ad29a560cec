#!/usr/bin/env bash
# End-to-end test of openclaw-mcp with the official MCP Python SDK (PyPI `mcp` 2.x).
#
#   bash scripts/e2e-python.sh
#
# 1. makes (or reuses) a venv with `mcp>=2,<3` in ${E2E_VENV:-target/e2e-venv};
# 2. builds the bridge and the mock gateway (`cargo build ${CARGO_PROFILE_ARG} --bin openclaw-mcp
#    --example mock_gateway`; CARGO_PROFILE_ARG is empty for debug, or e.g. `--release`);
# 3. starts two mock gateways on free loopback ports: `a` wants a random token, `b` wants none
#    and answers chats after ${E2E_B_DELAY_MS:-1000} ms (so a task on it can be cancelled in flight);
# 4. runs scripts/e2e_client.py, which drives the bridge and asserts its seven tools over stdio,
#    Streamable HTTP in both eras (the client's default mode, which speaks 2026-07-28, and
#    mode="legacy", which opens an initialize session) and the legacy HTTP+SSE transport,
#    each including an 800 kB answer that must arrive whole (sent once, it stays under the
#    SDK's 1 MiB SSE event limit);
#    and the OAuth run (`oauth`): a bridge with AUTH_ENABLED=true, a configured client with a
#    random 64-hex secret and a loopback MCP_REDIRECT_URIS, its own data directory; a request
#    without a token must get 401 with `resource_metadata`; the SDK's OAuthClientProvider
#    (pre-registered client id and secret in its storage, so no registration) discovers the
#    metadata from that 401, authorizes with PKCE (its redirect handler GETs the authorization
#    URL without following the 302 and hands code, state and iss to its callback handler: no
#    browser), exchanges the code, runs the seven tools' checks over Streamable HTTP, refreshes
#    (the stored token made to look expired) and calls tools with the new token; the secret, the
#    code and the tokens must appear in no bridge log line and no answer.
#
# The gateways are always stopped on exit (the client stops each bridge it starts). Nothing but
# pip leaves the machine: the gateways, the bridges and every request, OAuth's included, are on
# 127.0.0.1; no browser is opened and the OAuth callback port is never listened on.
#
# Environment: E2E_VENV, E2E_PYTHON (default python3, >= 3.10), CARGO_PROFILE_ARG, E2E_B_DELAY_MS,
# E2E_BRIDGE (a binary to test instead of building one, e.g. a release's musl binary),
# E2E_POLL_TIMEOUT (seconds an async task may take, default 10), E2E_TRANSPORTS (comma-separated
# subset of stdio,http,http-legacy,sse,oauth; default all; e.g. E2E_TRANSPORTS=oauth for the OAuth
# run alone).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)

VENV=${E2E_VENV:-target/e2e-venv}
PYTHON=${E2E_PYTHON:-python3}
B_DELAY_MS=${E2E_B_DELAY_MS:-1000}
POLL_TIMEOUT=${E2E_POLL_TIMEOUT:-10}
TRANSPORTS=${E2E_TRANSPORTS:-stdio,http,http-legacy,sse,oauth}
read -r -a PROFILE_ARGS <<<"${CARGO_PROFILE_ARG:-}"

log() { printf 'e2e-python: %s\n' "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/openclaw-mcp-e2e.XXXXXX")
GATEWAY_PIDS=()
cleanup() {
    local status=$?
    local pid
    for pid in "${GATEWAY_PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    # Give them up to 2 s to stop, then force them.
    local try
    for try in $(seq 20); do
        for pid in "${GATEWAY_PIDS[@]}"; do
            kill -0 "$pid" 2>/dev/null && break
            pid=
        done
        [ -z "${pid:-}" ] && break
        sleep 0.1
    done
    for pid in "${GATEWAY_PIDS[@]}"; do
        kill -KILL "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- 1. Python venv with the MCP SDK ---------------------------------------------------------------
source "$ROOT/scripts/e2e-lib.sh"
ensure_mcp_venv

# --- 2. build ------------------------------------------------------------------------------------
started=$(now)
if [ -n "${E2E_BRIDGE:-}" ]; then
    cargo build "${PROFILE_ARGS[@]}" --example mock_gateway
else
    cargo build "${PROFILE_ARGS[@]}" --bin openclaw-mcp --example mock_gateway
fi
log "cargo build took $(since "$started") s"

PROFILE_DIR=$(profile_dir "${PROFILE_ARGS[@]}")
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps |
    "$PYTHON" -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
BRIDGE=${E2E_BRIDGE:-$TARGET_DIR/$PROFILE_DIR/openclaw-mcp}
GATEWAY=$TARGET_DIR/$PROFILE_DIR/examples/mock_gateway
[ -x "$BRIDGE" ] || die "no bridge binary at $BRIDGE"
[ -x "$GATEWAY" ] || die "no mock gateway binary at $GATEWAY"

# --- 3. two mock gateways on free loopback ports -------------------------------------------------
TOKEN="e2e-token-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"

# start_gateway NAME ARGS...: starts it on port 0 and sets PORT to the port it bound.
start_gateway() {
    local name=$1
    shift
    local errlog=$WORK/gateway-$name.log
    : >"$errlog" # exists before the gateway opens it, for the sed below
    "$GATEWAY" --host 127.0.0.1 --port 0 "$@" 2>"$errlog" &
    local pid=$!
    GATEWAY_PIDS+=("$pid")
    disown "$pid" # cleanup() stops it by pid; no "Killed" job notice if it has to be forced
    PORT=
    local try
    for try in $(seq 50); do
        PORT=$(sed -n 's#^mock gateway listening on http://127\.0\.0\.1:\([0-9][0-9]*\)$#\1#p' "$errlog" || true)
        [ -n "$PORT" ] && break
        kill -0 "$pid" 2>/dev/null || { cat "$errlog" >&2; die "gateway $name exited at start-up"; }
        sleep 0.1
    done
    [ -n "$PORT" ] || { cat "$errlog" >&2; die "gateway $name did not report its port within 5 s"; }
    for try in $(seq 50); do
        if curl --noproxy '*' -fsS --max-time 1 -o /dev/null "http://127.0.0.1:$PORT/readyz" 2>/dev/null; then
            log "gateway $name listening on 127.0.0.1:$PORT (pid $pid)"
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || { cat "$errlog" >&2; die "gateway $name exited"; }
        sleep 0.1
    done
    cat "$errlog" >&2
    die "gateway $name on port $PORT not ready within 5 s"
}

start_gateway a --token "$TOKEN"
PORT_A=$PORT
start_gateway b --delay-ms "$B_DELAY_MS"
PORT_B=$PORT

# --- 4. the client -------------------------------------------------------------------------------
started=$(now)
status=0
"$VENV/bin/python" "$ROOT/scripts/e2e_client.py" \
    --bridge "$BRIDGE" \
    --url-a "http://127.0.0.1:$PORT_A" --token-a "$TOKEN" \
    --url-b "http://127.0.0.1:$PORT_B" --b-delay-ms "$B_DELAY_MS" \
    --poll-timeout "$POLL_TIMEOUT" --transports "$TRANSPORTS" || status=$?
log "client run took $(since "$started") s"
[ "$status" -eq 0 ] || die "e2e_client.py exited with status $status"
log "passed"
