#!/usr/bin/env bash
# Builds the Python guests under guests/ into WebAssembly components with the pinned
# componentize-py (installed by setup-python.sh):
#   target/guests/draft2.wasm  wasi:keyvalue@0.2.0-draft2 conformance guest
#   target/guests/draft.wasm   wasi:keyvalue@0.2.0-draft conformance guest
#   target/guests/bench.wasm   the benchmark loop (0.2.0-draft, runs under wasmtime too)
#   target/guests/demo.wasm    the README's demo: a guest book (0.2.0-draft2)
# With guest names as arguments, builds only those.
# A guest is rebuilt only when a file it is built from is newer than its .wasm. Safe to run
# concurrently (tests call it from several processes): builds are serialized by a lock.
set -euo pipefail
trap 'echo "error: $0 failed at line $LINENO" >&2' ERR

root="$(cd "$(dirname "$0")/.." && pwd)"
out="${KVHOST_GUESTS_DIR:-$root/target/guests}"
mkdir -p "$out"

exec 9>"$out/.lock"
flock 9

"$root/scripts/setup-python.sh"
componentize="$root/.venv/bin/componentize-py"

build() { # name world
    local name="$1" world="$2" wasm="$out/$1.wasm"
    local sources=("$root/guests/$name" "$root/guests/common" "$root/guests/wit" "$root/wit")
    if [ -f "$wasm" ] && [ -z "$(find -L "${sources[@]}" -newer "$wasm" -type f | head -1)" ]; then
        return
    fi
    echo "==> building guest $name ($world)" >&2
    (cd "$root/guests/$name" &&
        "$componentize" --quiet -d "$root/guests/wit" -w "$world" componentize \
            -p . -p ../common app -o "$wasm.tmp")
    mv "$wasm.tmp" "$wasm"
}

declare -A worlds=([draft2]=kv-draft2 [draft]=kv-draft [bench]=kv-draft [demo]=kv-draft2)
for name in "${@:-draft2 draft bench demo}"; do
    for one in $name; do
        [ -n "${worlds[$one]:-}" ] || { echo "unknown guest $one (known: ${!worlds[*]})" >&2; exit 2; }
        build "$one" "${worlds[$one]}"
    done
done
