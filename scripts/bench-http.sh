#!/usr/bin/env bash
# Load benchmark of the bridge's HTTP mode: `openclaw_chat` calls per second over Streamable HTTP
# against an instant gateway (examples/mock_gateway.rs), p50/p99 latency, and the bridge's memory
# (RSS) idle, under load, and with 1000 open MCP sessions.
#
#   bash scripts/bench-http.sh
#
# 1. builds the bridge and the mock gateway in release mode;
# 2. starts the gateway (no delay) and the bridge (auth off, tasks in memory) on free loopback
#    ports;
# 3. measures RSS idle, then runs wrk (Debian package `wrk`; installed with apt-get when
#    missing and possible) with ${BENCH_CONNECTIONS:-64} connections for ${BENCH_DURATION:-15}s:
#    a. 2026-07-28 era: stateless `tools/call` POSTs, plain JSON answers;
#    b. initialize era: every connection in one MCP session (Mcp-Session-Id), SSE answers;
#    sampling the bridge's RSS every 0.2 s; every answer is checked for the echoed text;
# 4. opens ${BENCH_SESSIONS:-1000} sessions (initialize + notifications/initialized) and
#    measures RSS again;
# 5. prints a summary and always stops both processes.
#
# Everything runs on 127.0.0.1, bounded in time. The numbers depend on the machine: the bridge,
# the gateway and wrk share its cores.
set -euo pipefail

cd "$(dirname "$0")/.."
CONNECTIONS=${BENCH_CONNECTIONS:-64}
DURATION=${BENCH_DURATION:-15}
SESSIONS=${BENCH_SESSIONS:-1000}
THREADS=${BENCH_THREADS:-2}

