#!/usr/bin/env bash
# Load benchmark of the bridge's HTTP mode: `openclaw_chat` calls per second over Streamable HTTP
# against an instant gateway (examples/mock_gateway.rs), p50/p99 latency, and the bridge's memory
# (RSS) idle, under load, and with 1000 open MCP sessions; and the same load with OAuth on versus
# off.
#
#   bash scripts/bench-http.sh
#
# 1. builds the bridge and the mock gateway in release mode;
# 2. starts the gateway (no delay) and two bridges on free loopback ports, tasks in memory:
#    - auth off;
#    - auth on (AUTH_ENABLED=true, a configured client with a random 64-hex secret, a loopback
#      MCP_REDIRECT_URIS, a random MCP_TOKEN_SIGNING_KEY), which must answer 401 without a token;
#      an access token is obtained through the real flow (GET /authorize with PKCE S256, the 302
#      read without following it, POST /token with the code, the verifier and the secret);
#    both with MCP_RATE_LIMIT_PER_MINUTE=${BENCH_RATE_LIMIT:-0}: the MCP rate limit applies with
#    and without auth, and its default (1200 per minute per address) would refuse this load;
#    0 turns it off on both, a large value (e.g. 1000000) includes its cost on both;
# 3. measures RSS idle, then runs wrk (Debian package `wrk`; installed with apt-get when
#    missing and possible) with ${BENCH_CONNECTIONS:-64} connections for ${BENCH_DURATION:-15}s
#    per run, sampling the loaded bridge's RSS every 0.2 s and checking every answer for the
#    echoed text:
#    a. 2026-07-28 era: stateless `tools/call` POSTs, plain JSON answers, on the auth-off bridge
#       and on the auth-on bridge (`Authorization: Bearer <token>` on every request), in
#       ${BENCH_AUTH_ROUNDS:-2} rounds in alternating order (off on, on off, ...: with 2 rounds,
#       a drift of the machine's speed during the runs weighs on both sides alike);
#    b. initialize era (auth off): every connection in one MCP session (Mcp-Session-Id), SSE
#       answers;
# 4. opens ${BENCH_SESSIONS:-1000} sessions (initialize + notifications/initialized) on the
#    auth-off bridge and measures RSS again;
# 5. prints a summary, with auth off and on side by side (means over the rounds) and the
#    difference in percent, and always stops every process it started.
#
# BENCH_AUTH=0 skips the auth-on bridge and runs the 2026-07-28 load once, auth off.
#
# Everything runs on 127.0.0.1, bounded in time. The numbers depend on the machine: the bridges,
# the gateway and wrk share its cores.
set -euo pipefail

cd "$(dirname "$0")/.."
CONNECTIONS=${BENCH_CONNECTIONS:-64}
DURATION=${BENCH_DURATION:-15}
SESSIONS=${BENCH_SESSIONS:-1000}
THREADS=${BENCH_THREADS:-2}
AUTH=${BENCH_AUTH:-1}
ROUNDS=${BENCH_AUTH_ROUNDS:-2}
RATE_LIMIT=${BENCH_RATE_LIMIT:-0}
[ "$ROUNDS" -ge 1 ] 2>/dev/null || { echo "bench-http: BENCH_AUTH_ROUNDS must be >= 1" >&2; exit 2; }

# log, die, WORK, PIDS (stopped on exit), stop, wait_port, apt_install.
source scripts/lib.sh bench-http

command -v wrk >/dev/null || apt_install 300 wrk || true
command -v wrk >/dev/null || die "wrk not found (apt-get install wrk)"
command -v curl >/dev/null || die "curl not found"
command -v python3 >/dev/null || die "python3 not found"

# --- 1. build ---------------------------------------------------------------------------------------
cargo build --quiet --release --bin openclaw-mcp --example mock_gateway
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
BRIDGE=$TARGET_DIR/release/openclaw-mcp
GATEWAY=$TARGET_DIR/release/examples/mock_gateway


# --- 2. gateway and bridges -------------------------------------------------------------------------
"$GATEWAY" --host 127.0.0.1 --port 0 2>"$WORK/gateway.log" &
PIDS+=($!)
GW_PORT=$(wait_port "$WORK/gateway.log" 's#^mock gateway listening on http://127\.0\.0\.1:\([0-9][0-9]*\)$#\1#p' "${PIDS[-1]}" gateway)

