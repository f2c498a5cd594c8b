//! Q5_1: blocks of 32 weights, `d: f16`, `m: f16`, `qh: [u8; 4]` (fifth bits, bit `j` of
//! the little-endian u32 for element `j`), then 16 bytes of low nibbles; value
//! `d * q + m`. Dot products take Q8_1 activations.

// Kernels index several block fields with one counter; iterator chains would hide that.
#![allow(clippy::needless_range_loop)]

use super::k_quant_helpers::trunc_to_i32;
use super::q5_0::spread_bits;
use super::x86_order::{nibbles, with_fma, Lanes8};
use super::{q8_1, rd_f16, wr_f16};

pub(crate) const QK: usize = 32;
pub(crate) const BLOCK_BYTES: usize = 24;

/// `quantize_row_q5_1_ref`.
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
        let d = (max - min) / 31.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        wr_f16(y, 0, d);
        wr_f16(y, 2, min);
        let mut qh = 0u32;
        for j in 0..QK / 2 {
            let x0 = (x[j] - min) * id;
            let x1 = (x[j + QK / 2] - min) * id;
            // C: `(uint8_t)(x0 + 0.5f)`.
            let xi0 = trunc_to_i32(x0 + 0.5) as u8;
            let xi1 = trunc_to_i32(x1 + 0.5) as u8;
            y[8 + j] = (xi0 & 0x0F) | ((xi1 & 0x0F) << 4);
            qh |= (((xi0 & 0x10) >> 4) as u32) << j;
            qh |= (((xi1 & 0x10) >> 4) as u32) << (j + QK / 2);
        }
        y[4..8].copy_from_slice(&qh.to_le_bytes());
    }
}

/// `dequantize_row_q5_1`.
pub(crate) fn dequantize(src: &[u8], dst: &mut [f32]) {
    for (x, y) in src.chunks_exact(BLOCK_BYTES).zip(dst.chunks_exact_mut(QK)) {
        let d = rd_f16(x, 0);
        let m = rd_f16(x, 2);
        let qh = u32::from_le_bytes([x[4], x[5], x[6], x[7]]);
        for j in 0..QK / 2 {
            let xh0 = (((qh >> j) << 4) & 0x10) as u8;
            let xh1 = ((qh >> (j + 12)) & 0x10) as u8;
            let q = x[8 + j];
            y[j] = ((q & 0x0F) | xh0) as f32 * d + m;
            y[j + QK / 2] = ((q >> 4) | xh1) as f32 * d + m;
        }
    }
}

/// Q5_1 · Q8_1 over `nb` blocks (`ggml_vec_dot_q5_1_q8_1_generic`).
pub(crate) fn vec_dot_scalar(w: &[u8], a: &[u8], nb: usize) -> f32 {
    with_fma(
        #[inline(always)]
        || {
            // ggml's AVX2 order (see x86_order.rs), minimums' term summed separately.
            let mut acc = Lanes8::new();
            let mut summs = 0f32;
            for (x, y) in w
                .chunks_exact(BLOCK_BYTES)
                .zip(a.chunks_exact(q8_1::BLOCK_BYTES))
                .take(nb)
            {
                summs += rd_f16(x, 2) * rd_f16(y, 2);
                let hb = spread_bits([x[4], x[5], x[6], x[7]]);
                let mut qx = nibbles(&x[8..8 + QK / 2], 0);
                for (q, h) in qx.iter_mut().zip(hb) {
                    *q |= (h << 4) as i8;
                }
                acc.fma_block(rd_f16(x, 0) * rd_f16(y, 0), &qx, &y[4..4 + QK]);
            }
            acc.hsum() + summs
        },
    )
}
