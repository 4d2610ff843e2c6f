#!/usr/bin/env bash
# The kvhost demo: builds the `kvhost` binary and drives the durable embedded default store
# (bucket "default" in ./.kvhost of a scratch directory) through `kvhost kv`, showing that
# data survives from one process to the next.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --locked -p kvhost-cli
kvhost="$PWD/target/release/kvhost"
work="$PWD/target/demo"
rm -rf "$work" && mkdir -p "$work" && cd "$work"

# Prints a command as a user would type it, then runs it.
show() {
  printf '\n$'
  for word in "$@"; do printf ' %q' "${word/#$kvhost/kvhost}"; done
  printf '\n'
  "$@"
}

show "$kvhost" kv set default greeting "hello from kvhost"
show "$kvhost" kv get default greeting; echo
printf '{"key":"user/1","value":"%s"}\n{"key":"user/2","value":"%s"}\n' \
  "$(printf 'Ada' | base64)" "$(printf 'Grace' | base64)" > users.jsonl
show "$kvhost" kv import default users.jsonl
show "$kvhost" kv list default
show "$kvhost" kv export default
show "$kvhost" kv delete default user/1
show "$kvhost" kv get default user/1 || echo "(exit $?: user/1 is gone)"
show ls -l .kvhost
printf '\nEach line above was a separate kvhost process; the data lives in %s/.kvhost.\n' "$work"
