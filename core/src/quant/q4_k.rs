//! Q4_K: super-blocks of 256 weights in 8 groups of 32, asymmetric 4-bit codes with 6-bit
//! group scales and mins. Layout (144 bytes): `d: f16`, `dmin: f16`, `scales: [u8; 12]`
//! (packed, see `k_quant_helpers::get_scale_min_k4`), `qs: [u8; 128]`. Value of code `q` in group `g`:
//! `d * sc[g] * q - dmin * m[g]`. Dot products take Q8_K.
//!
//! Element `64*c + l` is the low nibble of `qs[32*c + l]`, element `64*c + 32 + l` its
//! high nibble (`c` in 0..4, `l` in 0..32).

// Kernels index several block fields with one counter; iterator chains would hide that.
#![allow(clippy::needless_range_loop)]

use super::k_quant_helpers::{make_qkx2_quants, nearest_int, pack_scales_mins_k4, scales_mins_k4};
use super::{q8_k, rd_f16, round_f16, wr_f16, QK_K};

pub(crate) const BLOCK_BYTES: usize = 144;
const D: usize = 0;
const DMIN: usize = 2;
const SCALES: usize = 4;
const QS: usize = 16;

/// `quantize_row_q4_K_ref`.
pub(crate) fn quantize(src: &[f32], dst: &mut [u8]) {
    let mut l = [0u8; QK_K];
    let mut laux = [0u8; 32];
    let mut weights = [0f32; 32];
    let mut mins = [0f32; QK_K / 32];
    let mut scales = [0f32; QK_K / 32];
    for (x, y) in src
        .chunks_exact(QK_K)
        .zip(dst.chunks_exact_mut(BLOCK_BYTES))
    {
        let mut max_scale = 0f32;
        let mut max_min = 0f32;
        for j in 0..QK_K / 32 {
            let xs = &x[32 * j..32 * j + 32];
            let mut sum_x2 = 0f32;
            for &v in xs {
                sum_x2 += v * v;
            }
            let av_x = (sum_x2 / 32.0).sqrt();
            for (w, &v) in weights.iter_mut().zip(xs) {
                *w = av_x + v.abs();
            }
            let (scale, min) = make_qkx2_quants(
                32,
                15,
                xs,
                &weights,
                &mut l[32 * j..32 * j + 32],
                &mut laux,
                -1.0,
                0.1,
                20,
                false,
            );
            scales[j] = scale;
            mins[j] = min;
            if scale > max_scale {
                max_scale = scale;
            }
            if min > max_min {
                max_min = min;
            }
        }
        let inv_scale = if max_scale > 0.0 {
            63.0 / max_scale
        } else {
            0.0
        };
        let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
        let mut ls = [0u8; 8];
        let mut lm = [0u8; 8];
        for j in 0..QK_K / 32 {
            ls[j] = (nearest_int(inv_scale * scales[j]) as u8).min(63);
            lm[j] = (nearest_int(inv_min * mins[j]) as u8).min(63);
        }
        pack_scales_mins_k4(&ls, &lm, &mut y[SCALES..SCALES + 12]);
        wr_f16(y, D, max_scale / 63.0);
        wr_f16(y, DMIN, max_min / 63.0);
        let d = round_f16(max_scale / 63.0);
        let dmin = round_f16(max_min / 63.0);

        let (sc, mn) = scales_mins_k4(&y[SCALES..SCALES + 12]);
        for j in 0..QK_K / 32 {
            let dl = d * sc[j] as f32;
            if dl == 0.0 {
                continue;
            }
            let dm = dmin * mn[j] as f32;
            for ii in 0..32 {
                let q = nearest_int((x[32 * j + ii] + dm) / dl);
                l[32 * j + ii] = q.clamp(0, 15) as u8;
            }
        }

        let qs = &mut y[QS..QS + QK_K / 2];
        for c in 0..QK_K / 64 {
            for i in 0..32 {
                qs[32 * c + i] = l[64 * c + i] | (l[64 * c + 32 + i] << 4);
            }
        }
    }
}

/// `dequantize_row_q4_K`.
pub(crate) fn dequantize(src: &[u8], dst: &mut [f32]) {
    for (x, y) in src
        .chunks_exact(BLOCK_BYTES)
        .zip(dst.chunks_exact_mut(QK_K))
    {
        let d = rd_f16(x, D);
        let min = rd_f16(x, DMIN);
        let (sc, mn) = scales_mins_k4(&x[SCALES..SCALES + 12]);
        for c in 0..QK_K / 64 {
            let q = &x[QS + 32 * c..QS + 32 * c + 32];
            let (d1, m1) = (d * sc[2 * c] as f32, min * mn[2 * c] as f32);
            let (d2, m2) = (d * sc[2 * c + 1] as f32, min * mn[2 * c + 1] as f32);
            let out = &mut y[64 * c..64 * c + 64];
            for (i, &b) in q.iter().enumerate() {
                out[i] = d1 * (b & 0xF) as f32 - m1;
                out[32 + i] = d2 * (b >> 4) as f32 - m2;
            }
        }
    }
}

/// Q4_K · Q8_K over `nb` super-blocks (`ggml_vec_dot_q4_K_q8_K_generic`, integer sums
/// per super-block).
pub(crate) fn vec_dot_scalar(w: &[u8], a: &[u8], nb: usize) -> f32 {
    let mut sumf = 0f32;
    for (x, y) in w
        .chunks_exact(BLOCK_BYTES)
        .zip(a.chunks_exact(q8_k::BLOCK_BYTES))
        .take(nb)
    {
        let (sc, mn) = scales_mins_k4(&x[SCALES..SCALES + 12]);
        let q8 = q8_k::qs(y);

        let mut sumi_mins = 0i32;
        for j in 0..QK_K / 16 {
            sumi_mins += q8_k::bsum(y, j) * mn[j / 2] as i32;
        }

        let mut isum = 0i32;
        for c in 0..QK_K / 64 {
            let q = &x[QS + 32 * c..QS + 32 * c + 32];
            let lo = &q8[64 * c..64 * c + 32];
            let hi = &q8[64 * c + 32..64 * c + 64];
            let mut s1 = 0i32;
            let mut s2 = 0i32;
            for i in 0..32 {
                s1 += (q[i] & 0xF) as i32 * lo[i] as i8 as i32;
                s2 += (q[i] >> 4) as i32 * hi[i] as i8 as i32;
            }
            isum += sc[2 * c] as i32 * s1 + sc[2 * c + 1] as i32 * s2;
        }
        let dy = q8_k::d(y);
        sumf += rd_f16(x, D) * dy * isum as f32 - rd_f16(x, DMIN) * dy * sumi_mins as f32;
    }
    sumf
}
