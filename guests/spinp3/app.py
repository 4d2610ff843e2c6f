"""A Spin HTTP app of the WASIp3 generation, served unchanged by `kvhost serve`.

The same source is built twice by scripts/build-guests.sh: with spin-sdk 5.0.0 (exports
wasi:http/handler@0.3.0) and with spin-sdk 4.0.0 (exports wasi:http/handler@0.3.0-rc-2026-03-15).
Key-value goes through the SDK's `spin_sdk.key_value` (spin:key-value@3.0.0, async) unless the
route says wasi-kv (wasi:keyvalue@0.2.0-draft2, which these SDKs still import).

Routes (store "default"):
  PUT    /kv/KEY        store the request body under KEY                        -> 204
  GET    /kv/KEY        the value of KEY                                        -> 200, or 404
  DELETE /kv/KEY        delete KEY                                              -> 204
  GET    /exists/KEY    "true" or "false"                                       -> 200
  POST   /hit/KEY       set KEY to the body, then get it back                   -> 200 with it
  GET    /keys          every key from get-keys (a stream), sorted, one a line  -> 200
  GET    /keys-first    reads one key from get-keys, then drops the stream      -> 200 "dropped"
  PUT    /wasi-kv/KEY   store the body under KEY through wasi:keyvalue draft2   -> 204
  GET    /wasi-kv/KEY   the value of KEY through wasi:keyvalue draft2           -> 200, or 404
  GET    /open/NAME     opens store NAME: "opened" or the error's name          -> 200
  GET    /opens/N       opens N stores without closing them: how many opened and the first
                        error's name                                            -> 200
  GET    /closed        uses a store after closing it: the exception's name     -> 200
  GET    /variable      reads a Spin variable, which kvhost does not provide    -> 500 naming it
  GET    /spin          computes forever (for the deadline test)
  GET    /hello         "hello" without touching key-value
  GET    /header/NAME   the value of request header NAME (e.g. Spin's spin-full-url)
  GET    /abort         calls abort(): a wasm trap (unreachable)                -> 500
  GET    /big/N         N bytes of "x" (for clients that hang up mid-response)  -> 200
"""

import os

from componentize_py_types import Err

from spin_sdk import http, key_value, variables
from spin_sdk.http import Request, Response
from spin_sdk.wit.imports import wasi_keyvalue_store_0_2_0_draft2 as wasi_kv


def text(status, body=b""):
    if isinstance(body, str):
        body = body.encode()
    return Response(status, {"content-type": "text/plain"}, body)


def error_name(err):
    return type(getattr(err, "value", err)).__name__


async def all_keys(store):
    keys, outcome = await store.get_keys()
    found = []
    with keys:
        while not keys.writer_dropped:
            found.extend(await keys.read(100))
    result = await outcome.read()
    if isinstance(result, Err):
        raise result
    return found


class HttpHandler(http.Handler):
    async def handle_request(self, request: Request) -> Response:
        path = request.uri.split("?", 1)[0]
        method = request.method
        if path == "/hello":
            return text(200, "hello")
        if path.startswith("/header/"):
            return text(200, request.headers.get(path[len("/header/"):], "(none)"))
        if path.startswith("/kv/"):
            key = path[len("/kv/"):]
            store = await key_value.open_default()
            if method == "PUT":
                await store.set(key, request.body or b"")
                return text(204)
            if method == "DELETE":
                await store.delete(key)
                return text(204)
            value = await store.get(key)
            return text(404, "no such key\n") if value is None else text(200, value)
        if path.startswith("/exists/"):
            store = await key_value.open_default()
            return text(200, "true" if await store.exists(path[len("/exists/"):]) else "false")
        if path.startswith("/hit/") and method == "POST":
            key = path[len("/hit/"):]
            store = await key_value.open_default()
            await store.set(key, request.body or b"")
            return text(200, await store.get(key) or b"")
        if path == "/keys":
            store = await key_value.open_default()
            return text(200, "".join(k + "\n" for k in sorted(await all_keys(store))))
        if path == "/keys-first":
            store = await key_value.open_default()
            keys, outcome = await store.get_keys()
            with keys:
                await keys.read(1)
            with outcome:
                pass
            return text(200, "dropped")
        if path.startswith("/wasi-kv/"):
            key = path[len("/wasi-kv/"):]
            bucket = wasi_kv.open("default")
            if method == "PUT":
                bucket.set(key, request.body or b"")
                return text(204)
            value = bucket.get(key)
            return text(404, "no such key\n") if value is None else text(200, value)
        if path.startswith("/open/"):
            try:
                await key_value.open(path[len("/open/"):])
                return text(200, "opened")
            except Exception as err:
                return text(200, error_name(err))
        if path.startswith("/opens/"):
            stores = []
            try:
                for _ in range(int(path[len("/opens/"):])):
                    stores.append(await key_value.open_default())
                return text(200, f"{len(stores)} none")
            except Exception as err:
                return text(200, f"{len(stores)} {error_name(err)}")
            finally:
                for store in stores:
                    store.__exit__(None, None, None)
        if path.startswith("/big/"):
            return text(200, b"x" * int(path[len("/big/"):]))
        if path == "/abort":
            os.abort()
        if path == "/closed":
            store = await key_value.open_default()
            store.__exit__(None, None, None)
            try:
                await store.get("k")
                return text(200, "no error")
            except BaseException as err:
                return text(200, error_name(err))
        if path == "/variable":
            return text(200, await variables.get("greeting"))
        if path == "/spin":
            n = 0
            while True:
                n += 1
        return text(404, "no route\n")
