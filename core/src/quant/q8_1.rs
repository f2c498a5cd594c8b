//! Q8_1: blocks of 32 values, `d: f16`, `s: f16` (= `d * sum(q)`), then 32 signed bytes;
//! value `d * q`. The activation format of Q4_1/Q5_1 dot products (`s` carries the
//! weight minimums' contribution).

// Kernels index several block fields with one counter; iterator chains would hide that.
#![allow(clippy::needless_range_loop)]

use super::q8_0::{act_code, act_scale, dot_i8_32};
use super::{rd_f16, wr_f16};

pub(crate) const QK: usize = 32;
pub(crate) const BLOCK_BYTES: usize = 36;

/// `quantize_row_q8_1_ref`.
pub(crate) fn quantize_ref(src: &[f32], dst: &mut [u8]) {
    for (x, y) in src.chunks_exact(QK).zip(dst.chunks_exact_mut(BLOCK_BYTES)) {
        let mut amax = 0f32;
        for &v in x {
            let a = v.abs();
            amax = if amax > a { amax } else { a };
        }
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        wr_f16(y, 0, d);
        let mut sum = 0i32;
        for (q, &v) in y[4..].iter_mut().zip(x) {
            let c = (v * id).round() as i32 as i8;
            *q = c as u8;
            sum += c as i32;
        }
        wr_f16(y, 2, sum as f32 * d);
    }
}

/// ggml's CPU activation quantizer on x86-64 (`quantize_row_q8_1`, AVX2 code): codes
/// `round_half_even(x * (127 / amax))`, `s = d * sum(q)`.
pub(crate) fn quantize_act(src: &[f32], dst: &mut [u8]) {
    for (x, y) in src.chunks_exact(QK).zip(dst.chunks_exact_mut(BLOCK_BYTES)) {
        let (d, id) = act_scale(x);
        wr_f16(y, 0, d);
        let mut sum = 0i32;
        for (q, &v) in y[4..].iter_mut().zip(x) {
            // The sum is taken over the i32 codes before the saturating packs.
            let r = (v * id).round_ties_even();
            let i = if r.abs() < 2_147_483_648.0 {
                r as i32
            } else {
                i32::MIN
            };
            sum = sum.wrapping_add(i);
            *q = act_code(v * id) as u8;
        }
        wr_f16(y, 2, d * sum as f32);
    }
}

/// Dequantizes as `d * q` (ggml has no Q8_1 dequantizer; `s` is redundant).
pub(crate) fn dequantize(src: &[u8], dst: &mut [f32]) {
    for (x, y) in src.chunks_exact(BLOCK_BYTES).zip(dst.chunks_exact_mut(QK)) {
        let d = rd_f16(x, 0);
        for (o, &q) in y.iter_mut().zip(&x[4..]) {
            *o = q as i8 as f32 * d;
        }
    }
}

/// Q8_1 · Q8_1 over `nb` blocks (not a ggml kernel; provided for completeness).
pub(crate) fn vec_dot_scalar(w: &[u8], a: &[u8], nb: usize) -> f32 {
    let mut sumf = 0f32;
    for (x, y) in w
        .chunks_exact(BLOCK_BYTES)
        .zip(a.chunks_exact(BLOCK_BYTES))
        .take(nb)
    {
        let sumi = dot_i8_32(&x[4..36], &y[4..36]);
        sumf += sumi as f32 * (rd_f16(x, 0) * rd_f16(y, 0));
    }
    sumf
}
