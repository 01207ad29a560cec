# Shared by scripts/e2e-python.sh, scripts/e2e-openclaw.sh and scripts/soak.sh; source it after
# defining log and die.
#
# ensure_mcp_venv: makes (or reuses) $VENV, a virtualenv of $PYTHON with the official MCP Python
# SDK 'mcp>=2,<3' and its httpx2, importable (not just listed).
# profile_dir CARGO_ARGS...: the target subdirectory the cargo profile arguments build into
# (--release -> release, --profile NAME -> NAME, dev -> debug).

has_mcp() {
    [ -x "$VENV/bin/python" ] && "$VENV/bin/python" - <<'PYEOF' 2>/dev/null
import importlib.metadata as md, sys
major = int(md.version("mcp").split(".")[0])
import mcp, mcp.client.stdio, mcp.client.auth, httpx2  # noqa: E401,F401  - importable, not just listed
from mcp import Client, StdioServerParameters  # noqa: F401
sys.exit(0 if major == 2 else 1)
PYEOF
}

mcp_version() { "$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("mcp"))'; }

ensure_mcp_venv() {
    if has_mcp; then
        log "reusing $VENV (mcp $(mcp_version))"
        return 0
    fi
    command -v "$PYTHON" >/dev/null || die "$PYTHON not found"
    "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' ||
        die "$PYTHON is $("$PYTHON" --version 2>&1); the MCP SDK needs Python >= 3.10"
    local started
    started=$(date +%s)
    log "creating $VENV with $("$PYTHON" --version 2>&1) and installing 'mcp>=2,<3'"
    "$PYTHON" -m venv --clear "$VENV"
    timeout 600 "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check 'mcp>=2,<3'
    has_mcp || die "mcp 2.x is not importable from $VENV after pip install"
    log "pip install took $(( $(date +%s) - started )) s (mcp $(mcp_version))"
}

profile_dir() {
    local dir=debug
    while [ $# -gt 0 ]; do
        case "$1" in
            --release | -r) dir=release ;;
            --profile) dir=${2:-debug}; shift ;;
            --profile=*) dir=${1#--profile=} ;;
        esac
        shift
    done
    [ "$dir" = dev ] && dir=debug
    echo "$dir"
}
