//! F32, F16 and BF16 dots. They accumulate in sixteen `f32` lanes (the scalar
//! reference in `f64`), so they agree with it to rounding only; with relaxed-SIMD the
//! multiply-adds may be fused.

use core::arch::wasm32::*;

use super::super::{bf16_to_f32, f16_to_f32};
use super::prim::*;

/// `a * b + c`, fused when the engine does it (relaxed-SIMD).
#[inline(always)]
fn madd(a: v128, b: v128, c: v128) -> v128 {
    #[cfg(target_feature = "relaxed-simd")]
    {
        f32x4_relaxed_madd(a, b, c)
    }
    #[cfg(not(target_feature = "relaxed-simd"))]
    {
        f32x4_add(f32x4_mul(a, b), c)
    }
}

#[inline(always)]
fn hsum_f32(v: v128) -> f32 {
    let s = f32x4_add(v, i32x4_shuffle::<2, 3, 0, 1>(v, v));
    let s = f32x4_add(s, i32x4_shuffle::<1, 0, 3, 2>(s, s));
    f32x4_extract_lane::<0>(s)
}

/// Runs `step` over the elements in groups of 16 (`W` bytes each), with four vector
/// accumulators, then `one` over the rest.
#[inline(always)]
fn drive<const W: usize>(
    w: &[u8],
    a: &[u8],
    n: usize,
    mut step: impl FnMut(*const u8, *const u8, [v128; 4]) -> [v128; 4],
    one: impl Fn(&[u8], &[u8]) -> f32,
) -> f32 {
    assert!(w.len() >= n * W && a.len() >= n * W);
    // (Eight accumulators measured slower: Cranelift spills them.)
    let mut acc = [zero(); 4];
    let mut i = 0;
    while i + 16 <= n {
        // SAFETY: elements i..i+16 are in bounds (checked above).
        acc = unsafe { step(w.as_ptr().add(i * W), a.as_ptr().add(i * W), acc) };
        i += 16;
    }
    let mut sum = hsum_f32(f32x4_add(
        f32x4_add(acc[0], acc[1]),
        f32x4_add(acc[2], acc[3]),
    ));
    while i < n {
        sum += one(&w[i * W..(i + 1) * W], &a[i * W..(i + 1) * W]);
        i += 1;
    }
    sum
}

/// F32 · F32.
pub(crate) fn f32_f32(w: &[u8], a: &[u8], n: usize) -> f32 {
    drive::<4>(
        w,
        a,
        n,
        // SAFETY: `drive` passes 64 readable bytes.
        |x, y, acc| unsafe {
            [
                madd(ld(x), ld(y), acc[0]),
                madd(ld(x.add(16)), ld(y.add(16)), acc[1]),
                madd(ld(x.add(32)), ld(y.add(32)), acc[2]),
                madd(ld(x.add(48)), ld(y.add(48)), acc[3]),
            ]
        },
        |x, y| {
            f32::from_le_bytes([x[0], x[1], x[2], x[3]])
                * f32::from_le_bytes([y[0], y[1], y[2], y[3]])
        },
    )
}

/// F16 · F16. The halves are widened by the shift-and-rescale trick, which is exact
/// except for infinities and NaNs; if a row holds any, it is redone with the exact
/// widening.
pub(crate) fn f16_f16(w: &[u8], a: &[u8], n: usize) -> f32 {
    let mut special = zero();
    let sum = drive::<2>(
        w,
        a,
        n,
        // SAFETY: `drive` passes 32 readable bytes.
        |x, y, acc| unsafe {
            let (x0, x1, y0, y1) = (ld(x), ld(x.add(16)), ld(y), ld(y.add(16)));
            special = v128_or(
                special,
                v128_or(
                    v128_or(f16x8_special(x0), f16x8_special(x1)),
                    v128_or(f16x8_special(y0), f16x8_special(y1)),
                ),
            );
            // Even and odd halves of both rows: the same permutation of the elements.
            [
                madd(f16_even_to_f32(x0), f16_even_to_f32(y0), acc[0]),
                madd(f16_odd_to_f32(x0), f16_odd_to_f32(y0), acc[1]),
                madd(f16_even_to_f32(x1), f16_even_to_f32(y1), acc[2]),
                madd(f16_odd_to_f32(x1), f16_odd_to_f32(y1), acc[3]),
            ]
        },
        f16_one,
    );
    if v128_any_true(special) {
        f16_f16_exact(w, a, n)
    } else {
        sum
    }
}

fn f16_one(x: &[u8], y: &[u8]) -> f32 {
    f16_to_f32(u16::from_le_bytes([x[0], x[1]])) * f16_to_f32(u16::from_le_bytes([y[0], y[1]]))
}

#[cold]
#[inline(never)]
fn f16_f16_exact(w: &[u8], a: &[u8], n: usize) -> f32 {
    drive::<2>(
        w,
        a,
        n,
        // SAFETY: `drive` passes 32 readable bytes.
        |x, y, acc| unsafe {
            let (x0, x1) = f16x8_to_f32x4x2(ld(x));
            let (x2, x3) = f16x8_to_f32x4x2(ld(x.add(16)));
            let (y0, y1) = f16x8_to_f32x4x2(ld(y));
            let (y2, y3) = f16x8_to_f32x4x2(ld(y.add(16)));
            [
                madd(x0, y0, acc[0]),
                madd(x1, y1, acc[1]),
                madd(x2, y2, acc[2]),
                madd(x3, y3, acc[3]),
            ]
        },
        f16_one,
    )
}

/// Eight bf16 values (u16 lanes) widened to two f32x4.
#[inline(always)]
fn bf16x8(v: v128) -> (v128, v128) {
    let z = zero();
    (
        i16x8_shuffle::<0, 8, 1, 9, 2, 10, 3, 11>(z, v),
        i16x8_shuffle::<4, 12, 5, 13, 6, 14, 7, 15>(z, v),
    )
}

/// BF16 · BF16.
pub(crate) fn bf16_bf16(w: &[u8], a: &[u8], n: usize) -> f32 {
    drive::<2>(
        w,
        a,
        n,
        // SAFETY: `drive` passes 32 readable bytes.
        |x, y, acc| unsafe {
            let (x0, x1) = bf16x8(ld(x));
            let (x2, x3) = bf16x8(ld(x.add(16)));
            let (y0, y1) = bf16x8(ld(y));
            let (y2, y3) = bf16x8(ld(y.add(16)));
            [
                madd(x0, y0, acc[0]),
                madd(x1, y1, acc[1]),
                madd(x2, y2, acc[2]),
                madd(x3, y3, acc[3]),
            ]
        },
        |x, y| {
            bf16_to_f32(u16::from_le_bytes([x[0], x[1]]))
                * bf16_to_f32(u16::from_le_bytes([y[0], y[1]]))
        },
    )
}
