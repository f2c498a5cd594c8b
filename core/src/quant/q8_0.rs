//! Q8_0: blocks of 32 values, `d: f16` then 32 signed bytes; value `d * q`. Used for
//! weights and as the activation format of Q4_0/Q5_0/Q8_0 dot products.

// Kernels index several block fields with one counter; iterator chains would hide that.
#![allow(clippy::needless_range_loop)]

use super::x86_order::{with_fma, Lanes8};
use super::{rd_f16, wr_f16};

pub(crate) const QK: usize = 32;
pub(crate) const BLOCK_BYTES: usize = 34;

/// `quantize_row_q8_0_ref` (model files): `d = amax / 127`, codes `roundf(x / d)`
/// (ties away from zero).
pub(crate) fn quantize_ref(src: &[f32], dst: &mut [u8]) {
    for (x, y) in src.chunks_exact(QK).zip(dst.chunks_exact_mut(BLOCK_BYTES)) {
        let mut amax = 0f32;
        for &v in x {
            // C's MAX(a, b) is `a > b ? a : b`.
            let a = v.abs();
            amax = if amax > a { amax } else { a };
        }
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        wr_f16(y, 0, d);
        for (q, &v) in y[2..].iter_mut().zip(x) {
            *q = (v * id).round() as i32 as i8 as u8;
        }
    }
}

/// ggml's CPU activation quantizer on x86-64 (`quantize_row_q8_0`, AVX/AVX2 code):
/// `d = amax / 127` but codes `round_half_even(x * (127 / amax))`.
pub(crate) fn quantize_act(src: &[f32], dst: &mut [u8]) {
    for (x, y) in src.chunks_exact(QK).zip(dst.chunks_exact_mut(BLOCK_BYTES)) {
        let (d, id) = act_scale(x);
        wr_f16(y, 0, d);
        for (q, &v) in y[2..].iter_mut().zip(x) {
            *q = act_code(v * id) as u8;
        }
    }
}

/// `(d, id)` of the AVX activation quantizers (shared with Q8_1).
#[inline(always)]
pub(crate) fn act_scale(x: &[f32]) -> (f32, f32) {
    let mut max = 0f32;
    for &v in x {
        max = crate::math::max_f32(max, v.abs());
    }
    let d = max / 127.0;
    let id = if max != 0.0 { 127.0 / max } else { 0.0 };
    (d, id)
}

/// `_mm256_round_ps(v, _MM_ROUND_NEAREST)` + `_mm256_cvtps_epi32` + saturating packs.
#[inline(always)]
pub(crate) fn act_code(v: f32) -> i8 {
    let r = v.round_ties_even();
    // cvtps_epi32 yields i32::MIN for NaN/out of range; packs saturate to i8.
    let i = if r.abs() < 2_147_483_648.0 {
        r as i32
    } else {
        i32::MIN
    };
    i.clamp(-128, 127) as i8
}

/// Integer dot product of 32 signed bytes with 32 signed bytes.
#[inline(always)]
pub(crate) fn dot_i8_32(x: &[u8], y: &[u8]) -> i32 {
    let x: &[u8; 32] = x.try_into().expect("32 codes");
    let y: &[u8; 32] = y.try_into().expect("32 codes");
    let mut s = [0i32; 8];
    for i in 0..32 {
        s[i % 8] += x[i] as i8 as i32 * y[i] as i8 as i32;
    }
    s.iter().sum()
}

/// `dequantize_row_q8_0`.
pub(crate) fn dequantize(src: &[u8], dst: &mut [f32]) {
    for (x, y) in src.chunks_exact(BLOCK_BYTES).zip(dst.chunks_exact_mut(QK)) {
        let d = rd_f16(x, 0);
        for (o, &q) in y.iter_mut().zip(&x[2..]) {
            *o = q as i8 as f32 * d;
        }
    }
}

/// Q8_0 · Q8_0 over `nb` blocks (`ggml_vec_dot_q8_0_q8_0_generic`).
pub(crate) fn vec_dot_scalar(w: &[u8], a: &[u8], nb: usize) -> f32 {
    with_fma(
        #[inline(always)]
        || {
            // ggml's AVX2 order (see x86_order.rs).
            let mut acc = Lanes8::new();
            for (x, y) in w
                .chunks_exact(BLOCK_BYTES)
                .zip(a.chunks_exact(BLOCK_BYTES))
                .take(nb)
            {
                let qx: &[u8; 32] = x[2..34].try_into().expect("32 codes");
                acc.fma_block(rd_f16(x, 0) * rd_f16(y, 0), &qx.map(|b| b as i8), &y[2..34]);
            }
            acc.hsum()
        },
    )
}
