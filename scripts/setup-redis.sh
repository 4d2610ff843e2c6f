#!/usr/bin/env bash
# Makes sure redis-server, redis-cli and redis-benchmark are on PATH, installing Debian's
# packages (pinned below) when they are missing. The Redis tests start their own servers on
# loopback ephemeral ports in temporary directories; this script never starts one, and it
# keeps the package's own service from starting (a policy-rc.d refuses it during the install).
# Needs root (or passwordless sudo) only when something must be installed.
set -euo pipefail
trap 'echo "error: $0 failed at line $LINENO" >&2' ERR
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

# Pinned version (change here only): Debian 12's redis 7.0.15 with the security updates.
REDIS_DEBIAN_VERSION="5:7.0.15-1~deb12u7"

if command -v redis-server >/dev/null && command -v redis-cli >/dev/null &&
    command -v redis-benchmark >/dev/null; then
    exit 0
fi
apt_install_pinned "redis-server" \
    "redis-server=$REDIS_DEBIAN_VERSION" "redis-tools=$REDIS_DEBIAN_VERSION"
redis-server --version >&2
