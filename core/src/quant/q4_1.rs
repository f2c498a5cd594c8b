//! Q4_1: blocks of 32 weights, `d: f16`, `m: f16`, then 16 bytes of 4-bit codes (element
//! `j` low nibble, `j + 16` high nibble of byte `j`); value `d * q + m`. Dot products take
//! Q8_1 activations.

// Kernels index several block fields with one counter; iterator chains would hide that.
#![allow(clippy::needless_range_loop)]

use super::k_quant_helpers::trunc_to_i8;
use super::x86_order::{nibbles, with_fma, Lanes8};
use super::{q8_1, rd_f16, wr_f16};

pub(crate) const QK: usize = 32;
pub(crate) const BLOCK_BYTES: usize = 20;

/// `quantize_row_q4_1_ref`.
pub(crate) fn quantize(src: &[f32], dst: &mut [u8]) {
    for (x, y) in src.chunks_exact(QK).zip(dst.chunks_exact_mut(BLOCK_BYTES)) {
        let mut min = f32::MAX;
        let mut max = -f32::MAX;
        for &v in x {
            if v < min {
                min = v;
            }
            if v > max {
                max = v;
            }
        }
        let d = (max - min) / 15.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        wr_f16(y, 0, d);
        wr_f16(y, 2, min);
        for j in 0..QK / 2 {
            let x0 = (x[j] - min) * id;
            let x1 = (x[j + QK / 2] - min) * id;
            let xi0 = (trunc_to_i8(x0 + 0.5) as i32).min(15) as u8;
            let xi1 = (trunc_to_i8(x1 + 0.5) as i32).min(15) as u8;
            y[4 + j] = xi0 | (xi1 << 4);
        }
    }
}

/// `dequantize_row_q4_1`.
pub(crate) fn dequantize(src: &[u8], dst: &mut [f32]) {
    for (x, y) in src.chunks_exact(BLOCK_BYTES).zip(dst.chunks_exact_mut(QK)) {
        let d = rd_f16(x, 0);
        let m = rd_f16(x, 2);
        for j in 0..QK / 2 {
            let q = x[4 + j];
            y[j] = (q & 0x0F) as f32 * d + m;
            y[j + QK / 2] = (q >> 4) as f32 * d + m;
        }
    }
}

/// Q4_1 · Q8_1 over `nb` blocks (`ggml_vec_dot_q4_1_q8_1_generic`).
pub(crate) fn vec_dot_scalar(w: &[u8], a: &[u8], nb: usize) -> f32 {
    with_fma(
        #[inline(always)]
        || {
            // ggml's AVX2 order (see x86_order.rs); the minimums' term `m * s` is summed
            // separately in block order and added at the end, as there.
            let mut acc = Lanes8::new();
            let mut summs = 0f32;
            for (x, y) in w
                .chunks_exact(BLOCK_BYTES)
                .zip(a.chunks_exact(q8_1::BLOCK_BYTES))
                .take(nb)
            {
                summs += rd_f16(x, 2) * rd_f16(y, 2);
                let qx = nibbles(&x[4..4 + QK / 2], 0);
                acc.fma_block(rd_f16(x, 0) * rd_f16(y, 0), &qx, &y[4..4 + QK]);
            }
            acc.hsum() + summs
        },
    )
}
