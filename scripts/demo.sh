#!/usr/bin/env bash
# The kvhost demo: builds the `kvhost` binary and a real WebAssembly component (a Python
# guest book, guests/demo/app.py, built with the pinned componentize-py), runs the component
# against the durable embedded default store (bucket "default" in ./.kvhost of a scratch
# directory), then shows with `kvhost kv` what it stored. Data survives from one process to
# the next. Needs the Rust toolchain and Python 3; installs componentize-py into ./.venv.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --locked -p kvhost-cli
./scripts/build-guests.sh demo
kvhost="$PWD/target/release/kvhost"
guest="$PWD/target/guests/demo.wasm"
work="$PWD/target/demo"
rm -rf "$work" && mkdir -p "$work" && cd "$work"
cp "$guest" guestbook.wasm

# Prints a command as a user would type it, then runs it.
show() {
  printf '\n$'
  for word in "$@"; do printf ' %q' "${word/#$kvhost/kvhost}"; done
  printf '\n'
  "$@"
}

# The first run compiles the component (a few seconds) and caches it; later runs start fast.
show "$kvhost" run guestbook.wasm Ada
show "$kvhost" run guestbook.wasm Grace
show "$kvhost" run guestbook.wasm Linus
show "$kvhost" kv list default
show "$kvhost" kv get default visits; echo
show "$kvhost" kv set default entry/0000 "the host was here first"
show "$kvhost" run guestbook.wasm Barbara
show "$kvhost" kv export default
show ls -l .kvhost
printf '\nEach line above was a separate process; the data lives in %s/.kvhost.\n' "$work"
