//! Q2_K: super-blocks of 256 weights in 16 groups of 16. Layout (84 bytes):
//! `scales: [u8; 16]` (low nibble: 4-bit scale, high nibble: 4-bit min of each group),
//! `qs: [u8; 64]` (2-bit codes), `d: f16`, `dmin: f16`. Value of code `q` in group `g`:
//! `d * (scales[g] & 15) * q - dmin * (scales[g] >> 4)`. Dot products take Q8_K.
//!
//! Code order: byte `qs[32*h + l]` holds, in bit pairs 0-1, 2-3, 4-5, 6-7, elements
//! `128*h + l`, `+32`, `+64`, `+96` (`h` in 0..2, `l` in 0..32).

// Kernels index several block fields with one counter; iterator chains would hide that.
#![allow(clippy::needless_range_loop)]

use super::k_quant_helpers::{make_qkx2_quants, nearest_int};
use super::{q8_k, rd_f16, round_f16, wr_f16, QK_K};

pub(crate) const BLOCK_BYTES: usize = 84;
const SCALES: usize = 0;
const QS: usize = 16;
const D: usize = 80;
const DMIN: usize = 82;

/// `quantize_row_q2_K_ref`.
pub(crate) fn quantize(src: &[f32], dst: &mut [u8]) {
    const Q4SCALE: f32 = 15.0;
    let mut l = [0u8; QK_K];
    let mut laux = [0u8; 16];
    let mut weights = [0f32; 16];
    let mut mins = [0f32; QK_K / 16];
    let mut scales = [0f32; QK_K / 16];

    for (x, y) in src
        .chunks_exact(QK_K)
        .zip(dst.chunks_exact_mut(BLOCK_BYTES))
    {
        let mut max_scale = 0f32;
        let mut max_min = 0f32;
        for j in 0..QK_K / 16 {
            let xs = &x[16 * j..16 * j + 16];
            for (w, &v) in weights.iter_mut().zip(xs) {
                *w = v.abs();
            }
            let (scale, min) = make_qkx2_quants(
                16,
                3,
                xs,
                &weights,
                &mut l[16 * j..16 * j + 16],
                &mut laux,
                -0.5,
                0.1,
                15,
                true,
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

        let sc = &mut y[SCALES..SCALES + 16];
        let d = if max_scale > 0.0 {
            let iscale = Q4SCALE / max_scale;
            for (s, &v) in sc.iter_mut().zip(&scales) {
                *s = nearest_int(iscale * v) as u8;
            }
            max_scale / Q4SCALE
        } else {
            sc.fill(0);
            0.0
        };
        let dmin = if max_min > 0.0 {
            let iscale = Q4SCALE / max_min;
            for (s, &v) in sc.iter_mut().zip(&mins) {
                *s |= (nearest_int(iscale * v) << 4) as u8;
            }
            max_min / Q4SCALE
        } else {
            0.0
        };
        let mut scb = [0u8; 16];
        scb.copy_from_slice(sc);
        wr_f16(y, D, d);
        wr_f16(y, DMIN, dmin);
        let (d, dmin) = (round_f16(d), round_f16(dmin));

        for (j, &s) in scb.iter().enumerate() {
            let dl = d * (s & 0xF) as f32;
            if dl == 0.0 {
                continue;
            }
            let dm = dmin * (s >> 4) as f32;
            for ii in 0..16 {
                let q = nearest_int((x[16 * j + ii] + dm) / dl);
                l[16 * j + ii] = q.clamp(0, 3) as u8;
            }
        }

        let qs = &mut y[QS..QS + QK_K / 4];
        for h in 0..2 {
            let lb = &l[128 * h..128 * h + 128];
            for i in 0..32 {
                qs[32 * h + i] = lb[i] | (lb[i + 32] << 2) | (lb[i + 64] << 4) | (lb[i + 96] << 6);
            }
        }
    }
}

/// `dequantize_row_q2_K`.
pub(crate) fn dequantize(src: &[u8], dst: &mut [f32]) {
    for (x, y) in src
        .chunks_exact(BLOCK_BYTES)
        .zip(dst.chunks_exact_mut(QK_K))
    {
        let d = rd_f16(x, D);
        let min = rd_f16(x, DMIN);
        let sc = &x[SCALES..SCALES + 16];
        let qs = &x[QS..QS + QK_K / 4];
        for h in 0..2 {
            let q = &qs[32 * h..32 * h + 32];
            for j in 0..4 {
                let shift = 2 * j;
                for half in 0..2 {
                    let s = sc[8 * h + 2 * j + half];
                    let dl = d * (s & 0xF) as f32;
                    let ml = min * (s >> 4) as f32;
                    let out = &mut y[128 * h + 32 * j + 16 * half..][..16];
                    for (l, o) in out.iter_mut().enumerate() {
                        *o = dl * ((q[16 * half + l] >> shift) & 3) as f32 - ml;
                    }
                }
            }
        }
    }
}

/// Q2_K · Q8_K over `nb` super-blocks (`ggml_vec_dot_q2_K_q8_K_generic`, integer sums
/// per super-block).
pub(crate) fn vec_dot_scalar(w: &[u8], a: &[u8], nb: usize) -> f32 {
    let mut sumf = 0f32;
    for (x, y) in w
        .chunks_exact(BLOCK_BYTES)
        .zip(a.chunks_exact(q8_k::BLOCK_BYTES))
        .take(nb)
    {
        let sc = &x[SCALES..SCALES + 16];
        let qs = &x[QS..QS + QK_K / 4];
        let q8 = q8_k::qs(y);

        let mut summs = 0i32;
        for (j, &s) in sc.iter().enumerate() {
            summs += q8_k::bsum(y, j) * (s >> 4) as i32;
        }

        let mut isum = 0i32;
        for h in 0..2 {
            let q2 = &qs[32 * h..32 * h + 32];
            for j in 0..4 {
                let shift = 2 * j;
                let q8b = &q8[128 * h + 32 * j..128 * h + 32 * j + 32];
                let mut s0 = 0i32;
                let mut s1 = 0i32;
                for l in 0..16 {
                    s0 += q8b[l] as i8 as i32 * ((q2[l] >> shift) & 3) as i32;
                    s1 += q8b[l + 16] as i8 as i32 * ((q2[l + 16] >> shift) & 3) as i32;
                }
                isum += (sc[8 * h + 2 * j] & 0xF) as i32 * s0;
                isum += (sc[8 * h + 2 * j + 1] & 0xF) as i32 * s1;
            }
        }
        let dall = q8_k::d(y) * rd_f16(x, D);
        let dmin = q8_k::d(y) * rd_f16(x, DMIN);
        sumf += dall * isum as f32 - dmin * summs as f32;
    }
    sumf
}
