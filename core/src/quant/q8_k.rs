//! Q8_K: the activation format of the K-quant dot products. Blocks of 256 values:
//! `d: f32`, 256 signed bytes, then sixteen `i16` sums of each group of 16 codes
//! (`bsums`, which let the weights' minimums be applied per group). Value `d * q`.

// Kernels index several block fields with one counter; iterator chains would hide that.
#![allow(clippy::needless_range_loop)]

use super::k_quant_helpers::nearest_int;
use super::QK_K;

pub(crate) const BLOCK_BYTES: usize = 292;
const QS: usize = 4;
const BSUMS: usize = 4 + QK_K;

#[inline(always)]
pub(crate) fn d(b: &[u8]) -> f32 {
    f32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// The 256 codes of a block.
#[inline(always)]
pub(crate) fn qs(b: &[u8]) -> &[u8] {
    &b[QS..QS + QK_K]
}

/// Group sum `j` (0..16) of a block.
#[inline(always)]
pub(crate) fn bsum(b: &[u8], j: usize) -> i32 {
    i16::from_le_bytes([b[BSUMS + 2 * j], b[BSUMS + 2 * j + 1]]) as i32
}

/// `quantize_row_q8_K_ref` (also what ggml's x86 CPU backend uses for activations).
/// A block of zeros gets zero group sums (ggml leaves them unwritten).
pub(crate) fn quantize(src: &[f32], dst: &mut [u8]) {
    for (x, y) in src
        .chunks_exact(QK_K)
        .zip(dst.chunks_exact_mut(BLOCK_BYTES))
    {
        let mut max = 0f32;
        let mut amax = 0f32;
        for &v in x {
            let ax = v.abs();
            if ax > amax {
                amax = ax;
                max = v;
            }
        }
        if amax == 0.0 {
            y.fill(0);
            continue;
        }
        let iscale = -127.0 / max;
        for (q, &v) in y[QS..QS + QK_K].iter_mut().zip(x) {
            *q = nearest_int(iscale * v).min(127) as i8 as u8;
        }
        for j in 0..QK_K / 16 {
            let sum: i32 = y[QS + 16 * j..QS + 16 * j + 16]
                .iter()
                .map(|&q| q as i8 as i32)
                .sum();
            y[BSUMS + 2 * j..BSUMS + 2 * j + 2].copy_from_slice(&(sum as i16).to_le_bytes());
        }
        y[0..4].copy_from_slice(&(1.0 / iscale).to_le_bytes());
    }
}

/// `dequantize_row_q8_K`: `d * q`.
pub(crate) fn dequantize(src: &[u8], dst: &mut [f32]) {
    for (x, y) in src
        .chunks_exact(BLOCK_BYTES)
        .zip(dst.chunks_exact_mut(QK_K))
    {
        let d = d(x);
        for (o, &q) in y.iter_mut().zip(qs(x)) {
            *o = d * q as i8 as f32;
        }
    }
}

/// Q8_K · Q8_K over `nb` blocks (not a ggml kernel; provided for completeness).
pub(crate) fn vec_dot_scalar(w: &[u8], a: &[u8], nb: usize) -> f32 {
    let mut sumf = 0f32;
    for (x, y) in w
        .chunks_exact(BLOCK_BYTES)
        .zip(a.chunks_exact(BLOCK_BYTES))
        .take(nb)
    {
        let mut sumi = 0i32;
        for (&qx, &qy) in qs(x).iter().zip(qs(y)) {
            sumi += qx as i8 as i32 * qy as i8 as i32;
        }
        sumf += d(x) * d(y) * sumi as f32;
    }
    sumf
}
