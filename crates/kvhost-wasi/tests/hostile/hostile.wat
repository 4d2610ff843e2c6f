;; The core module of the hostile guest (see hostile.wit). Memory map:
;;   0x0000_0000  scratch: return areas (16 bytes at 64), small strings at 256..
;;   0x0010_0000  the 10 MB key (filled with 'a' on demand)
;;   0x00C0_0000  handles kept by many-opens (4 bytes each, 100,000 max)
;;   0x0100_0000  cabi_realloc bump heap (reset by each export)
(module
  (import "wasi:keyvalue/store@0.2.0-draft2" "open" (func $open (param i32 i32 i32)))
  (import "wasi:keyvalue/store@0.2.0-draft2" "[method]bucket.get"
    (func $get (param i32 i32 i32 i32)))
  (import "wasi:keyvalue/store@0.2.0-draft2" "[method]bucket.set"
    (func $set (param i32 i32 i32 i32 i32 i32)))
  (import "wasi:keyvalue/store@0.2.0-draft2" "[method]bucket.list-keys"
    (func $list_keys (param i32 i32 i32 i32 i32)))
  (import "wasi:keyvalue/store@0.2.0-draft2" "[resource-drop]bucket"
    (func $drop_bucket (param i32)))
  (import "wasi:keyvalue/batch@0.2.0-draft2" "set-many"
    (func $set_many (param i32 i32 i32 i32)))

  (memory (export "memory") 420)
  (global $heap (mut i32) (i32.const 0x01000000))
  (data (i32.const 256) "default")        ;; 7 bytes
  (data (i32.const 272) "ping")           ;; 4 bytes
  (data (i32.const 288) "pong")           ;; 4 bytes
  (data (i32.const 304) "not-our-cursor") ;; 14 bytes
  (data (i32.const 320) "k")              ;; 1 byte

  (func $realloc (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
    (local $ptr i32)
    ;; align up, bump, trap if the heap would leave memory
    (local.set $ptr
      (i32.and (i32.add (global.get $heap) (i32.sub (local.get 2) (i32.const 1)))
               (i32.xor (i32.sub (local.get 2) (i32.const 1)) (i32.const -1))))
    (global.set $heap (i32.add (local.get $ptr) (local.get 3)))
    (if (i32.gt_u (global.get $heap) (i32.mul (memory.size) (i32.const 65536)))
      (then unreachable))
    (local.get $ptr))

  (func $reset (global.set $heap (i32.const 0x01000000)))

  ;; The outcome code of a `result<_, error>` in the return area at 64: 0 ok, 1 + error case.
  (func $outcome (result i32)
    (if (result i32) (i32.eqz (i32.load8_u (i32.const 64)))
      (then (i32.const 0))
      (else (i32.add (i32.const 1) (i32.load8_u (i32.const 68))))))

  ;; open("default"); the handle, or traps if it fails.
  (func $open_default (result i32)
    (call $open (i32.const 256) (i32.const 7) (i32.const 64))
    (if (i32.load8_u (i32.const 64)) (then unreachable))
    (i32.load (i32.const 68)))

  (func (export "ping") (result i32)
    (local $bucket i32)
    (call $reset)
    (local.set $bucket (call $open_default))
    (call $set (local.get $bucket) (i32.const 272) (i32.const 4) (i32.const 288) (i32.const 4)
      (i32.const 64))
    (if (call $outcome) (then (return (i32.const 100))))
    (call $get (local.get $bucket) (i32.const 272) (i32.const 4) (i32.const 64))
    (if (call $outcome) (then (return (i32.const 101))))
    ;; some(value) of 4 bytes equal to "pong"
    (if (i32.eqz (i32.load8_u (i32.const 68))) (then (return (i32.const 102))))
    (if (i32.ne (i32.load (i32.const 76)) (i32.const 4)) (then (return (i32.const 103))))
    (if (i32.ne (i32.load (i32.load (i32.const 72))) (i32.load (i32.const 288)))
      (then (return (i32.const 104))))
    (call $drop_bucket (local.get $bucket))
    (i32.const 0))

  (func (export "huge-key") (result i32)
    (local $bucket i32)
    (call $reset)
    (local.set $bucket (call $open_default))
    (memory.fill (i32.const 0x00100000) (i32.const 0x61) (i32.const 10000000))
    (call $get (local.get $bucket) (i32.const 0x00100000) (i32.const 10000000) (i32.const 64))
    (call $drop_bucket (local.get $bucket))
    (call $outcome))

  (func (export "foreign-cursor") (result i32)
    (local $bucket i32)
    (call $reset)
    (local.set $bucket (call $open_default))
    (call $list_keys (local.get $bucket) (i32.const 1) (i32.const 304) (i32.const 14)
      (i32.const 64))
    (call $drop_bucket (local.get $bucket))
    (call $outcome))

  (func (export "use-after-drop") (result i32)
    (local $bucket i32)
    (call $reset)
    (local.set $bucket (call $open_default))
    (call $drop_bucket (local.get $bucket))
    (call $get (local.get $bucket) (i32.const 272) (i32.const 4) (i32.const 64))
    (call $outcome))

  (func (export "many-opens") (result i32)
    (local $n i32) (local $ok i32) (local $bad i32)
    (loop $again
      (call $reset)
      (call $open (i32.const 256) (i32.const 7) (i32.const 64))
      (if (i32.eqz (i32.load8_u (i32.const 64)))
        (then
          (i32.store (i32.add (i32.const 0x00C00000) (i32.mul (local.get $ok) (i32.const 4)))
            (i32.load (i32.const 68)))
          (local.set $ok (i32.add (local.get $ok) (i32.const 1))))
        (else
          (if (i32.ne (i32.load8_u (i32.const 68)) (i32.const 2))
            (then (local.set $bad (i32.const 1))))))
      (local.set $n (i32.add (local.get $n) (i32.const 1)))
      (br_if $again (i32.lt_u (local.get $n) (i32.const 100000))))
    (local.set $n (i32.const 0))
    (block $done
      (loop $drop
        (br_if $done (i32.ge_u (local.get $n) (local.get $ok)))
        (call $drop_bucket
          (i32.load (i32.add (i32.const 0x00C00000) (i32.mul (local.get $n) (i32.const 4)))))
        (local.set $n (i32.add (local.get $n) (i32.const 1)))
        (br $drop)))
    (if (result i32) (local.get $bad) (then (i32.const -1)) (else (local.get $ok))))

  (func (export "huge-set-many") (result i32)
    (local $bucket i32) (local $entry i32) (local $end i32)
    (call $reset)
    (local.set $bucket (call $open_default))
    ;; 100,001 entries of (key "k", empty value), 16 bytes each, at 0x0100_0000: one more than
    ;; limits.max_batch_keys
    (local.set $entry (i32.const 0x01000000))
    (local.set $end (i32.add (local.get $entry) (i32.const 1600016)))
    (loop $fill
      (i32.store (local.get $entry) (i32.const 320))
      (i32.store offset=4 (local.get $entry) (i32.const 1))
      (i32.store offset=8 (local.get $entry) (i32.const 320))
      (i32.store offset=12 (local.get $entry) (i32.const 0))
      (local.set $entry (i32.add (local.get $entry) (i32.const 16)))
      (br_if $fill (i32.lt_u (local.get $entry) (local.get $end))))
    (global.set $heap (local.get $end))
    (call $set_many (local.get $bucket) (i32.const 0x01000000) (i32.const 100001) (i32.const 64))
    (call $drop_bucket (local.get $bucket))
    (call $outcome))
)
