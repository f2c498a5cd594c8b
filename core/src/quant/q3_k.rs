//! Q3_K: super-blocks of 256 weights in 16 groups of 16, symmetric 3-bit codes with
//! signed 6-bit group scales. Layout (110 bytes): `hmask: [u8; 32]` (high code bits),
//! `qs: [u8; 64]` (low 2 bits), `scales: [u8; 12]` (sixteen 6-bit scales, biased by
//! 32), `d: f16`. Value: `d * (scale[g] - 32) * (q - 4)`. Dot products take Q8_K.
//!
//! Element `e = 128*h + 32*j + l` (`h` in 0..2, `j` in 0..4, `l` in 0..32): low bits in
//! bit pair `j` of `qs[32*h + l]`, high bit in bit `4*h + j` of `hmask[l]`; group
//! `e / 16`.

// Kernels index several block fields with one counter; iterator chains would hide that.
#![allow(clippy::needless_range_loop)]

use super::k_quant_helpers::{make_q3_quants_rmse, nearest_int, q3k_scales};
use super::{q8_k, rd_f16, round_f16, wr_f16, QK_K};

pub(crate) const BLOCK_BYTES: usize = 110;
const HMASK: usize = 0;
const QS: usize = 32;
const SCALES: usize = 96;
const D: usize = 108;

/// `quantize_row_q3_K_ref`.
pub(crate) fn quantize(src: &[f32], dst: &mut [u8]) {
    let mut l = [0i8; QK_K];
    let mut scales = [0f32; QK_K / 16];
    for (x, y) in src
        .chunks_exact(QK_K)
        .zip(dst.chunks_exact_mut(BLOCK_BYTES))
    {
        let mut max_scale = 0f32;
        let mut amax = 0f32;
        for j in 0..QK_K / 16 {
            scales[j] =
                make_q3_quants_rmse(16, 4, &x[16 * j..16 * j + 16], &mut l[16 * j..16 * j + 16]);
            let scale = scales[j].abs();
            if scale > amax {
                amax = scale;
                max_scale = scales[j];
            }
        }

        let sc = &mut y[SCALES..SCALES + 12];
        sc.fill(0);
        let d = if max_scale != 0.0 {
            let iscale = -32.0 / max_scale;
            for (j, &s) in scales.iter().enumerate() {
                let li = nearest_int(iscale * s) as i8;
                let li = (li.clamp(-32, 31) + 32) as u8;
                if j < 8 {
                    sc[j] = li & 0xF;
                } else {
                    sc[j - 8] |= (li & 0xF) << 4;
                }
                sc[j % 4 + 8] |= (li >> 4) << (2 * (j / 4));
            }
            1.0 / iscale
        } else {
            0.0
        };
        let group_scales = q3k_scales(sc);
        wr_f16(y, D, d);
        let d = round_f16(d);

        for (j, &s) in group_scales.iter().enumerate() {
            let dl = d * s as f32;
            if dl == 0.0 {
                continue;
            }
            for ii in 0..16 {
                let q = nearest_int(x[16 * j + ii] / dl).clamp(-4, 3);
                l[16 * j + ii] = (q + 4) as i8;
            }
        }

        let hmask = &mut y[HMASK..HMASK + QK_K / 8];
        hmask.fill(0);
        for (j, lj) in l.iter_mut().enumerate() {
            if *lj > 3 {
                hmask[j % 32] |= 1 << (j / 32);
                *lj -= 4;
            }
        }
        let qs = &mut y[QS..QS + QK_K / 4];
        for h in 0..2 {
            let lb = &l[128 * h..128 * h + 128];
            for i in 0..32 {
                qs[32 * h + i] =
                    (lb[i] | (lb[i + 32] << 2) | (lb[i + 64] << 4) | (lb[i + 96] << 6)) as u8;
            }
        }
    }
}

/// `dequantize_row_q3_K`.
pub(crate) fn dequantize(src: &[u8], dst: &mut [f32]) {
    for (x, y) in src
        .chunks_exact(BLOCK_BYTES)
        .zip(dst.chunks_exact_mut(QK_K))
    {
        let d_all = rd_f16(x, D);
        let scales = q3k_scales(&x[SCALES..SCALES + 12]);
        let hm = &x[HMASK..HMASK + 32];
        for h in 0..2 {
            let q = &x[QS + 32 * h..QS + 32 * h + 32];
            for j in 0..4 {
                let shift = 2 * j;
                let m = 1u8 << (4 * h + j);
                for half in 0..2 {
                    let dl = d_all * scales[8 * h + 2 * j + half] as f32;
                    let out = &mut y[128 * h + 32 * j + 16 * half..][..16];
                    for (l, o) in out.iter_mut().enumerate() {
                        let i = 16 * half + l;
                        let v = ((q[i] >> shift) & 3) as i32 - if hm[i] & m != 0 { 0 } else { 4 };
                        *o = dl * v as f32;
                    }
                }
            }
        }
    }
}

/// Q3_K · Q8_K over `nb` super-blocks (`ggml_vec_dot_q3_K_q8_K_generic`, integer sums
/// per super-block).
pub(crate) fn vec_dot_scalar(w: &[u8], a: &[u8], nb: usize) -> f32 {
    let mut sumf = 0f32;
    for (x, y) in w
        .chunks_exact(BLOCK_BYTES)
        .zip(a.chunks_exact(q8_k::BLOCK_BYTES))
        .take(nb)
    {
        let scales = q3k_scales(&x[SCALES..SCALES + 12]);
        let hm = &x[HMASK..HMASK + 32];
        let q8 = q8_k::qs(y);
        // Code - 4 with the high bit set means code in 0..8 minus 4 always: dot the
        // unsigned 3-bit codes, and subtract 4 * scale * (group sum of the activations).
        let mut isum = 0i32;
        for h in 0..2 {
            let q = &x[QS + 32 * h..QS + 32 * h + 32];
            for j in 0..4 {
                let shift = 2 * j;
                let hb = 4 * h + j;
                let q8b = &q8[128 * h + 32 * j..128 * h + 32 * j + 32];
                let mut s0 = 0i32;
                let mut s1 = 0i32;
                for i in 0..16 {
                    let v0 = ((q[i] >> shift) & 3) | (((hm[i] >> hb) & 1) << 2);
                    let v1 = ((q[i + 16] >> shift) & 3) | (((hm[i + 16] >> hb) & 1) << 2);
                    s0 += v0 as i32 * q8b[i] as i8 as i32;
                    s1 += v1 as i32 * q8b[i + 16] as i8 as i32;
                }
                let g = 8 * h + 2 * j;
                isum += scales[g] as i32 * (s0 - 4 * q8_k::bsum(y, g));
                isum += scales[g + 1] as i32 * (s1 - 4 * q8_k::bsum(y, g + 1));
            }
        }
        sumf += rd_f16(x, D) * q8_k::d(y) * isum as f32;
    }
    sumf
}
