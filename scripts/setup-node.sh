#!/usr/bin/env bash
# Installs the toolchain the JavaScript guests are built with into guests/js/node_modules:
# @bytecodealliance/componentize-js, pinned (with every dependency) by
# guests/js/package-lock.json, through `npm ci`. Needs Node.js with npm.
# Idempotent: does nothing when node_modules was installed from the current lock file.
set -euo pipefail
trap 'echo "error: $0 failed at line $LINENO" >&2' ERR
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

root="$(cd "$(dirname "$0")/.." && pwd)"
npm_ci_stamped "$root/guests/js" "componentize-js (the JS guests)"
