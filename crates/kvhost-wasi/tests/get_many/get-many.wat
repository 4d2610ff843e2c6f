;; A guest that passes `wasi:keyvalue/batch@0.2.0-draft2.get-many` through: its export
;; `get-many` opens bucket "default", calls the import with the keys it was given and returns
;; the import's list as it is. The code is the same for both shapes of `get-many` (both
;; lower to the same core signature); the world it is made with (sdk.wit or upstream.wit)
;; decides which type the component imports and exports, so the test sees exactly what the
;; host wrote into guest memory.
(module
  (import "wasi:keyvalue/store@0.2.0-draft2" "open" (func $open (param i32 i32 i32)))
  (import "wasi:keyvalue/batch@0.2.0-draft2" "get-many"
    (func $get_many (param i32 i32 i32 i32)))
  (memory (export "memory") 16)
  ;; The bump allocator's next free byte; below it: the bucket name and the return areas.
  (global $next (mut i32) (i32.const 1024))
  (data (i32.const 16) "default")

  ;; Bump allocation (nothing is freed); traps past the 1 MiB memory.
  (func (export "cabi_realloc") (param $old i32) (param $old_size i32) (param $align i32)
      (param $size i32) (result i32)
    (local $at i32)
    (local.set $at
      (i32.and
        (i32.add (global.get $next) (i32.sub (local.get $align) (i32.const 1)))
        (i32.sub (i32.const 0) (local.get $align))))
    (global.set $next (i32.add (local.get $at) (local.get $size)))
    (if (i32.gt_u (global.get $next) (i32.const 1048576)) (then unreachable))
    (local.get $at))

  (func (export "get-many") (param $keys i32) (param $count i32) (result i32)
    ;; open: result<bucket, error> at 64 (tag byte, handle at 68); an error traps.
    (call $open (i32.const 16) (i32.const 7) (i32.const 64))
    (if (i32.load8_u (i32.const 64)) (then unreachable))
    ;; get-many: result<list<...>, error> at 96 (tag byte, list at 100); an error traps.
    (call $get_many (i32.load (i32.const 68)) (local.get $keys) (local.get $count)
      (i32.const 96))
    (if (i32.load8_u (i32.const 96)) (then unreachable))
    (i32.const 100))
)
