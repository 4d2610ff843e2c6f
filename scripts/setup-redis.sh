#!/usr/bin/env bash
# Makes sure redis-server, redis-cli and redis-benchmark are on PATH, installing Debian's
# packages (pinned below) when they are missing. The Redis tests start their own servers on
# loopback ephemeral ports in temporary directories; this script never starts one, and it
# keeps the package's own service from starting (a policy-rc.d refuses it during the install).
# Needs root (or passwordless sudo) only when something must be installed.
set -euo pipefail
trap 'echo "error: $0 failed at line $LINENO" >&2' ERR

# Pinned version (change here only): Debian 12's redis 7.0.15 with the security updates.
REDIS_DEBIAN_VERSION="5:7.0.15-1~deb12u7"

if command -v redis-server >/dev/null && command -v redis-cli >/dev/null &&
    command -v redis-benchmark >/dev/null; then
    exit 0
fi

sudo=""
if [ "$(id -u)" != 0 ]; then
    if ! command -v sudo >/dev/null; then
        echo "error: redis-server is missing and installing it needs root;" \
            "run: apt-get install redis-server=$REDIS_DEBIAN_VERSION redis-tools=$REDIS_DEBIAN_VERSION" >&2
        exit 1
    fi
    sudo="sudo"
fi

echo "==> installing redis-server and redis-tools $REDIS_DEBIAN_VERSION (Debian packages)" >&2
packages=("redis-server=$REDIS_DEBIAN_VERSION" "redis-tools=$REDIS_DEBIAN_VERSION")
if ! apt-cache show "${packages[@]}" >/dev/null 2>&1; then
    $sudo apt-get update -qq
fi
# Refuse service starts while installing: the tests run their own servers.
policy=/usr/sbin/policy-rc.d
made_policy=""
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
    $sudo chmod +x "$policy"
    made_policy=1
fi
status=0
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    "${packages[@]}" >/dev/null || status=$?
if [ -n "$made_policy" ]; then
    $sudo rm -f "$policy"
fi
if [ "$status" != 0 ]; then
    echo "error: apt-get install ${packages[*]} failed (exit $status)" >&2
    exit "$status"
fi
redis-server --version >&2
