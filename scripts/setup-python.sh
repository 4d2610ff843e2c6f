#!/usr/bin/env bash
# Creates ./.venv with the pinned Python tools the guests are built with.
# Idempotent: does nothing when the pinned versions are already installed.
set -euo pipefail
trap 'echo "error: $0 failed at line $LINENO" >&2' ERR

# Pinned versions (change here only).
COMPONENTIZE_PY_VERSION=0.25.1

root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/.venv"

if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
installed="$("$venv/bin/python" -m pip show componentize-py 2>/dev/null | sed -n 's/^Version: //p' || true)"
if [ "$installed" != "$COMPONENTIZE_PY_VERSION" ]; then
    echo "==> installing componentize-py $COMPONENTIZE_PY_VERSION into .venv" >&2
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        "componentize-py==$COMPONENTIZE_PY_VERSION"
fi
