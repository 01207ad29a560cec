#!/usr/bin/env bash
# Builds every release artifact on Linux, into dist/ (gitignored):
#
#   bash scripts/package.sh
#
# 1. tools, installed when missing (under ${PACKAGE_TOOLS:-target/package-tools}, so nothing is
#    installed system-wide but the Rust targets): the Rust targets (rustup), zig from PyPI's
#    `ziglang` (pinned) in a venv, `cargo-zigbuild` from crates.io (pinned, --locked), and the
#    official MCP Bundle CLI `@anthropic-ai/mcpb` (pinned by packaging/tools/package-lock.json);
# 2. cross-builds the binary with `cargo zigbuild` for each platform of PACKAGE_TARGETS:
#      linux-x64    x86_64-unknown-linux-musl     (static)
#      linux-arm64  aarch64-unknown-linux-musl    (static)
#      darwin       universal2-apple-darwin       (x86_64 + arm64, macOS 11 or later), which also
#                   gives the thin darwin-x64 and darwin-arm64 binaries of the npm packages;
#                   every slice signed ad hoc (scripts/macho_sign.py for the x86_64 one)
#      win32-x64    x86_64-pc-windows-gnu         (PE32+, system DLLs and the UCRT only)
#    and checks each one with scripts/binary_check.py (format, architecture, minimum OS, linked
#    libraries, and on macOS the ad-hoc code signature, page by page);
# 3. writes into dist/:
#      bin/<platform>/openclaw-mcp[.exe]          the binaries
#      openclaw-mcp-<v>-<target>.tar.gz|.zip      archives for GitHub Releases (+ README, LICENSE)
#      openclaw-mcp-<v>.mcpb                      the Claude Desktop bundle (macOS, Windows, Linux
#                                                 x64), validated and packed by the mcpb CLI
#      npm/openclaw-mcp-rs-<v>[-<platform>].tgz   the npm launcher and one package per platform
#      oci/                                       the container image (OCI layout): linux/amd64 and
#                                                 linux/arm64 from the musl binaries, and their index
#      server.json                                the MCP Registry entry with the bundle's SHA-256
#      SHA256SUMS
#    and checks that every one carries Cargo.toml's version (scripts/packaging.py check-versions).
#
# What the artifacts do is tested by scripts/package-test.sh (CI runs both).
#
# Environment:
#   PACKAGE_TARGETS  comma-separated platforms, or "all" (the default): linux-x64, linux-arm64,
#                    darwin, win32-x64. The bundle is made whenever linux-x64 is built (with the
#                    macOS and Windows binaries when they are), the image from whichever Linux
#                    binaries are.
#   PACKAGE_PROFILE  the cargo profile: release (default; fat LTO, what is published) or ci (no
#                    LTO, parallel codegen: a broken target is seen at a fraction of the time).
#   PACKAGE_FEATURES cargo features for the build (none in a release; musl-system-allocator to
#                    measure musl's own allocator against mimalloc)
#   DIST_DIR         default dist
#   PACKAGE_TOOLS    default target/package-tools
#   SOURCE_DATE_EPOCH  timestamps inside archives and the image (default: the last commit's time)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

ZIGLANG_VERSION=0.17.0
CARGO_ZIGBUILD_VERSION=0.24.1
# macOS 11 (Big Sur) is the first with Apple silicon; zig's default would be the newest SDK's.
export MACOSX_DEPLOYMENT_TARGET=11.0

TARGETS=${PACKAGE_TARGETS:-all}
PROFILE=${PACKAGE_PROFILE:-release}
DIST=${DIST_DIR:-dist}
TOOLS=${PACKAGE_TOOLS:-target/package-tools}
[ "$TARGETS" = all ] && TARGETS=linux-x64,linux-arm64,darwin,win32-x64

