#!/usr/bin/env bash
# Makes sure the console's browser tests can run: Debian's chromium (pinned below; installed
# with apt when /usr/bin/chromium is missing, which needs root or passwordless sudo) and
# playwright-core from npm (pinned by tests/browser/package-lock.json, installed with
# `npm ci` into tests/browser/node_modules). playwright-core drives the system chromium: it
# never downloads a browser.
set -euo pipefail
trap 'echo "error: $0 failed at line $LINENO" >&2' ERR

# Pinned version (change here only): Debian 12's chromium with the security updates.
CHROMIUM_DEBIAN_VERSION="148.0.7778.167-1~deb12u1"

root="$(cd "$(dirname "$0")/.." && pwd)"
browser="$root/tests/browser"

if [ ! -x /usr/bin/chromium ]; then
    sudo=""
    if [ "$(id -u)" != 0 ]; then
        if ! command -v sudo >/dev/null; then
            echo "error: chromium is missing and installing it needs root;" \
                "run: apt-get install chromium=$CHROMIUM_DEBIAN_VERSION" >&2
            exit 1
        fi
        sudo="sudo"
    fi
    echo "==> installing chromium $CHROMIUM_DEBIAN_VERSION (Debian package)" >&2
    if ! apt-cache show "chromium=$CHROMIUM_DEBIAN_VERSION" >/dev/null 2>&1; then
        $sudo apt-get update -qq
    fi
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
        "chromium=$CHROMIUM_DEBIAN_VERSION" "chromium-common=$CHROMIUM_DEBIAN_VERSION" >/dev/null
fi
/usr/bin/chromium --version >&2

stamp="$browser/node_modules/.kvhost-installed"
if [ -f "$stamp" ] && [ "$stamp" -nt "$browser/package-lock.json" ] && [ "$stamp" -nt "$browser/package.json" ]; then
    exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
    echo "error: npm not found; install Node.js (20 or later, with npm) for the browser tests" >&2
    exit 1
fi
echo "==> installing playwright-core into tests/browser/node_modules (npm ci, pinned by package-lock.json)" >&2
(cd "$browser" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
touch "$stamp"
