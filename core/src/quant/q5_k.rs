//! Q5_K: super-blocks of 256 weights in 8 groups of 32, asymmetric 5-bit codes with 6-bit
//! group scales and mins (packed like Q4_K). Layout (176 bytes): `d: f16`, `dmin: f16`,
//! `scales: [u8; 12]`, `qh: [u8; 32]` (fifth bits), `qs: [u8; 128]` (low nibbles).
//! Value: `d * sc[g] * q - dmin * m[g]`. Dot products take Q8_K.
//!
//! Element `64*c + l` is the low nibble of `qs[32*c + l]` plus bit `2c` of `qh[l]`;
//! element `64*c + 32 + l` the high nibble plus bit `2c + 1` (`c` in 0..4, `l` in 0..32).

// Kernels index several block fields with one counter; iterator chains would hide that.
#![allow(clippy::needless_range_loop)]

use super::k_quant_helpers::{make_qkx2_quants, nearest_int, pack_scales_mins_k4, scales_mins_k4};
use super::{q8_k, rd_f16, round_f16, wr_f16, QK_K};

pub(crate) const BLOCK_BYTES: usize = 176;
const D: usize = 0;
const DMIN: usize = 2;
const SCALES: usize = 4;
const QH: usize = 16;
const QS: usize = 48;

/// `quantize_row_q5_K_ref`.
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
                31,
                xs,
                &weights,
                &mut l[32 * j..32 * j + 32],
                &mut laux,
                -0.5,
                0.1,
                15,
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
                l[32 * j + ii] = q.clamp(0, 31) as u8;
            }
        }

        let (head, qs) = y.split_at_mut(QS);
        let qh = &mut head[QH..QH + 32];
        qh.fill(0);
        for c in 0..QK_K / 64 {
            let (m1, m2) = (1u8 << (2 * c), 2u8 << (2 * c));
            for j in 0..32 {
                let mut l1 = l[64 * c + j];
                if l1 > 15 {
                    l1 -= 16;
                    qh[j] |= m1;
                }
                let mut l2 = l[64 * c + 32 + j];
                if l2 > 15 {
                    l2 -= 16;
                    qh[j] |= m2;
                }
                qs[32 * c + j] = l1 | (l2 << 4);
            }
        }
    }
}

/// `dequantize_row_q5_K`.
pub(crate) fn dequantize(src: &[u8], dst: &mut [f32]) {
    for (x, y) in src
        .chunks_exact(BLOCK_BYTES)
        .zip(dst.chunks_exact_mut(QK_K))
    {
        let d = rd_f16(x, D);
        let min = rd_f16(x, DMIN);
        let (sc, mn) = scales_mins_k4(&x[SCALES..SCALES + 12]);
        let qh = &x[QH..QH + 32];
        for c in 0..QK_K / 64 {
            let ql = &x[QS + 32 * c..QS + 32 * c + 32];
            let (u1, u2) = (1u8 << (2 * c), 2u8 << (2 * c));
            let (d1, m1) = (d * sc[2 * c] as f32, min * mn[2 * c] as f32);
            let (d2, m2) = (d * sc[2 * c + 1] as f32, min * mn[2 * c + 1] as f32);
            let out = &mut y[64 * c..64 * c + 64];
            for i in 0..32 {
                let h1 = if qh[i] & u1 != 0 { 16 } else { 0 };
                let h2 = if qh[i] & u2 != 0 { 16 } else { 0 };
                out[i] = d1 * ((ql[i] & 0xF) + h1) as f32 - m1;
                out[32 + i] = d2 * ((ql[i] >> 4) + h2) as f32 - m2;
            }
        }
    }
}

/// Q5_K · Q8_K over `nb` super-blocks (`ggml_vec_dot_q5_K_q8_K_generic`, integer sums
/// per super-block).
pub(crate) fn vec_dot_scalar(w: &[u8], a: &[u8], nb: usize) -> f32 {
    let mut sumf = 0f32;
    for (x, y) in w
        .chunks_exact(BLOCK_BYTES)
        .zip(a.chunks_exact(q8_k::BLOCK_BYTES))
        .take(nb)
    {
        let (sc, mn) = scales_mins_k4(&x[SCALES..SCALES + 12]);
        let qh = &x[QH..QH + 32];
        let q8 = q8_k::qs(y);

        let mut sumi_mins = 0i32;
        for j in 0..QK_K / 16 {
            sumi_mins += q8_k::bsum(y, j) * mn[j / 2] as i32;
        }

        let mut isum = 0i32;
        for c in 0..QK_K / 64 {
            let ql = &x[QS + 32 * c..QS + 32 * c + 32];
            let lo = &q8[64 * c..64 * c + 32];
            let hi = &q8[64 * c + 32..64 * c + 64];
            let (s1b, s2b) = (2 * c as u32, 2 * c as u32 + 1);
            let mut s1 = 0i32;
            let mut s2 = 0i32;
            for i in 0..32 {
                let v1 = (ql[i] & 0xF) as i32 | ((((qh[i] as u32) >> s1b) & 1) << 4) as i32;
                let v2 = (ql[i] >> 4) as i32 | ((((qh[i] as u32) >> s2b) & 1) << 4) as i32;
                s1 += v1 * lo[i] as i8 as i32;
                s2 += v2 * hi[i] as i8 as i32;
            }
            isum += sc[2 * c] as i32 * s1 + sc[2 * c + 1] as i32 * s2;
        }
        let dy = q8_k::d(y);
        sumf += rd_f16(x, D) * dy * isum as f32 - rd_f16(x, DMIN) * dy * sumi_mins as f32;
    }
    sumf
}
