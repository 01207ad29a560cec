#!/usr/bin/env bash
# Several bridges on one PostgreSQL database (tasks, OAuth state) behind nginx, on real parts:
#
#   bash scripts/e2e-cluster.sh
#
# 1. PostgreSQL's server binaries (scripts/pg-deps.sh) and nginx (Debian package `nginx`, installed
#    as root when missing); the official Python MCP SDK in ${E2E_VENV:-target/e2e-venv};
# 2. builds the bridge and the mock gateway (`cargo build ${CARGO_PROFILE_ARG}`);
# 3. a PostgreSQL server initialised in a temporary directory, on 127.0.0.1 (as `nobody` when run
#    as root: initdb refuses root); the mock gateway answering every chat after
#    ${CLUSTER_DELAY_MS:-4000} ms; three bridges (`--transport http`, each its own port and data
#    directory, replica names r0, r1, r2, the same static bearer token, OAuth on with nginx's URL
#    as the issuer, and the same OPENCLAW_MCP_DATABASE_URL); nginx on a free loopback port, round
#    robin over the three except for requests of a session, sent to the replica named at the start
#    of its id (the configuration of docs/deployment.md);
# 4. scripts/e2e_cluster_oauth.py: the SDK's OAuth client logs in through nginx, refreshes through
#    nginx 8 times (each rotated token accepted by every replica), one refresh token raced at two
#    replicas (answered once, the grant dead everywhere), a revocation through nginx refused by
#    every replica within a second;
# 5. scripts/e2e_cluster.py, through the SDK: initialize-era Streamable HTTP and legacy SSE
#    sessions through nginx, 10 tool calls each, all answered (pinned to their replica); then, in
#    the sessionless 2026-07-28 era (any replica may answer any request): queues
#    ${CLUSTER_TASKS:-200} tasks through nginx; cancels running tasks through the first replica's
#    own port (most of them run on the others) and checks that the gateway saw each of those
#    requests dropped; SIGKILLs the third replica mid-run; checks that every task ends completed,
#    cancelled, or failed as interrupted (the dead replica's, once its 30 s lease expired), that
#    status and list agree on every replica, and that the gateway received every prompt at most
#    once (GET /stats of the mock gateway); the killed replica's sessions get 404 through nginx
#    (the body the bridges give for an unknown session), and new sessions of both transports work
#    on the survivors.
# Loopback only. Exit status: 0 when every check passed.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
STOP_WAIT=50
# shellcheck source=scripts/lib.sh
source scripts/lib.sh e2e-cluster
# shellcheck source=scripts/e2e-lib.sh
source scripts/e2e-lib.sh

VENV=${E2E_VENV:-target/e2e-venv}
PYTHON=${E2E_PYTHON:-python3}
DELAY_MS=${CLUSTER_DELAY_MS:-4000}
TASKS=${CLUSTER_TASKS:-200}
read -r -a PROFILE_ARGS <<<"${CARGO_PROFILE_ARG:-}"

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# --- 1. what it needs ------------------------------------------------------------------------------
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
if ! [ -x "$NGINX" ]; then
    apt_install 600 nginx-light || apt_install 600 nginx || die "nginx is missing and cannot be installed here"
    NGINX=$(command -v nginx || echo /usr/sbin/nginx)
fi
ensure_mcp_venv

# --- 2. build --------------------------------------------------------------------------------------
cargo build --quiet "${PROFILE_ARGS[@]}" --bin openclaw-mcp --example mock_gateway
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
PROFILE_DIR=$(profile_dir "${PROFILE_ARGS[@]}")
BRIDGE=$TARGET_DIR/$PROFILE_DIR/openclaw-mcp
MOCK=$TARGET_DIR/$PROFILE_DIR/examples/mock_gateway
# Hard links: another build in the same target directory cannot swap them during the run.
ln -f "$BRIDGE" "$WORK/openclaw-mcp"
ln -f "$MOCK" "$WORK/mock_gateway"

# --- 3. PostgreSQL, the gateway, three bridges, nginx ----------------------------------------------
start_postgres "-c fsync=off"

GW_TOKEN=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
"$WORK/mock_gateway" --host 127.0.0.1 --port 0 --token "$GW_TOKEN" --delay-ms "$DELAY_MS" 2>"$WORK/gateway.log" &
PIDS+=($!)
GW_PORT=$(wait_port "$WORK/gateway.log" 's#^mock gateway listening on http://127\.0\.0\.1:\([0-9][0-9]*\)$#\1#p' "${PIDS[-1]}" gateway)

BEARER=$(python3 -c 'import secrets; print(secrets.token_hex(24))')
CLIENT_SECRET=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
CALLBACK="http://127.0.0.1:$(free_port)/callback"
NGINX_PORT=$(free_port)
BRIDGE_PORTS=()
BRIDGE_PIDS=()
for i in 0 1 2; do
    mkdir -p "$WORK/bridge$i"
    env -i PATH="$PATH" HOME="$WORK/bridge$i" \
        OPENCLAW_URL="http://127.0.0.1:$GW_PORT" OPENCLAW_GATEWAY_TOKEN="$GW_TOKEN" OPENCLAW_API=http \
        OPENCLAW_TIMEOUT_MS=60000 OPENCLAW_TASK_CONCURRENCY=16 OPENCLAW_MAX_TASKS=1000 \
        OPENCLAW_MCP_DATA_DIR="$WORK/bridge$i/data" OPENCLAW_MCP_DATABASE_URL="$DATABASE_URL" \
        OPENCLAW_MCP_REPLICA_ID="r$i" MCP_BEARER_TOKENS="cluster:$BEARER" \
        AUTH_ENABLED=true MCP_CLIENT_ID=openclaw MCP_CLIENT_SECRET="$CLIENT_SECRET" \
        MCP_ISSUER_URL="http://127.0.0.1:$NGINX_PORT" MCP_REDIRECT_URIS="$CALLBACK" \
        "$WORK/openclaw-mcp" --transport http --host 127.0.0.1 --port 0 2>"$WORK/bridge$i.log" &
    BRIDGE_PIDS+=($!)
    PIDS+=($!)
    BRIDGE_PORTS+=("$(wait_port "$WORK/bridge$i.log" 's/.*listening address=127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "${PIDS[-1]}" "bridge $i")")
