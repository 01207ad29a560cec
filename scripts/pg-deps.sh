#!/usr/bin/env bash
# Makes sure PostgreSQL's server binaries (initdb, pg_ctl, postgres) are on this machine, for the
# task store's tests on PostgreSQL (tests/pg_store.rs starts its own server in a temporary
# directory, on 127.0.0.1, as `nobody` when run as root) and scripts/e2e-cluster.sh:
#
#   bash scripts/pg-deps.sh
#
# Installs Debian's `postgresql` package when they are missing (as root, with apt-get); says
# where they are. Without them `cargo test` skips the PostgreSQL half with a message, except
# under CI=true, where that is a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh pg-deps

found() { find /usr/lib/postgresql -path "*/bin/initdb" 2>/dev/null | sort -V | tail -1; }
if [ -z "$(found)" ] && ! command -v initdb >/dev/null; then
    apt_install 600 postgresql || die "PostgreSQL's server binaries are missing and cannot be installed here (as root: apt-get install postgresql)"
fi
bin=$(found)
[ -n "$bin" ] || bin=$(command -v initdb)
log "PostgreSQL server binaries: $(dirname "$bin") ($("$(dirname "$bin")/postgres" --version 2>/dev/null || echo '?'))"
