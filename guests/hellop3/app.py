"""The minimal WASIp3 HTTP handler (wasi:http/handler@0.3.0): answers every request with
200 "hello\n". Built with componentize-py against guests/hellop3/wit; the serve benchmark runs
it under `kvhost serve` and `wasmtime serve` alike (it imports nothing either lacks)."""

import componentize_py_async_support
import wit_world
from componentize_py_types import Ok
from wit_world import exports
from wit_world.imports.wasi_http_types import Fields, Request, Response

BODY = b"hello\n"


async def copy(tx):
    with tx:
        await tx.write_all(BODY)


class Handler(exports.Handler):
    async def handle(self, request: Request) -> Response:
        tx, rx = wit_world.byte_stream()
        componentize_py_async_support.spawn(copy(tx))
        trailers = wit_world.result_option_wasi_http_types_fields_wasi_http_types_error_code_future(
            lambda: Ok(None)
        )[1]
        headers = Fields.from_list([("content-type", b"text/plain"), ("content-length", b"6")])
        return Response.new(headers, rx, trailers)[0]