# start_bridge NAME [VAR=VALUE...]: a bridge with the common settings plus these; sets
# STARTED_PID and STARTED_PORT once /health answers.
start_bridge() {
    local name=$1
    shift
    env -i PATH="$PATH" HOME="$WORK" OPENCLAW_MCP_DATA_DIR=:memory: \
        OPENCLAW_URL="http://127.0.0.1:$GW_PORT" MCP_MAX_SESSIONS=$((SESSIONS + 100)) \
        MCP_RATE_LIMIT_PER_MINUTE="$RATE_LIMIT" "$@" \
        "$BRIDGE" --transport http --host 127.0.0.1 --port 0 2>"$WORK/bridge-$name.log" &
    STARTED_PID=$!
    PIDS+=("$STARTED_PID")
    STARTED_PORT=$(wait_port "$WORK/bridge-$name.log" 's/.*listening address=127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$STARTED_PID" "bridge ($name)")
    local try
    for try in $(seq 50); do
        curl --noproxy '*' -fsS --max-time 1 -o /dev/null "http://127.0.0.1:$STARTED_PORT/health" 2>/dev/null && return 0
        sleep 0.1
    done
    die "/health of the $name bridge did not answer"
}

start_bridge off
BRIDGE_PID=$STARTED_PID
PORT=$STARTED_PORT
URL=http://127.0.0.1:$PORT/mcp
log "gateway on :$GW_PORT, bridge (auth off) on :$PORT (pid $BRIDGE_PID), $(nproc) cores, load average $(cut -d" " -f1-3 /proc/loadavg)"

rss_mib() { awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/${1:-$BRIDGE_PID}/status"; }

CALL_2026='{"jsonrpc":"2.0","id":__ID__,"method":"tools/call","params":{"name":"openclaw_chat","arguments":{"message":"bench"},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"bench","version":"1"},"io.modelcontextprotocol/clientCapabilities":{}}}}'
# call_2026 URL [CURL ARGS...]: one 2026-07-28 openclaw_chat call; prints the answer.
call_2026() {
    local url=$1
    shift
    curl --noproxy '*' -sS --max-time 5 "$url" -H 'Content-Type: application/json' \
        -H 'Accept: application/json, text/event-stream' -H 'MCP-Protocol-Version: 2026-07-28' \
        -H 'Mcp-Method: tools/call' -H 'Mcp-Name: openclaw_chat' "$@" -d "${CALL_2026/__ID__/1}"
}

# A warm-up call of each kind, so that idle RSS includes the first-use allocations.
call_2026 "$URL" -f | grep -q 'echo: bench' || die "the warm-up call did not answer 'echo: bench'"

if [ "$AUTH" = 1 ]; then
    AUTH_CLIENT=bench-client
    AUTH_SECRET=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
    CALLBACK_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    CALLBACK=http://127.0.0.1:$CALLBACK_PORT/callback # never listened on: the 302 is read, not followed
    start_bridge on AUTH_ENABLED=true MCP_CLIENT_ID="$AUTH_CLIENT" MCP_CLIENT_SECRET="$AUTH_SECRET" \
        MCP_REDIRECT_URIS="$CALLBACK" MCP_TOKEN_SIGNING_KEY="$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')"
    AUTH_PID=$STARTED_PID
    AUTH_BASE=http://127.0.0.1:$STARTED_PORT
    AUTH_URL=$AUTH_BASE/mcp
    log "bridge (auth on) on :$STARTED_PORT (pid $AUTH_PID)"
    status=$(call_2026 "$AUTH_URL" -o "$WORK/unauth.json" -D "$WORK/unauth.headers" -w '%{http_code}')
    [ "$status" = 401 ] || die "the auth-on bridge answered $status, not 401, to a call without a token"
    grep -qi '^www-authenticate: Bearer .*resource_metadata=' "$WORK/unauth.headers" ||
        die "the auth-on bridge's 401 has no WWW-Authenticate with resource_metadata"
    # The real flow, from the outside: authorization request with PKCE, code, token request.
    ACCESS_TOKEN=$(BENCH_SECRET="$AUTH_SECRET" timeout 30 python3 - "$AUTH_BASE" "$AUTH_CLIENT" "$CALLBACK" <<'EOF'
import base64, hashlib, json, os, secrets, sys, urllib.error, urllib.parse, urllib.request

base, client_id, redirect_uri = sys.argv[1:4]

class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # the 302 is the answer: read its Location, do not follow it

opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), NoRedirect)
verifier = secrets.token_urlsafe(48)
challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
state = secrets.token_urlsafe(16)
query = urllib.parse.urlencode({
    "response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri, "state": state,
    "code_challenge": challenge, "code_challenge_method": "S256", "scope": "mcp:tools",
    "resource": base + "/mcp",
})
try:
    opener.open(base + "/authorize?" + query, timeout=10).close()
    sys.exit("token helper: /authorize did not redirect")
except urllib.error.HTTPError as e:
    if e.code != 302:
        sys.exit(f"token helper: /authorize answered {e.code}")
    location = e.headers["Location"] or ""
params = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query))
if not location.startswith(redirect_uri + "?") or params.get("state") != state or not params.get("code"):
    sys.exit("token helper: the redirect is not the callback with the state and a code")
