"""A wasi:keyvalue watch-service: mirrors every change of the buckets it watches into the
bucket "mirror" (run by crates/kvhost-cli/tests/watch.rs).

- on-set writes the value to "mirror" under the same key; on-delete deletes it there;
- a key starting with "copy/" is also copied, through the bucket the host hands over, to
  "copied/<rest>" in the watched bucket itself: read back with get and written with set
  (the handler's bucket is a real one);
- a key starting with "trap/" makes the handler fail (a trap), so the host retries and then
  parks the event;
- for a key starting with "hoard/" the handler keeps the bucket it was handed (a leak the
  host must survive: it replaces an instance before it holds too many handles).
"""

from wit_world import exports
from wit_world.imports import store

_mirror = None
_hoard = []


def mirror():
    global _mirror
    if _mirror is None:
        _mirror = store.open("mirror")
    return _mirror


class Watcher(exports.Watcher):
    def on_set(self, bucket, key, value):
        if key.startswith("trap/"):
            raise RuntimeError(f"refusing {key}")
        if key.startswith("hoard/"):
            _hoard.append(bucket)
        if key.startswith("copy/"):
            bucket.set("copied/" + key[len("copy/"):], bucket.get(key))
        mirror().set(key, value)

    def on_delete(self, bucket, key):
        mirror().delete(key)