done

mkdir -p "$WORK/nginx/tmp"
# The configuration of docs/deployment.md, "Sessions behind a load balancer": one upstream per
# replica and one of all. A request whose session id (Mcp-Session-Id, or the sessionId of a
# legacy POST /messages) starts with a replica's name and a dot goes to that replica only, any
# other request to all in turn; a pinned request whose replica is down gets the 404 the bridges
# answer for an unknown session, and the client opens a new session, on a live replica.
UNKNOWN_SESSION='{"jsonrpc":"2.0","error":{"code":-32000,"message":"Not Found: Session not found"},"id":null}'
replica_lines() { # the map's lines, one per replica
    for i in 0 1 2; do echo "        ~^r$i\\. replica_r$i;"; done
}
cat >"$WORK/nginx/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $WORK/nginx/tmp/body;
    proxy_temp_path $WORK/nginx/tmp/proxy;
    fastcgi_temp_path $WORK/nginx/tmp/fastcgi;
    uwsgi_temp_path $WORK/nginx/tmp/uwsgi;
    scgi_temp_path $WORK/nginx/tmp/scgi;
    upstream bridges {
        server 127.0.0.1:${BRIDGE_PORTS[0]} max_fails=1 fail_timeout=5s;
        server 127.0.0.1:${BRIDGE_PORTS[1]} max_fails=1 fail_timeout=5s;
        server 127.0.0.1:${BRIDGE_PORTS[2]} max_fails=1 fail_timeout=5s;
    }
    upstream replica_r0 { server 127.0.0.1:${BRIDGE_PORTS[0]}; }
    upstream replica_r1 { server 127.0.0.1:${BRIDGE_PORTS[1]}; }
    upstream replica_r2 { server 127.0.0.1:${BRIDGE_PORTS[2]}; }
    map \$http_mcp_session_id \$mcp_upstream {
$(replica_lines)
        default bridges;
    }
    map \$arg_sessionId \$messages_upstream {
$(replica_lines)
        default bridges;
    }
    server {
        listen 127.0.0.1:$NGINX_PORT;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host \$host;
        proxy_buffering off;
        proxy_read_timeout 120s;
        proxy_next_upstream error timeout;
        add_header X-Upstream \$upstream_addr always;
        location = /messages {
            proxy_pass http://\$messages_upstream;
            error_page 502 = @messages_failed;
        }
        location / {
            proxy_pass http://\$mcp_upstream;
            error_page 502 = @mcp_failed;
        }
        location @mcp_failed {
            default_type application/json;
            if (\$mcp_upstream != bridges) { return 404 '$UNKNOWN_SESSION'; }
            return 502;
        }
        location @messages_failed {
            default_type application/json;
            if (\$messages_upstream != bridges) { return 404 '$UNKNOWN_SESSION'; }
            return 502;
        }
    }
}
EOF
"$NGINX" -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx" 2>"$WORK/nginx/stderr.log" &
PIDS+=($!)
for _ in $(seq 50); do
    curl --noproxy '*' -s --max-time 1 -o /dev/null "http://127.0.0.1:$NGINX_PORT/health" && break
    kill -0 "${PIDS[-1]}" 2>/dev/null || die "nginx did not start: $(cat "$WORK/nginx/stderr.log" "$WORK/nginx/error.log" 2>/dev/null)"
    sleep 0.1
done
log "nginx on 127.0.0.1:$NGINX_PORT in front of bridges on ${BRIDGE_PORTS[*]}"
# The replica killed on purpose is not news (the cleanup still stops every process by pid).
disown -a

# --- 4. the checks ---------------------------------------------------------------------------------
status=0
E2E_CLIENT_SECRET="$CLIENT_SECRET" "$VENV/bin/python" "$ROOT/scripts/e2e_cluster_oauth.py" \
    --front "http://127.0.0.1:$NGINX_PORT/mcp" \
    --replicas "$(IFS=,; echo "${BRIDGE_PORTS[*]}")" \
    --client-id openclaw --redirect-uri "$CALLBACK" || status=$?
if [ "$status" = 0 ]; then
    "$VENV/bin/python" "$ROOT/scripts/e2e_cluster.py" \
        --front "http://127.0.0.1:$NGINX_PORT/mcp" \
        --replicas "$(IFS=,; echo "${BRIDGE_PORTS[*]}")" \
        --names r0,r1,r2 \
        --victim "${BRIDGE_PIDS[2]}" \
        --gateway "http://127.0.0.1:$GW_PORT" \
        --bearer "$BEARER" --tasks "$TASKS" --delay-ms "$DELAY_MS" || status=$?
fi
if grep -q -- "$GW_TOKEN\|$BEARER\|$CLIENT_SECRET" "$WORK"/bridge*.log; then
    log "FAILED: a secret appears in a bridge log"
    status=1
fi
if [ "$status" != 0 ]; then
    log "bridge logs (tails):"
    for i in 0 1 2; do tail -15 "$WORK/bridge$i.log" >&2 || true; done
    die "e2e-cluster failed"
fi
log "passed"