form = urllib.parse.urlencode({
    "grant_type": "authorization_code", "code": params["code"], "redirect_uri": redirect_uri,
    "code_verifier": verifier, "client_id": client_id, "client_secret": os.environ["BENCH_SECRET"],
    "resource": base + "/mcp",
}).encode()
request = urllib.request.Request(base + "/token", form, {"Content-Type": "application/x-www-form-urlencoded"})
try:
    with opener.open(request, timeout=10) as r:
        body = json.load(r)
except urllib.error.HTTPError as e:
    sys.exit(f"token helper: /token answered {e.code}")
if body.get("token_type", "").lower() != "bearer" or body.get("access_token", "").count(".") != 2:
    sys.exit("token helper: /token did not answer a bearer JWT")
print(body["access_token"])
EOF
    ) || die "could not obtain an access token from the auth-on bridge"
    call_2026 "$AUTH_URL" -f -H "Authorization: Bearer $ACCESS_TOKEN" | grep -q 'echo: bench' ||
        die "the warm-up call with the token did not answer 'echo: bench'"
    log "access token obtained through /authorize (PKCE) and /token"
fi
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

# cpu_ticks PID: user + system CPU time the process has used, in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
CLK_TCK=$(getconf CLK_TCK)

# run_load LABEL LUA [URL PID]: wrk with RSS sampling of PID; sets RPS, P50, P99, RSS_PEAK and
# CPU_US (the bridge's CPU time per call, in µs: unlike calls/s, it hardly depends on what else
# the machine is doing).
run_load() {
    local label=$1 lua=$2 url=${3:-$URL} pid=${4:-$BRIDGE_PID} out=$WORK/$1.wrk samples=$WORK/$1.rss
    log "load: $label — $CONNECTIONS connections, $THREADS threads, ${DURATION}s"
    (while kill -0 "$pid" 2>/dev/null; do rss_mib "$pid" >>"$samples"; echo >>"$samples"; sleep 0.2; done) &
    local sampler=$!
    local ticks_before
    ticks_before=$(cpu_ticks "$pid")
    timeout $((DURATION + 30)) wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --timeout 10s --latency -s "$lua" "$url" >"$out" 2>&1 ||
        { kill "$sampler" 2>/dev/null; cat "$out" >&2; die "wrk failed ($label)"; }
    local ticks=$(($(cpu_ticks "$pid") - ticks_before))
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
    CPU_US=$(awk -v t="$ticks" -v hz="$CLK_TCK" -v n="$(sed -n 's/^REQUESTS //p' "$out")" \
        'BEGIN { printf "%.1f", t / hz * 1e6 / n }')
}

MODERN_HEADERS=("MCP-Protocol-Version: 2026-07-28" "Mcp-Method: tools/call" "Mcp-Name: openclaw_chat")
write_lua "$WORK/modern.lua" "$CALL_2026" "${MODERN_HEADERS[@]}"
# Each side's figures, one line per round: calls/s p50 p99 RSS-peak CPU-µs-per-call.
: >"$WORK/side-off"
: >"$WORK/side-on"
if [ "$AUTH" = 1 ]; then
    write_lua "$WORK/modern-auth.lua" "$CALL_2026" "${MODERN_HEADERS[@]}" "Authorization: Bearer $ACCESS_TOKEN"
    for ((round = 1; round <= ROUNDS; round++)); do
        order="off on"
        [ $((round % 2)) -eq 0 ] && order="on off"
        for side in $order; do
            if [ "$side" = off ]; then
                run_load "2026-07-28 stateless, auth off, round $round" "$WORK/modern.lua"
            else
                run_load "2026-07-28 stateless, auth on, round $round" "$WORK/modern-auth.lua" "$AUTH_URL" "$AUTH_PID"
            fi
            echo "$RPS $P50 $P99 $RSS_PEAK $CPU_US" >>"$WORK/side-$side"
            log "  -> auth $side: $RPS calls/s, p50 $P50 ms, p99 $P99 ms, bridge CPU $CPU_US µs/call"
        done
    done
