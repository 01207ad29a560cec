#!/usr/bin/env bash
# Soak test of the HTTP mode: ${SOAK_SESSIONS:-1000} concurrent initialize-era MCP sessions doing
# tool calls (`openclaw_chat` against examples/mock_gateway.rs, plus some `openclaw_status` and
# `openclaw_instances`) for ${SOAK_SECONDS:-300} s against the release binary, then the checks:
#
#   - no error beyond those the gateway caused (errors counted by kind; the mock gateway causes
#     none, so any error fails);
#   - RSS flat within ${SOAK_RSS_TOLERANCE:-0.10} (max vs min) after the warm-up, which lasts
#     until every session has made ${SOAK_WARMUP_CALLS:-64} calls (at least 10 s; the window is
#     printed): rmcp's per-session channel buffers become resident as the first few dozen calls
#     pass through them (soak_client.py, WARM-UP, says how), so RSS climbs for about two
#     minutes, then stays flat; checked for runs of 120 s or more only (a shorter run prints the
#     spread: it cannot tell warm-up from growth);
#   - no leaked sessions: every session DELETEd with 200 and /health's session counts back to 0
#     after the clients closed;
#   - no leaked file descriptors: /proc/<pid>/fd back within ${SOAK_FD_SLACK:-5} of the idle
#     baseline (measured before the load) within 30 s after the clients closed their connections.
#
#   bash scripts/soak.sh                 # the issue's 5 minutes
#   SOAK_SECONDS=30 bash scripts/soak.sh # a quick run
#
# The load generator is scripts/soak_client.py (asyncio + httpx2 from the venv that
# scripts/e2e-python.sh makes, ${E2E_VENV:-target/e2e-venv}; created here the same way when
# missing). Each session has its own connection and waits ${SOAK_THINK:-1-3} s (uniform) before
# each call, which keeps the Python client under its CPU limit (about 450 calls/s for 1000
# sessions here): a starved event loop would hold connections idle past the bridge's 5 s
# keep-alive and count the client's own keep-alive races as errors. It samples the bridge's VmRSS
# and fd count every few seconds (from a thread) and prints the series.
# The bridge runs with auth off, MCP_RATE_LIMIT_PER_MINUTE=0 (off without auth anyway; explicit)
# and tasks in memory. The sessions come from 8 loopback source addresses (127.0.0.1 to .8): without
# auth each address is a principal capped at MCP_MAX_SESSIONS/4 open sessions (docs/security.md),
# so the load is what 8 users make, not one user past its share. Everything is on loopback, bounded in
# time, and every process started here is stopped on exit. Exit status: 0 when every check
# passes. The client, the gateway and the bridge share the machine's cores.
#
# Environment: SOAK_SECONDS (300), SOAK_SESSIONS (1000), SOAK_THINK (1-3), SOAK_WARMUP_CALLS (64), SOAK_SAMPLE_SECONDS (default
# seconds/60, 1 to 5), SOAK_RSS_TOLERANCE (0.10), SOAK_FD_SLACK (5), SOAK_SKIP_BUILD (set: use
# the release binaries already in target/), SOAK_BRIDGE and SOAK_GATEWAY (binaries to use instead
# of building: .ci/run passes the static binary), SOAK_KEEP (set: keep the logs), E2E_VENV, E2E_PYTHON.
set -euo pipefail

cd "$(dirname "$0")/.."
DURATION=${SOAK_SECONDS:-300}
SESSIONS=${SOAK_SESSIONS:-1000}
SAMPLE=${SOAK_SAMPLE_SECONDS:-0}
RSS_TOLERANCE=${SOAK_RSS_TOLERANCE:-0.10}
FD_SLACK=${SOAK_FD_SLACK:-5}
VENV=${E2E_VENV:-target/e2e-venv}
PYTHON=${E2E_PYTHON:-python3}

# log, die, WORK, PIDS (stopped on exit; the bridge gets 10 s to close 1000 sessions), wait_port.
STOP_WAIT=100 KEEP_WORK=${SOAK_KEEP:-}
source scripts/lib.sh soak

# The client holds one connection per session, the bridge as many plus its gateway pool.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
[ "$(ulimit -n)" -ge $((SESSIONS * 2 + 200)) ] || die "open-file limit $(ulimit -n) is too low for $SESSIONS sessions"
command -v curl >/dev/null || die "curl not found"

