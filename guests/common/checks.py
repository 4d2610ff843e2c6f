"""A tiny check runner shared by the test guests.

Each check is a function decorated with @check. `run_all` runs them in order, prints
"ok NAME" after each one that passes, and re-raises the first failure (the guest then traps,
so `kvhost run` exits non-zero and the test sees the traceback on stderr). The host-side test
compares the printed names with the list it expects, so a check that silently did not run
fails the test too.
"""

from componentize_py_types import Err

_CHECKS = []


def check(function):
    _CHECKS.append(function)
    return function


def run_all():
    for function in _CHECKS:
        function()
        print("ok", function.__name__, flush=True)


def expect_err(call, kind, contains=None):
    """Calls `call()`, which must raise Err whose value is an instance of `kind` (and whose
    message contains `contains`, for `other`). Returns the error value."""
    try:
        result = call()
    except Err as err:
        value = err.value
        assert isinstance(value, kind), f"expected {kind.__name__}, got {value!r}"
        if contains is not None:
            assert contains in value.value, f"{contains!r} not in {value.value!r}"
        return value
    raise AssertionError(f"expected {kind.__name__}, got a result: {result!r}")


def drop(resource):
    """Drops a resource handle now instead of when Python collects it."""
    resource.__exit__(None, None, None)


def list_all(bucket, first_cursor=None, after_page=None):
    """Walks every page of bucket.list_keys; returns (keys in order, number of pages).
    `after_page(page_number)` runs between pages (used to write while listing)."""
    keys, pages, cursor = [], 0, first_cursor
    while True:
        response = bucket.list_keys(cursor)
        pages += 1
        keys.extend(response.keys)
        if response.cursor is None:
            return keys, pages
        cursor = response.cursor
        if after_page is not None:
            after_page(pages)


def clear(bucket, batch):
    """Deletes every key of `bucket`, 500 at a time (the test config caps batches at 1000)."""
    keys = list_all(bucket)[0]
    for start in range(0, len(keys), 500):
        batch.delete_many(bucket, keys[start:start + 500])
