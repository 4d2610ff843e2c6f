"""A Spin HTTP app written with the Spin Python SDK, served unchanged by `kvhost serve`.

Routes (bucket "default", opened through the SDK's `wasi_keyvalue_store`):
  PUT    /kv/KEY     store the request body under KEY            -> 204
  GET    /kv/KEY     the value of KEY                            -> 200, or 404 when absent
  DELETE /kv/KEY     delete KEY                                  -> 204
  POST   /hit/KEY    set KEY to the body, then read it back      -> 200 with the value
  POST   /count/KEY  increment KEY by one (atomics)              -> 200 with the new count
  GET    /keys       every key, one per line (paged list-keys)   -> 200
  PUT    /spin-kv/KEY  store the body under KEY through Spin's own key-value API
                       (spin_sdk.key_value, fermyon:spin/key-value@2.0.0)   -> 204
  GET    /spin-kv/KEY  the value of KEY through Spin's API               -> 200, or 404
  GET    /spin-keys    every key through Spin's get-keys, one per line   -> 200
  GET    /spin-open/NAME  opens store NAME through Spin's API: "opened" or the error's name
  GET    /variable   reads a Spin variable (fermyon:spin/variables), which kvhost does not
                     provide: the request fails with a 500 naming the interface
  GET    /sleep/MS   answers after MS milliseconds (for deadline and shutdown tests)
  GET    /abort      calls abort(): a wasm trap (unreachable)        -> 500
  GET    /big/N      N bytes of "x" (for clients that hang up mid-response)   -> 200
"""

import os
import time

from spin_sdk import http, key_value, variables
from spin_sdk.http import Request, Response
from spin_sdk.wit.imports import atomics
from spin_sdk.wit.imports import wasi_keyvalue_store as kv


def text(status, body=b""):
    if isinstance(body, str):
        body = body.encode()
    return Response(status, {"content-type": "text/plain"}, body)


class IncomingHandler(http.IncomingHandler):
    def handle_request(self, request: Request) -> Response:
        path = request.uri.split("?", 1)[0]
        method = request.method
        bucket = kv.open("default")
        if path.startswith("/kv/"):
            key = path[len("/kv/"):]
            if method == "PUT":
                bucket.set(key, request.body or b"")
                return text(204)
            if method == "GET":
                value = bucket.get(key)
                return text(404, "no such key\n") if value is None else text(200, value)
            if method == "DELETE":
                bucket.delete(key)
                return text(204)
        if path.startswith("/hit/") and method == "POST":
            key = path[len("/hit/"):]
            bucket.set(key, request.body or b"")
            return text(200, bucket.get(key) or b"")
        if path.startswith("/count/") and method == "POST":
            key = path[len("/count/"):]
            return text(200, str(atomics.increment(bucket, key, 1)))
        if path == "/keys":
            keys, cursor = [], None
            while True:
                page = bucket.list_keys(cursor)
                keys.extend(page.keys)
                cursor = page.cursor
                if cursor is None:
                    break
            return text(200, "".join(k + "\n" for k in sorted(keys)))
        if path.startswith("/big/"):
            return text(200, b"x" * int(path[len("/big/"):]))
        if path == "/abort":
            os.abort()
        if path.startswith("/sleep/"):
            time.sleep(int(path[len("/sleep/"):]) / 1000)
            return text(200, "slept\n")
        if path.startswith("/spin-kv/"):
            key = path[len("/spin-kv/"):]
            store = key_value.open_default()
            if method == "PUT":
                store.set(key, request.body or b"")
                return text(204)
            value = store.get(key)
            return text(404, "no such key\n") if value is None else text(200, value)
        if path == "/spin-keys":
            store = key_value.open_default()
            return text(200, "".join(k + "\n" for k in sorted(store.get_keys())))
        if path.startswith("/spin-open/"):
            try:
                key_value.open(path[len("/spin-open/"):])
                return text(200, "opened")
            except Exception as err:
                return text(200, type(getattr(err, "value", err)).__name__)
        if path == "/variable":
            return text(200, variables.get("greeting"))
        return text(404, "no route\n")