# --- 1. venv with httpx2 (as scripts/e2e-python.sh makes it) ------------------------------------------
source scripts/e2e-lib.sh
ensure_mcp_venv

# --- 2. build ----------------------------------------------------------------------------------------
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps | "$VENV/bin/python" -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
BRIDGE_BIN=${SOAK_BRIDGE:-$TARGET_DIR/release/openclaw-mcp}
GATEWAY_BIN=${SOAK_GATEWAY:-$TARGET_DIR/release/examples/mock_gateway}
if [ -z "${SOAK_SKIP_BUILD:-}" ] && [ -z "${SOAK_BRIDGE:-}" ]; then
    log "building the release binary and the mock gateway"
    timeout 1200 cargo build --quiet --release --bin openclaw-mcp --example mock_gateway
fi
[ -x "$BRIDGE_BIN" ] || die "no bridge binary at $BRIDGE_BIN"
[ -x "$GATEWAY_BIN" ] || die "no mock gateway binary at $GATEWAY_BIN"
# Copies, so that a rebuild during the run does not change what runs.
cp "$BRIDGE_BIN" "$WORK/openclaw-mcp"
cp "$GATEWAY_BIN" "$WORK/mock_gateway"


# --- 3. gateway and bridge ---------------------------------------------------------------------------
"$WORK/mock_gateway" --host 127.0.0.1 --port 0 2>"$WORK/gateway.log" &
GW_PID=$!
PIDS+=("$GW_PID")
GW_PORT=$(wait_port "$WORK/gateway.log" 's#^mock gateway listening on http://127\.0\.0\.1:\([0-9][0-9]*\)$#\1#p' "$GW_PID" gateway)

env -i PATH="$PATH" HOME="$WORK" OPENCLAW_MCP_DATA_DIR=:memory: OPENCLAW_URL="http://127.0.0.1:$GW_PORT" \
    MCP_RATE_LIMIT_PER_MINUTE=0 MCP_MAX_SESSIONS=$((SESSIONS + 100)) \
    "$WORK/openclaw-mcp" --transport http --host 127.0.0.1 --port 0 2>"$WORK/bridge.log" &
BRIDGE_PID=$!
PIDS+=("$BRIDGE_PID")
PORT=$(wait_port "$WORK/bridge.log" 's/.*listening address=127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$BRIDGE_PID" bridge)
for try in $(seq 50); do
    curl --noproxy '*' -fsS --max-time 1 -o /dev/null "http://127.0.0.1:$PORT/health" 2>/dev/null && break
    [ "$try" -eq 50 ] && die "/health did not answer"
    sleep 0.1
done
log "gateway on :$GW_PORT, bridge on :$PORT (pid $BRIDGE_PID); $SESSIONS sessions for $DURATION s on $(nproc) cores"

# --- 4. load and checks ------------------------------------------------------------------------------
status=0
timeout $((${DURATION%.*} + 600)) "$VENV/bin/python" scripts/soak_client.py --url "http://127.0.0.1:$PORT" \
    --pid "$BRIDGE_PID" --sessions "$SESSIONS" --seconds "$DURATION" --sample "$SAMPLE" \
    --rss-tolerance "$RSS_TOLERANCE" --fd-slack "$FD_SLACK" --think "${SOAK_THINK:-1-3}" \
    --warmup-calls "${SOAK_WARMUP_CALLS:-64}" \
    --json "$WORK/soak.json" || status=$?

kill -0 "$BRIDGE_PID" 2>/dev/null || { log "the bridge died during the soak"; tail -n 20 "$WORK/bridge.log" >&2; status=1; }
# What the bridge logged, by level (WARN/ERROR lines are shown).
for level in INFO WARN ERROR; do
    printf '  bridge log: %5d %s lines\n' "$(grep -c " $level " "$WORK/bridge.log" || true)" "$level"
done
grep -E ' (WARN|ERROR) ' "$WORK/bridge.log" | grep -v 'Auth is DISABLED' | sed 's/^[^ ]* //' | sort | uniq -c | sort -rn | head -n 10 || true
exit "$status"
