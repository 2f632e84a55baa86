#!/usr/bin/env bash
# Makes the web console's build and its end-to-end test runnable, doing only what is missing:
#   - console/dist: `npm ci && npm run build` in console/ when dist is missing or was built from
#     other sources (stamp console/dist/.source-sha256: hash of package files, config and src/);
#   - tests/console/node_modules: `npm ci` (playwright-core, pinned by the lock) when missing or
#     installed from another lock (stamp node_modules/.chuan-lock-sha256).
# Debian's Chromium itself comes from scripts/setup-venv.sh (apt-get). Needs node >= 20.19.
#
#   tests/console/prepare.sh            # both
#   tests/console/prepare.sh --check    # exit 0 when nothing is to do, 1 otherwise
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CONSOLE="$ROOT/console"
E2E="$ROOT/tests/console"
CHECK=0
[ "${1:-}" = "--check" ] && CHECK=1

log() { printf 'console-prepare: %s\n' "$*" >&2; }

console_sources_hash() {
    (
        cd "$CONSOLE"
        {
            printf '%s\n' package.json package-lock.json index.html vite.config.ts tsconfig.json
            find src -type f
        } | LC_ALL=C sort | xargs sha256sum
    ) | sha256sum | cut -d' ' -f1
}

lock_hash() { sha256sum "$1/package-lock.json" | cut -d' ' -f1; }

need_node() {
    command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || {
        log "node and npm are needed (node >= 20.19 for Vite 7)"
        exit 1
    }
    node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)' || {
        log "node $(node --version) is too old: Vite 7 needs >= 20.19"
        exit 1
    }
}

todo=0

want_dist="$(console_sources_hash)"
if [ -f "$CONSOLE/dist/index.html" ] && [ -f "$CONSOLE/dist/.source-sha256" ] \
    && [ "$(cat "$CONSOLE/dist/.source-sha256")" = "$want_dist" ]; then
    :
elif [ "$CHECK" = 1 ]; then
    log "console/dist is missing or stale"
    todo=1
else
    need_node
    want_mods="$(lock_hash "$CONSOLE")"
    if [ ! -f "$CONSOLE/node_modules/.chuan-lock-sha256" ] \
        || [ "$(cat "$CONSOLE/node_modules/.chuan-lock-sha256")" != "$want_mods" ]; then
        log "npm ci in console/"
        (cd "$CONSOLE" && npm ci --no-audit --no-fund --loglevel=error)
        printf '%s\n' "$want_mods" >"$CONSOLE/node_modules/.chuan-lock-sha256"
    fi
    log "npm run build in console/"
    (cd "$CONSOLE" && npm run --silent build)
    printf '%s\n' "$want_dist" >"$CONSOLE/dist/.source-sha256"
fi

want_e2e="$(lock_hash "$E2E")"
if [ -f "$E2E/node_modules/.chuan-lock-sha256" ] && [ "$(cat "$E2E/node_modules/.chuan-lock-sha256")" = "$want_e2e" ] \
    && [ -d "$E2E/node_modules/playwright-core" ]; then
    :
elif [ "$CHECK" = 1 ]; then
    log "tests/console/node_modules is missing or stale"
    todo=1
else
    need_node
    log "npm ci in tests/console/"
    (cd "$E2E" && npm ci --no-audit --no-fund --loglevel=error)
    printf '%s\n' "$want_e2e" >"$E2E/node_modules/.chuan-lock-sha256"
fi

exit "$todo"
