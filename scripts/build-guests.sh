#!/usr/bin/env bash
# Builds the Python guests under guests/ into WebAssembly components with the pinned
# componentize-py (installed by setup-python.sh):
#   target/guests/draft2.wasm  wasi:keyvalue@0.2.0-draft2 conformance guest
#   target/guests/draft.wasm   wasi:keyvalue@0.2.0-draft conformance guest
#   target/guests/bench.wasm   the benchmark loop (0.2.0-draft, runs under wasmtime too)
#   target/guests/demo.wasm    the README's demo: a guest book (0.2.0-draft2)
#   target/guests/spin.wasm    a Spin HTTP app (spin-sdk, world spin-http), for kvhost serve
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

up_to_date() { # wasm sources...
    local wasm="$1"
    shift
    [ -f "$wasm" ] && [ -z "$(find -L "$@" "$root/scripts/setup-python.sh" -newer "$wasm" -type f | head -1)" ]
}

build() { # name world
    local name="$1" world="$2" wasm="$out/$1.wasm"
    if up_to_date "$wasm" "$root/guests/$name" "$root/guests/common" "$root/guests/wit" "$root/wit"; then
        return
    fi
    echo "==> building guest $name ($world)" >&2
    (cd "$root/guests/$name" &&
        "$root/.venv/bin/componentize-py" --quiet -d "$root/guests/wit" -w "$world" \
            componentize -p . -p ../common app -o "$wasm.tmp")
    mv "$wasm.tmp" "$wasm"
}

# A Spin app is built as Spin's docs say: in the venv that has spin-sdk (componentize-py
# finds the SDK's WIT through it), world spin-http, no -d.
build_spin() { # name
    local name="$1" wasm="$out/$1.wasm"
    if up_to_date "$wasm" "$root/guests/$name"; then
        return
    fi
    echo "==> building Spin app $name (spin-http)" >&2
    (cd "$root/guests/$name" &&
        VIRTUAL_ENV="$root/.venv-spin" PATH="$root/.venv-spin/bin:$PATH" \
            componentize-py -w spin-http componentize app -o "$wasm.tmp" >/dev/null)
    mv "$wasm.tmp" "$wasm"
}

declare -A worlds=([draft2]=kv-draft2 [draft]=kv-draft [bench]=kv-draft [demo]=kv-draft2 [spin]=spin-http)
for name in "${@:-draft2 draft bench demo spin}"; do
    for one in $name; do
        case "${worlds[$one]:-}" in
            "") echo "unknown guest $one (known: ${!worlds[*]})" >&2; exit 2 ;;
            spin-http) build_spin "$one" ;;
            *) build "$one" "${worlds[$one]}" ;;
        esac
    done
done
