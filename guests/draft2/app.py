"""Exercises every function and error of wasi:keyvalue@0.2.0-draft2 as the spec describes.

Run by crates/kvhost-cli/tests/guests.rs with a config that has buckets "default" and "other"
(granted), "secret" (configured, not granted), and small limits: max_value_bytes = 1 MiB,
list_page_keys = 100, max_batch_keys = 1000, max_open_buckets = 64.
"""

import json
import os
import sys

from componentize_py_types import Err

from checks import check, clear, drop, expect_err, list_all, run_all
from wit_world import exports
from wit_world.imports import atomics, batch, store

Other = store.Error_Other


@check
def open_errors():
    expect_err(lambda: store.open("nope"), store.Error_NoSuchStore)
    expect_err(lambda: store.open("secret"), store.Error_AccessDenied)


@check
def get_set_delete_exists():
    bucket = store.open("default")
    assert bucket.get("missing") is None
    assert bucket.exists("missing") is False
    bucket.set("k", b"v1")
    assert bucket.get("k") == b"v1"
    bucket.set("k", b"v2")  # overwrite
    assert bucket.get("k") == b"v2"
    assert bucket.exists("k") is True
    bucket.delete("k")
    assert bucket.get("k") is None and bucket.exists("k") is False
    bucket.delete("k")  # deleting a missing key does nothing
    bucket.set("empty", b"")
    assert bucket.get("empty") == b"" and bucket.exists("empty")
    every_byte = bytes(range(256))
    bucket.set("binary", every_byte)
    assert bucket.get("binary") == every_byte
    bucket.set("unicode-ключ-🔑", b"x")
    assert bucket.get("unicode-ключ-🔑") == b"x"


@check
def read_your_writes():
    writer, reader = store.open("default"), store.open("default")
    for n in range(50):
        writer.set("ryw", str(n).encode())
        assert reader.get("ryw") == str(n).encode()
    drop(writer)
    assert reader.get("ryw") == b"49"


@check
def buckets_are_separate():
    store.open("default").set("only-in-default", b"1")
    assert store.open("other").get("only-in-default") is None


@check
def limits_are_errors():
    bucket = store.open("default")
    expect_err(lambda: bucket.get("k" * 2000), Other, "limits.max_key_bytes")
    expect_err(lambda: bucket.set("k" * 2000, b"v"), Other, "limits.max_key_bytes")
    expect_err(lambda: bucket.set("big", b"x" * (1024 * 1024 + 1)), Other, "limits.max_value_bytes")
    bucket.set("big", b"x" * (1024 * 1024))  # exactly at the limit is fine
    assert len(bucket.get("big")) == 1024 * 1024
    expect_err(lambda: bucket.list_keys("not-a-cursor!"), Other, "invalid cursor")
    expect_err(lambda: batch.set_many(bucket, [(str(n), b"") for n in range(1001)]), Other, "limits.max_batch_keys")


@check
def pagination_across_many_pages():
    bucket = store.open("other")
    clear(bucket, batch)
    expected = {f"page-key-{n:05}" for n in range(2500)}
    ordered = sorted(expected)
    for start in range(0, len(ordered), 500):
        batch.set_many(bucket, [(key, key.encode()) for key in ordered[start:start + 500]])
    keys, pages = list_all(bucket)
    assert len(keys) == len(set(keys)), "a key was listed twice"
    assert set(keys) == expected, f"{len(expected - set(keys))} keys missing"
    assert pages >= 25, f"only {pages} pages; list_page_keys is 100"
    response = bucket.list_keys(None)
    assert 0 < len(response.keys) <= 100 and response.cursor is not None


@check
def pagination_while_writing():
    bucket = store.open("other")
    clear(bucket, batch)
    stable = [f"stable-{n:04}" for n in range(600)]
    doomed = [f"doomed-{n:04}" for n in range(600)]
    batch.set_many(bucket, [(key, b"s") for key in stable])
    batch.set_many(bucket, [(key, b"d") for key in doomed])

    def write(page):
        # Between pages: add keys everywhere in the key order and delete some not yet listed.
        batch.set_many(bucket, [(f"added-{page:03}-{n}", b"a") for n in range(20)])
        batch.delete_many(bucket, doomed[page * 20:page * 20 + 20])

    keys, pages = list_all(bucket, after_page=write)
    assert pages > 10
    assert len(keys) == len(set(keys)), "a key was listed twice while writing"
    missing = set(stable) - set(keys)
    assert not missing, f"stable keys missing from the listing: {sorted(missing)[:5]}"


@check
def increment_counts_in_decimal():
    bucket = store.open("default")
    bucket.delete("counter")
    assert atomics.increment(bucket, "counter", 5) == 5
    assert atomics.increment(bucket, "counter", -7) == -2
    assert bucket.get("counter") == b"-2"
    bucket.set("counter", b"10")
    assert atomics.increment(bucket, "counter", 5) == 15
    assert bucket.get("counter") == b"15"
    bucket.set("counter", b"abc")
    expect_err(lambda: atomics.increment(bucket, "counter", 1), Other)
    bucket.set("counter", str(2**63 - 1).encode())
    expect_err(lambda: atomics.increment(bucket, "counter", 1), Other, "overflow")
    assert bucket.get("counter") == str(2**63 - 1).encode()


