#!/usr/bin/env bash
# Installs the toolchain the JavaScript guests are built with into guests/js/node_modules:
# @bytecodealliance/componentize-js, pinned (with every dependency) by
# guests/js/package-lock.json, through `npm ci`. Needs Node.js with npm.
# Idempotent: does nothing when node_modules was installed from the current lock file.
set -euo pipefail
trap 'echo "error: $0 failed at line $LINENO" >&2' ERR

root="$(cd "$(dirname "$0")/.." && pwd)"
js="$root/guests/js"
stamp="$js/node_modules/.kvhost-installed"

if [ -f "$stamp" ] && [ "$stamp" -nt "$js/package-lock.json" ] && [ "$stamp" -nt "$js/package.json" ]; then
    exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
    echo "error: npm not found; install Node.js (20 or later, with npm) to build the JS guests" >&2
    exit 1
fi
echo "==> installing componentize-js into guests/js/node_modules (npm ci, pinned by package-lock.json)" >&2
(cd "$js" && npm ci --no-audit --no-fund --loglevel=error)
touch "$stamp"
