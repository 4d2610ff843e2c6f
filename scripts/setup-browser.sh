#!/usr/bin/env bash
# Makes sure the console's browser tests can run: Debian's chromium (pinned below; installed
# with apt when /usr/bin/chromium is missing, which needs root or passwordless sudo) and
# playwright-core from npm (pinned by tests/browser/package-lock.json, installed with
# `npm ci` into tests/browser/node_modules). playwright-core drives the system chromium: it
# never downloads a browser.
set -euo pipefail
trap 'echo "error: $0 failed at line $LINENO" >&2' ERR
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

# Pinned version (change here only): Debian 12's chromium with the security updates.
CHROMIUM_DEBIAN_VERSION="148.0.7778.167-1~deb12u1"

root="$(cd "$(dirname "$0")/.." && pwd)"

if [ ! -x /usr/bin/chromium ]; then
    apt_install_pinned "chromium" \
        "chromium=$CHROMIUM_DEBIAN_VERSION" "chromium-common=$CHROMIUM_DEBIAN_VERSION"
fi
/usr/bin/chromium --version >&2
PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm_ci_stamped "$root/tests/browser" "playwright-core (the browser tests)"
