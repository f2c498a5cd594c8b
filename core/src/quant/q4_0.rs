//! Q4_0: blocks of 32 weights, `d: f16` then 16 bytes of 4-bit codes (element `j` in the
//! low nibble of byte `j`, element `j + 16` in the high nibble); value `d * (q - 8)`.
//! Dot products take Q8_0 activations.

// Kernels index several block fields with one counter; iterator chains would hide that.
#![allow(clippy::needless_range_loop)]

use super::k_quant_helpers::trunc_to_i8;
use super::x86_order::{nibbles, with_fma, Lanes8};
use super::{q8_0, rd_f16, wr_f16};

pub(crate) const QK: usize = 32;
pub(crate) const BLOCK_BYTES: usize = 18;

/// `quantize_row_q4_0_ref`.
pub(crate) fn quantize(src: &[f32], dst: &mut [u8]) {
    for (x, y) in src.chunks_exact(QK).zip(dst.chunks_exact_mut(BLOCK_BYTES)) {
        let mut amax = 0f32;
        let mut max = 0f32;
        for &v in x {
            if amax < v.abs() {
                amax = v.abs();
                max = v;
            }
        }
        let d = max / -8.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        wr_f16(y, 0, d);
        for j in 0..QK / 2 {
            let x0 = x[j] * id;
            let x1 = x[j + QK / 2] * id;
            let xi0 = (trunc_to_i8(x0 + 8.5) as i32).min(15) as u8;
            let xi1 = (trunc_to_i8(x1 + 8.5) as i32).min(15) as u8;
            y[2 + j] = xi0 | (xi1 << 4);
        }
    }
}

/// `dequantize_row_q4_0`.
pub(crate) fn dequantize(src: &[u8], dst: &mut [f32]) {
    for (x, y) in src.chunks_exact(BLOCK_BYTES).zip(dst.chunks_exact_mut(QK)) {
        let d = rd_f16(x, 0);
        for j in 0..QK / 2 {
            let q = x[2 + j];
            y[j] = ((q & 0x0F) as i32 - 8) as f32 * d;
            y[j + QK / 2] = ((q >> 4) as i32 - 8) as f32 * d;
        }
    }
}

/// Q4_0 · Q8_0 over `nb` blocks (`ggml_vec_dot_q4_0_q8_0_generic`).
pub(crate) fn vec_dot_scalar(w: &[u8], a: &[u8], nb: usize) -> f32 {
    with_fma(
        #[inline(always)]
        || {
            // ggml's AVX2 order (see x86_order.rs): codes (q - 8), per-block d = dx * dy.
            let mut acc = Lanes8::new();
            for (x, y) in w
                .chunks_exact(BLOCK_BYTES)
                .zip(a.chunks_exact(q8_0::BLOCK_BYTES))
                .take(nb)
            {
                let qx = nibbles(&x[2..2 + QK / 2], 8);
                acc.fma_block(rd_f16(x, 0) * rd_f16(y, 0), &qx, &y[2..2 + QK]);
            }
            acc.hsum()
        },
    )
}
