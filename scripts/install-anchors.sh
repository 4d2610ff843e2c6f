#!/usr/bin/env bash
# Installs the benchmark anchors that are not on a fresh machine, pinned, into target/anchors:
#   wasmtime-cli 48.0.8 (for `cargo bench -p kvhost-cli --bench guest`)
# Takes ~10 minutes on 2 cores the first time; does nothing when already installed.
set -euo pipefail

WASMTIME_CLI_VERSION=48.0.8

root="$(cd "$(dirname "$0")/.." && pwd)"
anchors="$root/target/anchors"
if "$anchors/bin/wasmtime" --version 2>/dev/null | grep -q "^wasmtime $WASMTIME_CLI_VERSION"; then
    exit 0
fi
echo "==> installing wasmtime-cli $WASMTIME_CLI_VERSION into target/anchors" >&2
cargo install --locked --quiet --root "$anchors" "wasmtime-cli@$WASMTIME_CLI_VERSION"