log() { printf 'bench-http: %s\n' "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/openclaw-mcp-bench.XXXXXX")
PIDS=()
cleanup() {
    local status=$? pid
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if ! command -v wrk >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        log "installing wrk (Debian package)"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null ||
            { apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
    fi
    command -v wrk >/dev/null || die "wrk not found (apt-get install wrk)"
fi
command -v curl >/dev/null || die "curl not found"
command -v python3 >/dev/null || die "python3 not found"

# --- 1. build ---------------------------------------------------------------------------------------
cargo build --quiet --release --bin openclaw-mcp --example mock_gateway
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
BRIDGE=$TARGET_DIR/release/openclaw-mcp
GATEWAY=$TARGET_DIR/release/examples/mock_gateway

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

# --- 2. gateway and bridge --------------------------------------------------------------------------
"$GATEWAY" --host 127.0.0.1 --port 0 2>"$WORK/gateway.log" &
PIDS+=($!)
GW_PORT=$(wait_port "$WORK/gateway.log" 's#^mock gateway listening on http://127\.0\.0\.1:\([0-9][0-9]*\)$#\1#p' "${PIDS[-1]}" gateway)

env -i PATH="$PATH" HOME="$WORK" OPENCLAW_MCP_DATA_DIR=:memory: \
    OPENCLAW_URL="http://127.0.0.1:$GW_PORT" MCP_MAX_SESSIONS=$((SESSIONS + 100)) \
    "$BRIDGE" --transport http --host 127.0.0.1 --port 0 2>"$WORK/bridge.log" &
BRIDGE_PID=$!
PIDS+=("$BRIDGE_PID")
PORT=$(wait_port "$WORK/bridge.log" 's/.*listening address=127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$BRIDGE_PID" bridge)
URL=http://127.0.0.1:$PORT/mcp
for try in $(seq 50); do
    curl --noproxy '*' -fsS --max-time 1 -o /dev/null "http://127.0.0.1:$PORT/health" 2>/dev/null && break
    [ "$try" -eq 50 ] && die "/health did not answer"
    sleep 0.1
done
log "gateway on :$GW_PORT, bridge on :$PORT (pid $BRIDGE_PID), $(nproc) cores"

rss_mib() { awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$BRIDGE_PID/status"; }

# A warm-up call of each kind, so that idle RSS includes the first-use allocations.
CALL_2026='{"jsonrpc":"2.0","id":__ID__,"method":"tools/call","params":{"name":"openclaw_chat","arguments":{"message":"bench"},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"bench","version":"1"},"io.modelcontextprotocol/clientCapabilities":{}}}}'
curl --noproxy '*' -fsS --max-time 5 "$URL" -H 'Content-Type: application/json' \
    -H 'Accept: application/json, text/event-stream' -H 'MCP-Protocol-Version: 2026-07-28' \
    -H 'Mcp-Method: tools/call' -H 'Mcp-Name: openclaw_chat' -d "${CALL_2026/__ID__/1}" | grep -q 'echo: bench' ||
    die "the warm-up call did not answer 'echo: bench'"
sleep 1
RSS_IDLE=$(rss_mib)

# One initialize-era session (its id on stdout).
open_session() {
    local headers=$WORK/init-headers
    curl --noproxy '*' -fsS --max-time 5 -o /dev/null -D "$headers" "$URL" -H 'Content-Type: application/json' \
        -H 'Accept: application/json, text/event-stream' \
        -d '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"bench","version":"1"}}}'
    local id
    id=$(tr -d '\r' <"$headers" | sed -n 's/^mcp-session-id: //Ip')
    curl --noproxy '*' -fsS --max-time 5 -o /dev/null "$URL" -H 'Content-Type: application/json' \
        -H 'Accept: application/json, text/event-stream' -H "Mcp-Session-Id: $id" \
        -H 'MCP-Protocol-Version: 2025-06-18' -d '{"jsonrpc":"2.0","method":"notifications/initialized"}'
    echo "$id"
}

# --- 3. load -----------------------------------------------------------------------------------------
# wrk script: POSTs of one body, whose "__ID__" becomes a JSON-RPC id unique across threads
# (requests in flight in one session must not share an id); counts answers without the
# echoed text.
write_lua() {
    local file=$1 body=$2
    shift 2
    {
        echo 'wrk.method = "POST"'
        printf 'local template = [==[%s]==]\n' "$body"
        echo 'wrk.headers["Content-Type"] = "application/json"'
        echo 'wrk.headers["Accept"] = "application/json, text/event-stream"'
        local h
        for h in "$@"; do printf 'wrk.headers["%s"] = "%s"\n' "${h%%:*}" "${h#*: }"; done
        cat <<'EOF'
local threads = {}
function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end
function init(args) bad = 0; counter = 0 end
function request()
  counter = counter + 1
  local body = string.gsub(template, "__ID__", tostring(tid * 1000000000 + counter))
  return wrk.format(nil, nil, nil, body)
end
function response(status, headers, body)
  if status ~= 200 or not string.find(body, "echo: bench", 1, true) then bad = bad + 1 end
end
function done(summary, latency, requests)
  local total_bad = 0
  for _, t in ipairs(threads) do total_bad = total_bad + t:get("bad") end
  io.write(string.format("BAD_ANSWERS %d\n", total_bad))
  io.write(string.format("P50_MS %.3f\nP99_MS %.3f\n", latency:percentile(50) / 1000, latency:percentile(99) / 1000))
  io.write(string.format("RPS %.1f\nREQUESTS %d\n", summary.requests / (summary.duration / 1e6), summary.requests))
end
EOF
    } >"$file"
}

# run_load LABEL LUA: wrk with RSS sampling; sets RPS, P50, P99, RSS_PEAK.
run_load() {
    local label=$1 lua=$2 out=$WORK/$1.wrk samples=$WORK/$1.rss
    log "load: $label — $CONNECTIONS connections, $THREADS threads, ${DURATION}s"
    (while kill -0 "$BRIDGE_PID" 2>/dev/null; do rss_mib >>"$samples"; echo >>"$samples"; sleep 0.2; done) &
    local sampler=$!
    timeout $((DURATION + 30)) wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --timeout 10s --latency -s "$lua" "$URL" >"$out" 2>&1 ||
        { kill "$sampler" 2>/dev/null; cat "$out" >&2; die "wrk failed ($label)"; }
    kill "$sampler" 2>/dev/null || true
    wait "$sampler" 2>/dev/null || true
    sed -n '/Latency Distribution/,/Requests\/sec/p' "$out" >&2
    local bad
    bad=$(sed -n 's/^BAD_ANSWERS //p' "$out")
    grep 'Socket errors\|Non-2xx' "$out" >&2 || true
    [ "${bad:-1}" -eq 0 ] || die "$label: $bad answers were not 200 with the echoed text"
    RPS=$(sed -n 's/^RPS //p' "$out")
    P50=$(sed -n 's/^P50_MS //p' "$out")
    P99=$(sed -n 's/^P99_MS //p' "$out")
    RSS_PEAK=$(sort -n "$samples" | tail -n 1)
}

write_lua "$WORK/modern.lua" "$CALL_2026" \
    "MCP-Protocol-Version: 2026-07-28" "Mcp-Method: tools/call" "Mcp-Name: openclaw_chat"
run_load "2026-07-28 stateless" "$WORK/modern.lua"
MODERN="$RPS calls/s, p50 $P50 ms, p99 $P99 ms, RSS peak $RSS_PEAK MiB"

SESSION=$(open_session)
[ -n "$SESSION" ] || die "no session id from initialize"
write_lua "$WORK/legacy.lua" \
    '{"jsonrpc":"2.0","id":__ID__,"method":"tools/call","params":{"name":"openclaw_chat","arguments":{"message":"bench"}}}' \
    "Mcp-Session-Id: $SESSION" "MCP-Protocol-Version: 2025-06-18"
run_load "initialize-era session" "$WORK/legacy.lua"
LEGACY="$RPS calls/s, p50 $P50 ms, p99 $P99 ms, RSS peak $RSS_PEAK MiB"
sleep 1
RSS_AFTER=$(rss_mib)

# --- 4. many open sessions ---------------------------------------------------------------------------
log "opening $SESSIONS sessions"
started=$(date +%s.%N)
python3 - "$URL" "$SESSIONS" <<'EOF'
import json, sys, urllib.request
from concurrent.futures import ThreadPoolExecutor

url, count = sys.argv[1], int(sys.argv[2])
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
init = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}}).encode()
base = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}