log() { printf 'package: %s\n' "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }
now() { date +%s; }
started=$(now)
declare -A TOOK=()

VERSION=$(python3 scripts/packaging.py version)
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}
REVISION=$(git rev-parse HEAD 2>/dev/null || echo "")
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
PROFILE_DIR=$PROFILE
[ "$PROFILE" = dev ] && PROFILE_DIR=debug
log "openclaw-mcp $VERSION: targets $TARGETS, profile $PROFILE, into $DIST"

# The committed files must agree before anything is built.
python3 scripts/packaging.py check-versions >/dev/null || python3 scripts/packaging.py check-versions

declare -A WANT=()
IFS=, read -r -a list <<<"$TARGETS"
for t in "${list[@]}"; do
    case $t in
        linux-x64 | linux-arm64 | darwin | win32-x64) WANT[$t]=1 ;;
        *) die "unknown target $t (linux-x64, linux-arm64, darwin, win32-x64 or all)" ;;
    esac
done
triples=()
[ -n "${WANT[linux-x64]:-}" ] && triples+=(x86_64-unknown-linux-musl)
[ -n "${WANT[linux-arm64]:-}" ] && triples+=(aarch64-unknown-linux-musl)
[ -n "${WANT[darwin]:-}" ] && triples+=(x86_64-apple-darwin aarch64-apple-darwin)
[ -n "${WANT[win32-x64]:-}" ] && triples+=(x86_64-pc-windows-gnu)

