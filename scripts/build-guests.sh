#!/usr/bin/env bash
# Builds the guests under guests/ into WebAssembly components: the Python ones with the
# pinned componentize-py (installed by setup-python.sh), the JavaScript one with the pinned
# componentize-js (installed by setup-node.sh):
#   target/guests/draft2.wasm  wasi:keyvalue@0.2.0-draft2 conformance guest
#   target/guests/draft.wasm   wasi:keyvalue@0.2.0-draft conformance guest
#   target/guests/bench.wasm   the benchmark loop (0.2.0-draft, runs under wasmtime too)
#   target/guests/demo.wasm    the README's demo: a guest book (0.2.0-draft2)
#   target/guests/runp3.wasm   a WASIp3 command (wasi:cli/run@0.3.0) using 0.2.0-draft2
#   target/guests/hellop3.wasm the minimal WASIp3 HTTP handler (its own WIT, guests/hellop3/wit)
#   target/guests/spin.wasm    a Spin HTTP app (spin-sdk 3.x, world spin-http, WASIp2)
#   target/guests/spin5.wasm   guests/spinp3 built with spin-sdk 5.x (WASIp3, wasi:http@0.3.0)
#   target/guests/spin4.wasm   guests/spinp3 built with spin-sdk 4.x (WASIp3 release candidate)
#   target/guests/draft2js.wasm guests/js/draft2.js: the draft2 conformance checks in JavaScript,
#                              built with the pinned componentize-js (setup-node.sh)
#   target/guests/watcher.wasm a wasi:keyvalue watch-service that mirrors changes into "mirror"
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

build() { # name world [wit-dir]
    local name="$1" world="$2" wit="${3:-$root/guests/wit}" wasm="$out/$1.wasm"
    if up_to_date "$wasm" "$root/guests/$name" "$root/guests/common" "$wit" "$root/wit"; then
        return
    fi
    echo "==> building guest $name ($world)" >&2
    (cd "$root/guests/$name" &&
        "$root/.venv/bin/componentize-py" --quiet -d "$wit" -w "$world" \
            componentize -p . -p ../common app -o "$wasm.tmp")
    mv "$wasm.tmp" "$wasm"
}

# A Spin app is built as the SDK's README says: in the venv that has spin-sdk (componentize-py
# finds the SDK's WIT through it), with the SDK's world, no -d.
build_spin() { # name source-dir venv world
    local name="$1" source="$root/guests/$2" venv="$root/$3" world="$4" wasm="$out/$1.wasm"
    if up_to_date "$wasm" "$source"; then
        return
    fi
    echo "==> building Spin app $name ($world)" >&2
    (cd "$source" &&
        VIRTUAL_ENV="$venv" PATH="$venv/bin:$PATH" \
            componentize-py -w "$world" componentize app -o "$wasm.tmp" >/dev/null)
    mv "$wasm.tmp" "$wasm"
}

# A JavaScript guest, built with componentize-js's defaults (its `fetch` imports wasi:http,
# which `kvhost run` links with outgoing requests refused).
build_js() { # name source world
    local name="$1" source="$root/guests/js/$2" world="$3" wasm="$out/$1.wasm"
    if up_to_date "$wasm" "$source" "$root/guests/wit" "$root/guests/js/package-lock.json"; then
        return
    fi
    "$root/scripts/setup-node.sh"
    echo "==> building JS guest $name ($world)" >&2
    "$root/guests/js/node_modules/.bin/componentize-js" --wit "$root/guests/wit" -n "$world" \
        -o "$wasm.tmp" "$source" >/dev/null
    mv "$wasm.tmp" "$wasm"
}

declare -A worlds=([draft2]=kv-draft2 [draft]=kv-draft [bench]=kv-draft [demo]=kv-draft2 [runp3]=kv-run-p3 [watcher]=kv-watcher
    [spin]=spin [spin5]=spin [spin4]=spin [hellop3]=hello-p3)
for name in "${@:-draft2 draft bench demo runp3 hellop3 spin spin5 spin4 draft2js watcher}"; do
    for one in $name; do
        case "$one" in
            spin) build_spin spin spin .venv-spin spin-http ;;
            spin5) build_spin spin5 spinp3 .venv-spin5 spin:up/http-trigger@4.1.0 ;;
            spin4) build_spin spin4 spinp3 .venv-spin4 spin:up/http-trigger@4.0.0 ;;
            hellop3) build hellop3 hello-p3 "$root/guests/hellop3/wit" ;;
            draft2js) build_js draft2js draft2.js kv-draft2 ;;
            *)
                [ -n "${worlds[$one]:-}" ] || { echo "unknown guest $one (known: ${!worlds[*]})" >&2; exit 2; }
                build "$one" "${worlds[$one]}"
                ;;
        esac
    done
done
