"""A WASIp3 command (`wasi:cli/run@0.3.0`, async) for `kvhost run`: stores a greeting, counts
its runs with an atomic increment, and prints both."""

from wit_world import exports
from wit_world.imports import atomics, store


class Run(exports.Run):
    async def run(self) -> None:
        bucket = store.open("default")
        bucket.set("greeting", b"hello from WASIp3")
        runs = atomics.increment(bucket, "runs", 1)
        print(f"{bucket.get('greeting').decode()} (run {runs})")
