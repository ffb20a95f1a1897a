;; The page's matrix-vector product (charrnn export --html, model_page.js), in WebAssembly's
;; 128-bit vectors, two float64 lanes each:
;;   out[b*8 + k] = the sum over j = 0, 1, ..., n-1, in that order, of x[j] * w[(b*n + j)*8 + k]
;; for each block b of eight outputs (`blocks` of them): every output adds its inputs one after
;; another, as the plain JavaScript loop does, so the two give the same numbers; the lanes are
;; outputs, never parts of one sum. x, w and out are float64, at byte offsets into the memory.
;; Assembled with wabt (`npx wabt` then `wat2wasm matvec.wat`); model_page.js holds the bytes.
(module
  (import "env" "memory" (memory 1))
  (func (export "matvec") (param $x i32) (param $w i32) (param $out i32) (param $n i32) (param $blocks i32)
    (local $j i32) (local $xp i32) (local $a0 v128) (local $a1 v128) (local $a2 v128) (local $a3 v128) (local $xj v128)
    (block $done (loop $block
      (br_if $done (i32.eqz (local.get $blocks)))
      (local.set $a0 (v128.const i64x2 0 0)) (local.set $a1 (v128.const i64x2 0 0))
      (local.set $a2 (v128.const i64x2 0 0)) (local.set $a3 (v128.const i64x2 0 0))
      (local.set $xp (local.get $x)) (local.set $j (local.get $n))
      (loop $inner
        (local.set $xj (v128.load64_splat (local.get $xp)))
        (local.set $a0 (f64x2.add (local.get $a0) (f64x2.mul (local.get $xj) (v128.load (local.get $w)))))
        (local.set $a1 (f64x2.add (local.get $a1) (f64x2.mul (local.get $xj) (v128.load offset=16 (local.get $w)))))
        (local.set $a2 (f64x2.add (local.get $a2) (f64x2.mul (local.get $xj) (v128.load offset=32 (local.get $w)))))
        (local.set $a3 (f64x2.add (local.get $a3) (f64x2.mul (local.get $xj) (v128.load offset=48 (local.get $w)))))
        (local.set $w (i32.add (local.get $w) (i32.const 64)))
        (local.set $xp (i32.add (local.get $xp) (i32.const 8)))
        (local.set $j (i32.sub (local.get $j) (i32.const 1)))
        (br_if $inner (local.get $j)))
      (v128.store (local.get $out) (local.get $a0))
      (v128.store offset=16 (local.get $out) (local.get $a1))
      (v128.store offset=32 (local.get $out) (local.get $a2))
      (v128.store offset=48 (local.get $out) (local.get $a3))
      (local.set $out (i32.add (local.get $out) (i32.const 64)))
      (local.set $blocks (i32.sub (local.get $blocks) (i32.const 1)))
      (br $block))))
)
