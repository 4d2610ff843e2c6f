"""Exercises wasi:keyvalue@0.2.0-draft: the same store as draft2, through the earlier interface
(u64 cursors, unsigned increment, get-many returning option<tuple<key, value>>, no CAS).

Run by crates/kvhost-cli/tests/guests.rs with the same config as the draft2 guest.
"""

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
    assert bucket.get("d-missing") is None and bucket.exists("d-missing") is False
    bucket.set("d-k", b"v1")
    assert bucket.get("d-k") == b"v1" and bucket.exists("d-k")
    bucket.delete("d-k")
    bucket.delete("d-k")
    assert bucket.get("d-k") is None


@check
def read_your_writes():
    writer, reader = store.open("default"), store.open("default")
    for n in range(50):
        writer.set("d-ryw", str(n).encode())
        assert reader.get("d-ryw") == str(n).encode()


@check
def limits_are_errors():
    bucket = store.open("default")
    expect_err(lambda: bucket.set("k" * 2000, b"v"), Other, "limits.max_key_bytes")
    expect_err(lambda: bucket.set("big", b"x" * (1024 * 1024 + 1)), Other, "limits.max_value_bytes")
    expect_err(lambda: bucket.list_keys(987654321), Other, "invalid cursor")


@check
def pagination_with_u64_cursors():
    bucket = store.open("other")
    clear(bucket, batch)
    expected = [f"d-page-{n:05}" for n in range(1234)]
    for start in range(0, len(expected), 500):
        batch.set_many(bucket, [(key, b"v") for key in expected[start:start + 500]])
    keys, pages = list_all(bucket)
    assert len(keys) == len(set(keys)) and set(keys) == set(expected)
    assert pages == 13, f"{pages} pages for 1234 keys at 100 per page"
    # Some(0) also starts from the beginning.
    assert bucket.list_keys(0).keys == bucket.list_keys(None).keys


@check
def pagination_while_writing():
    bucket = store.open("other")
    clear(bucket, batch)
    stable = [f"stable-{n:04}" for n in range(500)]
    batch.set_many(bucket, [(key, b"s") for key in stable])

    def write(page):
        batch.set_many(bucket, [(f"added-{page:03}-{n}", b"a") for n in range(30)])

    keys, pages = list_all(bucket, after_page=write)
    assert len(keys) == len(set(keys)), "a key was listed twice while writing"
    assert set(stable) <= set(keys)


@check
def increment_is_unsigned():
    bucket = store.open("default")
    bucket.delete("d-counter")
    assert atomics.increment(bucket, "d-counter", 5) == 5
    assert atomics.increment(bucket, "d-counter", 10) == 15
    assert bucket.get("d-counter") == b"15"
    expect_err(lambda: atomics.increment(bucket, "d-counter", 2**63), Other, "out of range")
    bucket.set("d-counter", b"-10")
    expect_err(lambda: atomics.increment(bucket, "d-counter", 1), Other, "u64")
    bucket.set("d-counter", b"not a number")
    expect_err(lambda: atomics.increment(bucket, "d-counter", 1), Other)


@check
def batch_get_many_returns_options():
    bucket = store.open("default")
    batch.set_many(bucket, [("d-b1", b"one"), ("d-b2", b"two")])
    assert batch.get_many(bucket, ["d-b1", "d-missing", "d-b2"]) == [
        ("d-b1", b"one"),
        None,
        ("d-b2", b"two"),
    ]
    batch.delete_many(bucket, ["d-b1", "d-b2"])
    assert batch.get_many(bucket, ["d-b1"]) == [None]
    expect_err(lambda: batch.get_many(bucket, ["x"] * 1001), Other, "limits.max_batch_keys")


@check
def open_handles_are_capped():
    held = []
    try:
        for _ in range(200):
            held.append(store.open("default"))
    except Exception as err:  # noqa: BLE001 - the Err is inspected below
        assert isinstance(err.value, Other) and "limits.max_open_buckets" in err.value.value
    else:
        raise AssertionError("200 opens succeeded; max_open_buckets is 64")
    for handle in held:
        drop(handle)
    store.open("default").set("d-after-cap", b"ok")


@check
def leave_data_for_the_host():
    store.open("default").set("persisted-draft", b"from-python-draft")


class Run(exports.Run):
    def run(self) -> None:
        run_all()