@check
def cas_conflict_and_retry():
    bucket = store.open("default")
    bucket.set("cas", b"1")
    cas = atomics.Cas.new(bucket, "cas")
    assert cas.current() == b"1"
    bucket.set("cas", b"2")  # a write between new and swap
    failed = expect_err(lambda: atomics.swap(cas, b"3"), atomics.CasError_CasFailed)
    fresh = failed.value
    assert fresh.current() == b"2", "the fresh handle holds the latest value"
    atomics.swap(fresh, b"3")
    assert bucket.get("cas") == b"3"


@check
def cas_detects_a_b_a_and_creates_absent_keys():
    bucket = store.open("default")
    bucket.set("aba", b"A")
    cas = atomics.Cas.new(bucket, "aba")
    bucket.set("aba", b"B")
    bucket.set("aba", b"A")
    expect_err(lambda: atomics.swap(cas, b"C"), atomics.CasError_CasFailed)
    bucket.delete("absent")
    cas = atomics.Cas.new(bucket, "absent")
    assert cas.current() is None
    atomics.swap(cas, b"created")
    assert bucket.get("absent") == b"created"


@check
def cas_outlives_its_bucket_handle():
    bucket = store.open("default")
    bucket.set("orphan", b"1")
    cas = atomics.Cas.new(bucket, "orphan")
    drop(bucket)
    atomics.swap(cas, b"2")
    assert store.open("default").get("orphan") == b"2"


@check
def batch_get_set_delete():
    bucket = store.open("default")
    batch.set_many(bucket, [("b1", b"one"), ("b2", b"two")])
    assert batch.get_many(bucket, ["b1", "b2", "b-missing"]) == [
        ("b1", b"one"),
        ("b2", b"two"),
        ("b-missing", None),
    ]
    batch.delete_many(bucket, ["b1", "b2", "b-missing"])
    assert batch.get_many(bucket, ["b1", "b2"]) == [("b1", None), ("b2", None)]
    batch.set_many(bucket, [])
    assert batch.get_many(bucket, []) == []


@check
def open_handles_are_capped():
    held = []
    error = None
    for _ in range(200):
        try:
            held.append(store.open("default"))
        except Exception as err:  # noqa: BLE001 - the Err is inspected below
            error = err
            break
    assert error is not None, "200 opens succeeded; max_open_buckets is 64"
    assert isinstance(error.value, Other) and "limits.max_open_buckets" in error.value.value
    assert len(held) < 64
    for handle in held:
        drop(handle)
    store.open("default").set("after-cap", b"ok")


@check
def leave_data_for_the_host():
    store.open("default").set("persisted", b"from-python-draft2")


def write_then_spin(bucket_name: str) -> None:
    """Writes 1,000 keys, says so, then computes forever without calling the host: the
    host-side test stops it with a signal and checks that every write was kept."""
    bucket = store.open(bucket_name)
    for n in range(1000):
        bucket.set(f"held-{n:04}", b"x")
    print("wrote 1000", flush=True)
    spins = 0
    while True:
        spins += 1


def one_big_call(spec: str) -> None:
    """One large call on bucket "default", for the host-side tests of large calls:
    "set-many COUNT BYTES", "set BYTES" or "delete-many COUNT". Prints "big: ok" or
    "big: error MESSAGE" (the error of `other`)."""
    what, *numbers = spec.split()
    bucket = store.open("default")
    try:
        if what == "set-many":
            count, size = map(int, numbers)
            batch.set_many(bucket, [(f"big-{n:06}", b"b" * size) for n in range(count)])
        elif what == "set":
            bucket.set("big", b"b" * int(numbers[0]))
        elif what == "delete-many":
            batch.delete_many(bucket, [f"gone-{n:06}-" + "k" * 180 for n in range(int(numbers[0]))])
        print("big: ok", flush=True)
    except Err as err:
        print("big: error", getattr(err.value, "value", err.value), flush=True)


class Run(exports.Run):
    def run(self) -> None:
        hold = os.environ.get("KVHOST_GUEST_HOLD")
        if hold:
            write_then_spin(hold)
        big = os.environ.get("KVHOST_GUEST_BIG")
        if big:
            one_big_call(big)
            return
        run_all()
        # What `kvhost run` passed through, for the host-side test to check.
        print("args", json.dumps(sys.argv), flush=True)
        print("env KVHOST_GUEST_NOTE", json.dumps(os.environ.get("KVHOST_GUEST_NOTE")), flush=True)
        exit_code = os.environ.get("KVHOST_GUEST_EXIT")
        if exit_code:
            os._exit(int(exit_code))