def one(_):
    with opener.open(urllib.request.Request(url, init, base), timeout=10) as r:
        sid = r.headers["mcp-session-id"]
        r.read()
    headers = dict(base, **{"Mcp-Session-Id": sid, "MCP-Protocol-Version": "2025-06-18"})
    body = json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}).encode()
    with opener.open(urllib.request.Request(url, body, headers), timeout=10) as r:
        r.read()
    return sid

with ThreadPoolExecutor(16) as pool:
    ids = list(pool.map(one, range(count)))
assert len(set(ids)) == count, "duplicate session ids"
EOF
OPEN_SECS=$(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
sleep 1
OPEN=$(curl --noproxy '*' -fsS --max-time 5 "http://127.0.0.1:$PORT/health" | python3 -c 'import json, sys; print(json.load(sys.stdin)["sessions"]["streamableHttp"])')
RSS_SESSIONS=$(rss_mib)

# --- 5. summary --------------------------------------------------------------------------------------
cat <<EOF
openclaw-mcp HTTP benchmark ($(nproc) cores; wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s; instant mock gateway)
  openclaw_chat, 2026-07-28 (stateless, JSON):   $MODERN
  openclaw_chat, initialize-era session (SSE):   $LEGACY
  RSS idle (after one call):                     $RSS_IDLE MiB
  RSS after the load:                            $RSS_AFTER MiB
  RSS with $OPEN open sessions:                   $RSS_SESSIONS MiB (opened in $OPEN_SECS s)
EOF
