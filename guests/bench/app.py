"""The benchmark loop: sequential set, get, exists and a full listing of N keys with V-byte
values, through wasi:keyvalue@0.2.0-draft (the version `wasmtime run -S keyvalue` serves).

Usage: bench.wasm BUCKET [N [VALUE_BYTES]]   (wasmtime's in-memory store is bucket "")
Prints one JSON line: seconds per phase, measured inside the guest.
"""

import json
import sys
import time

from wit_world import exports
from wit_world.imports import store


def timed(function):
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


class Run(exports.Run):
    def run(self) -> None:
        args = sys.argv[1:]
        bucket_name = args[0] if args else ""
        count = int(args[1]) if len(args) > 1 else 20000
        value = b"v" * (int(args[2]) if len(args) > 2 else 100)
        keys = [f"bench-{n:08}" for n in range(count)]
        bucket = store.open(bucket_name)

        def set_all():
            for key in keys:
                bucket.set(key, value)

        def get_all():
            for key in keys:
                assert bucket.get(key) == value

        def exists_all():
            for key in keys:
                assert bucket.exists(key)

        def list_all():
            listed, cursor = 0, None
            while True:
                response = bucket.list_keys(cursor)
                listed += len(response.keys)
                cursor = response.cursor
                if cursor is None:
                    break
            assert listed >= count, f"listed {listed} of {count} keys"

        result = {"keys": count, "value_bytes": len(value)}
        for name, phase in (("set", set_all), ("get", get_all), ("exists", exists_all), ("list", list_all)):
            result[name] = timed(phase)
        print(json.dumps(result), flush=True)
