"""The demo guest: a tiny guest book on wasi:keyvalue@0.2.0-draft2.

    kvhost run demo.wasm "NAME"     signs the book as NAME and prints every entry

Each run counts itself with `increment`, stores the entry under "entry/<n>", and lists the
book with paged `list-keys` and one `get-many`.
"""

import sys

from wit_world import exports
from wit_world.imports import atomics, batch, store


class Run(exports.Run):
    def run(self) -> None:
        name = " ".join(sys.argv[1:]) or "anonymous"
        book = store.open("default")
        visit = atomics.increment(book, "visits", 1)
        book.set(f"entry/{visit:04}", f"{name} was here".encode())
        keys, cursor = [], None
        while True:
            page = book.list_keys(cursor)
            keys.extend(key for key in page.keys if key.startswith("entry/"))
            cursor = page.cursor
            if cursor is None:
                break
        print(f"visit #{visit}; the guest book has {len(keys)} entries:")
        for key, value in batch.get_many(book, sorted(keys)):
            print(f"  {key}: {value.decode()}")
