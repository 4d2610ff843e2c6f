;; The smallest useful wasi:http handler: every request gets 200 with the body "hello\n".
;; Made into a component by wit-component against wit/hello.wit (see
;; crates/kvhost-cli/tests/support/hello.rs). Only the functions used are imported; the
;; signatures are the canonical ABI's flattening of the WIT functions.
(module
  (import "wasi:http/types@0.2.12" "[constructor]fields" (func $fields (result i32)))
  (import "wasi:http/types@0.2.12" "[constructor]outgoing-response"
    (func $response (param i32) (result i32)))
  (import "wasi:http/types@0.2.12" "[method]outgoing-response.body"
    (func $body (param i32 i32)))
  (import "wasi:http/types@0.2.12" "[method]outgoing-body.write"
    (func $write (param i32 i32)))
  (import "wasi:http/types@0.2.12" "[static]outgoing-body.finish"
    (func $finish (param i32 i32 i32 i32)))
  (import "wasi:http/types@0.2.12" "[static]response-outparam.set"
    (func $set (param i32 i32 i32 i32 i64 i32 i32 i32 i32)))
  (import "wasi:http/types@0.2.12" "[resource-drop]incoming-request"
    (func $drop_request (param i32)))
  (import "wasi:io/streams@0.2.12" "[method]output-stream.blocking-write-and-flush"
    (func $write_and_flush (param i32 i32 i32 i32)))
  (import "wasi:io/streams@0.2.12" "[resource-drop]output-stream"
    (func $drop_stream (param i32)))

  (memory (export "memory") 1)
  (data (i32.const 64) "hello\n")
  (global $heap (mut i32) (i32.const 1024))

  ;; Scratch area for results returned through memory: offset 16.
  (func (export "wasi:http/incoming-handler@0.2.12#handle") (param $request i32) (param $out i32)
    (local $response i32) (local $body i32) (local $stream i32)
    (call $drop_request (local.get $request))
    (local.set $response (call $response (call $fields)))
    ;; result<outgoing-body>: tag at 16, handle at 20
    (call $body (local.get $response) (i32.const 16))
    (if (i32.load8_u (i32.const 16)) (then unreachable))
    (local.set $body (i32.load (i32.const 20)))
    ;; result<output-stream>: tag at 16, handle at 20
    (call $write (local.get $body) (i32.const 16))
    (if (i32.load8_u (i32.const 16)) (then unreachable))
    (local.set $stream (i32.load (i32.const 20)))
    ;; The head goes out first, then the body streams.
    (call $set (local.get $out) (i32.const 0) (local.get $response)
      (i32.const 0) (i64.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0))
    (call $write_and_flush (local.get $stream) (i32.const 64) (i32.const 6) (i32.const 16))
    (if (i32.load8_u (i32.const 16)) (then unreachable))
    (call $drop_stream (local.get $stream))
    ;; finish(body, none) -> result<_, error-code> at 16
    (call $finish (local.get $body) (i32.const 0) (i32.const 0) (i32.const 16))
    (if (i32.load8_u (i32.const 16)) (then unreachable)))

  ;; A bump allocator: enough for the error strings a failed call might return.
  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
    (local $at i32)
    (local.set $at
      (i32.and
        (i32.add (global.get $heap) (i32.sub (local.get 2) (i32.const 1)))
        (i32.sub (i32.const 0) (local.get 2))))
    (global.set $heap (i32.add (local.get $at) (local.get 3)))
    (if (i32.gt_u (global.get $heap) (i32.mul (memory.size) (i32.const 65536)))
      (then (drop (memory.grow (i32.const 1)))))
    (local.get $at)))