else
    run_load "2026-07-28 stateless" "$WORK/modern.lua"
    echo "$RPS $P50 $P99 $RSS_PEAK $CPU_US" >>"$WORK/side-off"
fi
# side_mean SIDE: "calls/s p50 p99 RSS-peak CPU-µs" over the rounds (means; RSS: the highest).
side_mean() {
    awk '{ r += $1; a += $2; b += $3; if ($4 > m) m = $4; c += $5; n++ }
         END { printf "%.1f %.3f %.3f %.1f %.1f\n", r / n, a / n, b / n, m, c / n }' "$WORK/side-$1"
}
read -r RPS P50 P99 RSS_PEAK CPU_US <<<"$(side_mean off)"
MODERN="$RPS calls/s, p50 $P50 ms, p99 $P99 ms, RSS peak $RSS_PEAK MiB, bridge CPU $CPU_US µs/call"

SESSION=$(open_session)
[ -n "$SESSION" ] || die "no session id from initialize"
write_lua "$WORK/legacy.lua" \
    '{"jsonrpc":"2.0","id":__ID__,"method":"tools/call","params":{"name":"openclaw_chat","arguments":{"message":"bench"}}}' \
    "Mcp-Session-Id: $SESSION" "MCP-Protocol-Version: 2025-06-18"
run_load "initialize-era session" "$WORK/legacy.lua"
LEGACY="$RPS calls/s, p50 $P50 ms, p99 $P99 ms, RSS peak $RSS_PEAK MiB, bridge CPU $CPU_US µs/call"
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
[ "$AUTH" = 1 ] || exit 0

# --- 6. auth on versus off -----------------------------------------------------------------------
read -r OFF_RPS OFF_P50 OFF_P99 OFF_RSS OFF_CPU <<<"$(side_mean off)"
read -r ON_RPS ON_P50 ON_P99 ON_RSS ON_CPU <<<"$(side_mean on)"
pct() { awk -v off="$1" -v on="$2" 'BEGIN { printf "%+.1f %%", (on - off) / off * 100 }'; }
rounds() { awk -v col="$2" -v fmt="$3" '{ printf "%s" fmt, (NR > 1 ? " / " : ""), $col }' "$WORK/side-$1"; }
limit=$([ "$RATE_LIMIT" = 0 ] && echo "MCP rate limit off on both" || echo "MCP_RATE_LIMIT_PER_MINUTE=$RATE_LIMIT on both")
cat <<EOF
openclaw_chat, 2026-07-28, auth off vs on (Authorization: Bearer <JWT> on every request; means of
$ROUNDS run(s) of ${DURATION}s per side, alternating order; $limit)
                   calls/s      p50 ms     p99 ms   CPU µs/call   RSS peak MiB
  auth off    $(printf '%10.1f %10.3f %10.3f %13.1f %14.1f' "$OFF_RPS" "$OFF_P50" "$OFF_P99" "$OFF_CPU" "$OFF_RSS")
  auth on     $(printf '%10.1f %10.3f %10.3f %13.1f %14.1f' "$ON_RPS" "$ON_P50" "$ON_P99" "$ON_CPU" "$ON_RSS")
  difference  $(printf '%10s %10s %10s %13s' "$(pct "$OFF_RPS" "$ON_RPS")" "$(pct "$OFF_P50" "$ON_P50")" "$(pct "$OFF_P99" "$ON_P99")" "$(pct "$OFF_CPU" "$ON_CPU")")
  calls/s per run:        auth off $(rounds off 1 %.0f); auth on $(rounds on 1 %.0f)
  bridge CPU µs/call per run: auth off $(rounds off 5 %.1f); auth on $(rounds on 5 %.1f)
  (CPU µs/call is the bridge's user + system time over its calls; calls/s also depend on what
  else runs on the machine: the load average was $(cut -d' ' -f1-3 /proc/loadavg) at the end)
EOF
