#!/usr/bin/env bash
# Creates the Python environments the guests are built with, with pinned tools:
#   ./.venv       componentize-py (kvhost's own guests, guests/wit worlds)
#   ./.venv-spin  componentize-py + spin-sdk 3.x as a WASIp2 Spin app needs them (spin-http)
#   ./.venv-spin5 componentize-py + spin-sdk 5.x: WASIp3 Spin apps (spin:up/http-trigger@4.1.0)
#   ./.venv-spin4 componentize-py + spin-sdk 4.x: WASIp3 release-candidate Spin apps
#                 (spin:up/http-trigger@4.0.0)
# Idempotent: does nothing when the pinned versions are already installed.
set -euo pipefail
trap 'echo "error: $0 failed at line $LINENO" >&2' ERR

# Pinned versions (change here only).
COMPONENTIZE_PY_VERSION=0.25.1
# spin-sdk 3.x is the last Spin Python SDK whose apps export wasi:http@0.2 (4.0 and later
# target WASIp3); it is built with the componentize-py it was released with.
SPIN_SDK_VERSION=3.4.1
SPIN_COMPONENTIZE_PY_VERSION=0.17.2
# The WASIp3 generation, each with the componentize-py its README names.
SPIN5_SDK_VERSION=5.0.0
SPIN5_COMPONENTIZE_PY_VERSION=0.25.1
SPIN4_SDK_VERSION=4.0.0
SPIN4_COMPONENTIZE_PY_VERSION=0.23.0

root="$(cd "$(dirname "$0")/.." && pwd)"

# ensure VENV PACKAGE==VERSION...: installs the packages unless the venv has those versions.
ensure() {
    local venv="$root/$1"
    shift
    if [ ! -x "$venv/bin/python" ]; then
        python3 -m venv "$venv"
    fi
    local wanted installed
    for wanted in "$@"; do
        installed="$("$venv/bin/python" -m pip show "${wanted%%==*}" 2>/dev/null |
            sed -n 's/^Version: //p' || true)"
        if [ "$installed" != "${wanted##*==}" ]; then
            echo "==> installing $* into $(basename "$venv")" >&2
            "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$@"
            return
        fi
    done
}

ensure .venv "componentize-py==$COMPONENTIZE_PY_VERSION"
ensure .venv-spin "componentize-py==$SPIN_COMPONENTIZE_PY_VERSION" "spin-sdk==$SPIN_SDK_VERSION"
ensure .venv-spin5 "componentize-py==$SPIN5_COMPONENTIZE_PY_VERSION" "spin-sdk==$SPIN5_SDK_VERSION"
ensure .venv-spin4 "componentize-py==$SPIN4_COMPONENTIZE_PY_VERSION" "spin-sdk==$SPIN4_SDK_VERSION"
