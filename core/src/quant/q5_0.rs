//! Q5_0: blocks of 32 weights, `d: f16`, `qh: [u8; 4]` (the fifth bit of element `j` is
//! bit `j` of the little-endian u32), then 16 bytes of low nibbles (element `j` low,
//! `j + 16` high nibble of byte `j`); value `d * (q - 16)`. Dot products take Q8_0
//! activations.

// Kernels index several block fields with one counter; iterator chains would hide that.
#![allow(clippy::needless_range_loop)]

use super::k_quant_helpers::trunc_to_i8;
use super::x86_order::{nibbles, with_fma, Lanes8};
use super::{q8_0, rd_f16, wr_f16};

pub(crate) const QK: usize = 32;
pub(crate) const BLOCK_BYTES: usize = 22;

/// `quantize_row_q5_0_ref`.
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
        let d = max / -16.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        wr_f16(y, 0, d);
        let mut qh = 0u32;
        for j in 0..QK / 2 {
            let x0 = x[j] * id;
            let x1 = x[j + QK / 2] * id;
            let xi0 = (trunc_to_i8(x0 + 16.5) as i32).min(31) as u8;
            let xi1 = (trunc_to_i8(x1 + 16.5) as i32).min(31) as u8;
            y[6 + j] = (xi0 & 0x0F) | ((xi1 & 0x0F) << 4);
            qh |= (((xi0 & 0x10) >> 4) as u32) << j;
            qh |= (((xi1 & 0x10) >> 4) as u32) << (j + QK / 2);
        }
        y[2..6].copy_from_slice(&qh.to_le_bytes());
    }
}

/// The 32 fifth bits of a Q5_0/Q5_1 block (`qh`, little-endian) as 32 bytes of 0 or 1,
/// by multiplication tricks rather than per-element variable shifts (which do not
/// vectorize).
#[inline(always)]
pub(crate) fn spread_bits(qh: [u8; 4]) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (o, &b) in out.chunks_exact_mut(8).zip(&qh) {
        // Byte k of the product is `b`; keep bit k of byte k, then move it to bit 0.
        let m = (b as u64).wrapping_mul(0x0101_0101_0101_0101) & 0x8040_2010_0804_0201;
        let bits = ((m + 0x7f7f_7f7f_7f7f_7f7f) >> 7) & 0x0101_0101_0101_0101;
        o.copy_from_slice(&bits.to_le_bytes());
    }
    out
}

/// `dequantize_row_q5_0`.
pub(crate) fn dequantize(src: &[u8], dst: &mut [f32]) {
    for (x, y) in src.chunks_exact(BLOCK_BYTES).zip(dst.chunks_exact_mut(QK)) {
        let d = rd_f16(x, 0);
        let qh = u32::from_le_bytes([x[2], x[3], x[4], x[5]]);
        for j in 0..QK / 2 {
            let xh0 = (((qh >> j) << 4) & 0x10) as u8;
            let xh1 = ((qh >> (j + 12)) & 0x10) as u8;
            let q = x[6 + j];
            y[j] = (((q & 0x0F) | xh0) as i32 - 16) as f32 * d;
            y[j + QK / 2] = (((q >> 4) | xh1) as i32 - 16) as f32 * d;
        }
    }
}

/// Q5_0 · Q8_0 over `nb` blocks (`ggml_vec_dot_q5_0_q8_0_generic`).
pub(crate) fn vec_dot_scalar(w: &[u8], a: &[u8], nb: usize) -> f32 {
    with_fma(
        #[inline(always)]
        || {
            // ggml's AVX2 order (see x86_order.rs): codes (q - 16).
            let mut acc = Lanes8::new();
            for (x, y) in w
                .chunks_exact(BLOCK_BYTES)
                .zip(a.chunks_exact(q8_0::BLOCK_BYTES))
                .take(nb)
            {
                let hb = spread_bits([x[2], x[3], x[4], x[5]]);
                let mut qx = nibbles(&x[6..6 + QK / 2], 0);
                for (q, h) in qx.iter_mut().zip(hb) {
                    *q = (*q | (h << 4) as i8) - 16;
                }
                acc.fma_block(rd_f16(x, 0) * rd_f16(y, 0), &qx, &y[2..2 + QK]);
            }
            acc.hsum()
        },
    )
}