# --- 1. tools ------------------------------------------------------------------------------------
t0=$(now)
mkdir -p "$TOOLS"
TOOLS=$(cd "$TOOLS" && pwd)
if command -v rustup >/dev/null; then
    installed=$(rustup target list --installed)
    missing=()
    for triple in "${triples[@]}"; do grep -qx "$triple" <<<"$installed" || missing+=("$triple"); done
    if [ ${#missing[@]} -gt 0 ]; then
        log "rustup target add ${missing[*]}"
        timeout 900 rustup target add "${missing[@]}" >&2
    fi
fi
if [ "$("$TOOLS/venv/bin/python-zig" version 2>/dev/null)" != "$ZIGLANG_VERSION" ]; then
    log "installing zig $ZIGLANG_VERSION (PyPI ziglang) into $TOOLS/venv"
    python3 -m venv "$TOOLS/venv"
    timeout 600 "$TOOLS/venv/bin/pip" install -q --disable-pip-version-check "ziglang==$ZIGLANG_VERSION" >&2
fi
if [ "$("$TOOLS/cargo/bin/cargo-zigbuild" --version 2>/dev/null)" != "cargo-zigbuild $CARGO_ZIGBUILD_VERSION" ]; then
    log "installing cargo-zigbuild $CARGO_ZIGBUILD_VERSION (crates.io) into $TOOLS/cargo"
    CARGO_TARGET_DIR="$TOOLS/cargo-build" timeout 1200 cargo install --quiet --locked \
        "cargo-zigbuild@$CARGO_ZIGBUILD_VERSION" --root "$TOOLS/cargo"
    rm -rf "$TOOLS/cargo-build"
fi
# cargo-zigbuild finds zig as `python -m ziglang` through the venv's python, first on PATH.
export PATH="$TOOLS/cargo/bin:$TOOLS/venv/bin:$PATH"
lock_hash=$(cat packaging/tools/package.json packaging/tools/package-lock.json | sha256sum | cut -d' ' -f1)
MCPB=$TOOLS/npm/node_modules/@anthropic-ai/mcpb/dist/cli/cli.js
if [ "$(cat "$TOOLS/npm/.lock-hash" 2>/dev/null)" != "$lock_hash" ] || [ ! -f "$MCPB" ]; then
    log "npm ci of packaging/tools (the mcpb CLI) in $TOOLS/npm"
    rm -rf "$TOOLS/npm"
    mkdir -p "$TOOLS/npm"
    cp packaging/tools/package.json packaging/tools/package-lock.json "$TOOLS/npm/"
    (cd "$TOOLS/npm" && timeout 600 npm ci --no-audit --no-fund --loglevel=error >&2)
    echo "$lock_hash" >"$TOOLS/npm/.lock-hash"
fi
[ -f "$MCPB" ] || die "the mcpb CLI is not at $MCPB"
mcpb() { node "$MCPB" "$@"; }
TOOK[tools]=$(( $(now) - t0 ))

# --- 2. build and check --------------------------------------------------------------------------
rm -rf "$DIST"
mkdir -p "$DIST/bin"
DIST=$(cd "$DIST" && pwd)
checks=()
build() {
    local triple=$1 t
    t=$(now)
    log "cargo zigbuild --profile $PROFILE --target $triple"
    timeout 3600 cargo zigbuild --quiet --locked --profile "$PROFILE" --target "$triple" --bin openclaw-mcp \
        ${PACKAGE_FEATURES:+--features "$PACKAGE_FEATURES"} >&2 ||
        die "the $triple build failed"
    TOOK[$triple]=$(( $(now) - t ))
    log "$triple built in ${TOOK[$triple]} s"
}
stage() { # stage PLATFORM FILE
    mkdir -p "$DIST/bin/$1"
    cp "$2" "$DIST/bin/$1/"
    chmod 0755 "$DIST/bin/$1/$(basename "$2")"
}
if [ -n "${WANT[linux-x64]:-}" ]; then
    build x86_64-unknown-linux-musl
    stage linux-x64 "$TARGET_DIR/x86_64-unknown-linux-musl/$PROFILE_DIR/openclaw-mcp"
    checks+=(linux-x64 "$DIST/bin/linux-x64/openclaw-mcp")
fi
if [ -n "${WANT[linux-arm64]:-}" ]; then
    build aarch64-unknown-linux-musl
    stage linux-arm64 "$TARGET_DIR/aarch64-unknown-linux-musl/$PROFILE_DIR/openclaw-mcp"
    checks+=(linux-arm64 "$DIST/bin/linux-arm64/openclaw-mcp")
fi
if [ -n "${WANT[darwin]:-}" ]; then
    # One invocation builds both slices, strips them and merges them (cargo-zigbuild's own lipo,
    # which copies the slices byte for byte). zig's linker signs the arm64 slice ad hoc but not the
    # x86_64 one: scripts/macho_sign.py signs it (the last step, after stripping and merging);
    # binary_check.py below verifies every signature page by page.
    build universal2-apple-darwin
    stage darwin-universal "$TARGET_DIR/universal2-apple-darwin/$PROFILE_DIR/openclaw-mcp"
    stage darwin-x64 "$TARGET_DIR/x86_64-apple-darwin/$PROFILE_DIR/openclaw-mcp"
    stage darwin-arm64 "$TARGET_DIR/aarch64-apple-darwin/$PROFILE_DIR/openclaw-mcp"
    python3 scripts/macho_sign.py "$DIST/bin/darwin-universal/openclaw-mcp" "$DIST/bin/darwin-x64/openclaw-mcp" \
        "$DIST/bin/darwin-arm64/openclaw-mcp" >&2
    checks+=(darwin-universal "$DIST/bin/darwin-universal/openclaw-mcp"
        darwin-x64 "$DIST/bin/darwin-x64/openclaw-mcp" darwin-arm64 "$DIST/bin/darwin-arm64/openclaw-mcp")
fi
if [ -n "${WANT[win32-x64]:-}" ]; then
    build x86_64-pc-windows-gnu
    stage win32-x64 "$TARGET_DIR/x86_64-pc-windows-gnu/$PROFILE_DIR/openclaw-mcp.exe"
    checks+=(win32-x64 "$DIST/bin/win32-x64/openclaw-mcp.exe")
fi
log "checking the binaries (scripts/binary_check.py)"
python3 scripts/binary_check.py --macos-min "$MACOSX_DEPLOYMENT_TARGET" "${checks[@]}" >&2 ||
    die "a binary is not what it should be (see above)"
for ((i = 1; i < ${#checks[@]}; i += 2)); do file -b "${checks[$i]}" | sed "s|^|package: file: $(basename "$(dirname "${checks[$i]}")"): |" >&2; done

# --- 3. the packages -----------------------------------------------------------------------------
t0=$(now)
python3 scripts/packaging.py archives --dist "$DIST"

WORK=$TARGET_DIR/package-work
rm -rf "$WORK"
mkdir -p "$WORK"

# The Claude Desktop bundle: the manifest, and one binary per OS it names (linux-x64 is its
# entry point, so it is always there). A bundle made without darwin or win32-x64 (PACKAGE_TARGETS
# short of all, as in .ci/run) is for testing only: it is named as the release's, but
# scripts/package-test.sh with PACKAGE_REQUIRE_ALL=1 (the release and the targets job) refuses it.
if [ -n "${WANT[linux-x64]:-}" ]; then
    bundle=$WORK/mcpb
    mkdir -p "$bundle/server"
    cp packaging/mcpb/manifest.json "$bundle/"
    cp LICENSE "$bundle/"
    missing=()
    for p in darwin-universal win32-x64 linux-x64; do
        if [ -d "$DIST/bin/$p" ]; then cp -a "$DIST/bin/$p" "$bundle/server/$p"; else missing+=("$p"); fi
    done
    [ ${#missing[@]} -eq 0 ] || log "the bundle lacks ${missing[*]} (PACKAGE_TARGETS=$TARGETS): not a release bundle"
    mcpb validate "$bundle/manifest.json" >&2 || die "mcpb validate rejected packaging/mcpb/manifest.json"
    mcpb pack "$bundle" "$DIST/openclaw-mcp-$VERSION.mcpb" >&2 || die "mcpb pack failed"
    mcpb info "$DIST/openclaw-mcp-$VERSION.mcpb" >&2 || true
else
    log "no .mcpb: its entry point is the linux-x64 binary (PACKAGE_TARGETS=$TARGETS)"
fi

# npm: the launcher and one package per platform binary.
python3 scripts/packaging.py npm-stage --dist "$DIST" --out "$WORK/npm"
mkdir -p "$DIST/npm"
for d in "$WORK/npm"/*/; do
    (cd "$d" && npm pack --silent --pack-destination "$DIST/npm" >/dev/null) || die "npm pack failed in $d"
done

# The container image, daemonless, from the static Linux binaries.
if [ -n "${WANT[linux-x64]:-}${WANT[linux-arm64]:-}" ]; then
    python3 scripts/packaging.py oci --dist "$DIST" --out "$DIST/oci" --revision "$REVISION"
fi

# The MCP Registry entry (with the bundle's hash when there is a bundle).
if [ -f "$DIST/openclaw-mcp-$VERSION.mcpb" ]; then
    python3 scripts/packaging.py server-json --dist "$DIST"
fi
(cd "$DIST" && find . -maxdepth 2 -type f \( -name '*.tar.gz' -o -name '*.zip' -o -name '*.mcpb' -o -name '*.tgz' \) |
    sed 's|^\./||' | sort | xargs -r sha256sum >SHA256SUMS)
python3 scripts/packaging.py check-versions --dist "$DIST" >&2
rm -rf "$WORK"
TOOK[packages]=$(( $(now) - t0 ))

# --- summary -------------------------------------------------------------------------------------
log "artifacts in $DIST:"
(cd "$DIST" && find . -type f ! -path './oci/*' -printf '%s %P\n' | sort -k2 |
    awk '{ printf "package:   %8.1f MB  %s\n", $1 / 1e6, $2 }') >&2
[ -d "$DIST/oci" ] && log "  oci/ $(du -sb "$DIST/oci" | awk '{ printf "%.1f MB", $1 / 1e6 }') (OCI layout, tag $VERSION)"
for k in "${!TOOK[@]}"; do log "time: $k ${TOOK[$k]} s"; done
log "done in $(( $(now) - started )) s (profile $PROFILE, targets $TARGETS)"
