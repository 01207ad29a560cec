#!/usr/bin/env bash
# Tasks queued and drained per second, through MCP over HTTP, with the embedded SQLite store and
# with one, two and three bridges on one PostgreSQL database, against an instant gateway:
#
#   bash scripts/bench-cluster.sh            # BENCH_TASKS=4000 BENCH_CONCURRENCY=64 BENCH_TASK_CONCURRENCY=16
#                                            # BENCH_PG_OPTIONS="-c synchronous_commit=off" (server options)
#
# Builds the release binaries, starts PostgreSQL in a temporary directory on 127.0.0.1 (as
# `nobody` under root) and the mock gateway (no delay), then for each setup a fresh database (or
# data directory) and its bridges (`--transport http`), and runs examples/cluster_load.rs: the
# tasks are queued round robin over the bridges by BENCH_CONCURRENCY calls in flight (raw
# sessionless 2026-07-28 `tools/call` requests from one Rust thread, far cheaper than the bridges,
# so that they are what is measured; the Python SDK capped the first figures near 250 calls/s),
# then waited for until all completed. Prints one line per setup and a Markdown table. Loopback
# only; not run in CI (figures depend on the machine).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh bench-cluster

TASKS=${BENCH_TASKS:-4000}
CONCURRENCY=${BENCH_CONCURRENCY:-64}
TASK_CONCURRENCY=${BENCH_TASK_CONCURRENCY:-16}

cargo build --quiet --release --bin openclaw-mcp --example mock_gateway --example cluster_load
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
ln -f "$TARGET_DIR/release/openclaw-mcp" "$WORK/openclaw-mcp"
ln -f "$TARGET_DIR/release/examples/mock_gateway" "$WORK/mock_gateway"
ln -f "$TARGET_DIR/release/examples/cluster_load" "$WORK/cluster_load"

start_postgres "${BENCH_PG_OPTIONS:-}"

"$WORK/mock_gateway" --host 127.0.0.1 --port 0 2>"$WORK/gateway.log" &
PIDS+=($!)
GW_PORT=$(wait_port "$WORK/gateway.log" 's#^mock gateway listening on http://127\.0\.0\.1:\([0-9][0-9]*\)$#\1#p' "${PIDS[-1]}" gateway)
BEARER=$(python3 -c 'import secrets; print(secrets.token_hex(24))')

# run_setup NAME REPLICAS [DATABASE_URL]: bridges on a fresh store, the client, then the bridges stopped.
run_setup() {
    local name=$1 replicas=$2 url=${3:-} ports=() pids=() i port
    for i in $(seq "$replicas"); do
        mkdir -p "$WORK/$name-$i"
        env -i PATH="$PATH" HOME="$WORK/$name-$i" \
            OPENCLAW_URL="http://127.0.0.1:$GW_PORT" OPENCLAW_API=http \
            OPENCLAW_TASK_CONCURRENCY="$TASK_CONCURRENCY" OPENCLAW_MAX_TASKS=1000000 \
            OPENCLAW_MCP_DATA_DIR="$WORK/$name-$i/data" ${url:+OPENCLAW_MCP_DATABASE_URL="$url"} \
            MCP_BEARER_TOKENS="bench:$BEARER" MCP_RATE_LIMIT_PER_MINUTE=0 \
            "$WORK/openclaw-mcp" --transport http --host 127.0.0.1 --port 0 2>"$WORK/$name-$i.log" &
        pids+=($!)
        PIDS+=($!)
        port=$(wait_port "$WORK/$name-$i.log" 's/.*listening address=127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$!" "bridge $name-$i")
        ports+=("$port")
    done
    "$WORK/cluster_load" --ports "$(IFS=,; echo "${ports[*]}")" \
        --bearer "$BEARER" --tasks "$TASKS" --concurrency "$CONCURRENCY" | tee -a "$WORK/results.jsonl"
    for i in "${pids[@]}"; do stop "$i"; done
}

run_setup sqlite 1
for n in 1 2 3; do
    "${AS_PG[@]}" "$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U postgres "bench$n"
    run_setup "pg$n" "$n" "postgres://postgres@127.0.0.1:$PG_PORT/bench$n"
done

python3 - "$WORK/results.jsonl" "$TASKS" "$CONCURRENCY" "$TASK_CONCURRENCY" <<'PYEOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
names = ["SQLite, 1 bridge"] + [f"PostgreSQL, {r['replicas']} bridge{'s' if r['replicas'] > 1 else ''}" for r in rows[1:]]
print(f"\n{sys.argv[2]} tasks, {sys.argv[3]} calls in flight, task_concurrency {sys.argv[4]} per bridge, instant gateway\n")
print("| Store | Queued (tasks/s) | Queued and drained (tasks/s) |")
print("|---|---|---|")
for name, r in zip(names, rows):
    print(f"| {name} | {r['queued_per_s']} | {r['drained_per_s']} |")
PYEOF
