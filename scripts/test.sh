#!/usr/bin/env bash
# Runs every check and test of kvhost: formatting, clippy, the whole test suite (unit,
# conformance on every backend incl. Redis and Redis Cluster, property, crash,
# fault-injection, replica lag, CLI end-to-end, Python and JavaScript guests, the admin API
# and the web console in headless Chromium) and the doctests. Needs the Rust toolchain (with
# rustfmt and clippy), Python 3 and Node.js with npm; installs the pinned componentize-py into
# ./.venv, componentize-js into guests/js, playwright-core into tests/browser and, when
# missing, Debian's redis-server and chromium (pinned; needs apt and root or sudo) itself.
# Uses cargo-nextest when present.
# One cargo build (target/) is shared by every step.
set -euo pipefail
cd "$(dirname "$0")/.."

started=$SECONDS
step() { printf '\n==> [%dm%02ds] %s\n' $(((SECONDS - started) / 60)) $(((SECONDS - started) % 60)) "$*"; }

step "cargo fmt --check"
cargo fmt --all --check

# Installing Redis and building the guests (mostly downloads and one core) runs while
# clippy compiles; its output is shown when it is done.
step "in the background: redis-server and chromium (Debian packages, pinned), playwright-core, the Python and JS guests"
setup_log="$(mktemp)"
(./scripts/setup-redis.sh && ./scripts/setup-browser.sh && ./scripts/build-guests.sh) >"$setup_log" 2>&1 &
setup_pid=$!

step "cargo clippy --all-targets -D warnings"
if ! cargo clippy --workspace --all-targets --locked -- -D warnings; then
  wait "$setup_pid" || true
  exit 1
fi

step "redis-server, chromium, playwright-core and the guests (pinned componentize-py and componentize-js, into target/guests)"
if ! wait "$setup_pid"; then
  cat "$setup_log" >&2
  echo "error: installing redis-server, chromium or playwright-core, or building the guests, failed (above)" >&2
  exit 1
fi
cat "$setup_log"
rm -f "$setup_log"

# The tests run with a temp dir of their own, which must be empty afterwards: servers, stores
# and certificates the tests make are theirs to remove.
tests_tmp="$(mktemp -d)"
if cargo nextest --version >/dev/null 2>&1; then
  step "cargo nextest run (every test)"
  TMPDIR="$tests_tmp" cargo nextest run --workspace --locked --no-fail-fast
  step "cargo test --doc"
  cargo test --workspace --locked --doc
else
  step "cargo test (every test; cargo-nextest not found)"
  TMPDIR="$tests_tmp" cargo test --workspace --locked --no-fail-fast
fi

step "no temp files left behind by the tests"
leftover="$(find "$tests_tmp" -mindepth 1 -maxdepth 1 | head -20)"
if [ -n "$leftover" ]; then
  printf 'error: the tests left these in their temp dir:\n%s\n' "$leftover" >&2
  exit 1
fi
rmdir "$tests_tmp"
step "done"
