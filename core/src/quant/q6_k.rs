//! Q6_K: super-blocks of 256 weights in 16 groups of 16, symmetric 6-bit codes with
//! signed 8-bit group scales. Layout (210 bytes): `ql: [u8; 128]` (low nibbles),
//! `qh: [u8; 64]` (high bit pairs), `scales: [i8; 16]`, `d: f16`.
//! Value: `d * scales[g] * (q - 32)`. Dot products take Q8_K.
//!
//! For half `h` (0..2) and `l` in 0..32, with `ql = ql[64h..]`, `qh = qh[32h..]`:
//! element `128h + l` = low nibble of `ql[l]` + bits 0-1 of `qh[l]`; `+32`: low nibble
//! of `ql[l+32]` + bits 2-3; `+64`: high nibble of `ql[l]` + bits 4-5; `+96`: high
//! nibble of `ql[l+32]` + bits 6-7.

// Kernels index several block fields with one counter; iterator chains would hide that.
#![allow(clippy::needless_range_loop)]

use super::k_quant_helpers::{make_qx_quants_rmse1, nearest_int, GROUP_MAX_EPS};
use super::{q8_k, rd_f16, round_f16, wr_f16, QK_K};

pub(crate) const BLOCK_BYTES: usize = 210;
const QL: usize = 0;
const QH: usize = 128;
const SCALES: usize = 192;
const D: usize = 208;

/// `quantize_row_q6_K_ref`.
pub(crate) fn quantize(src: &[f32], dst: &mut [u8]) {
    let mut l = [0i8; QK_K];
    let mut scales = [0f32; QK_K / 16];
    for (x, y) in src
        .chunks_exact(QK_K)
        .zip(dst.chunks_exact_mut(BLOCK_BYTES))
    {
        let mut max_scale = 0f32;
        let mut max_abs_scale = 0f32;
        for ib in 0..QK_K / 16 {
            let scale = make_qx_quants_rmse1(
                16,
                32,
                &x[16 * ib..16 * ib + 16],
                &mut l[16 * ib..16 * ib + 16],
            );
            scales[ib] = scale;
            let abs_scale = scale.abs();
            if abs_scale > max_abs_scale {
                max_abs_scale = abs_scale;
                max_scale = scale;
            }
        }
        if max_abs_scale < GROUP_MAX_EPS {
            y.fill(0);
            continue;
        }

        let iscale = -128.0 / max_scale;
        wr_f16(y, D, 1.0 / iscale);
        let d = round_f16(1.0 / iscale);
        let mut sc = [0i8; QK_K / 16];
        for (s, &v) in sc.iter_mut().zip(&scales) {
            *s = nearest_int(iscale * v).min(127) as i8;
        }
        for (j, &s) in sc.iter().enumerate() {
            let dl = d * s as f32;
            if dl == 0.0 {
                continue;
            }
            for ii in 0..16 {
                let q = nearest_int(x[16 * j + ii] / dl).clamp(-32, 31);
                l[16 * j + ii] = (q + 32) as i8;
            }
        }
        for (o, &s) in y[SCALES..SCALES + 16].iter_mut().zip(&sc) {
            *o = s as u8;
        }

        let (ql_all, rest) = y.split_at_mut(QH);
        let qh_all = &mut rest[..64];
        for h in 0..2 {
            let lb = &l[128 * h..128 * h + 128];
            let ql = &mut ql_all[64 * h..64 * h + 64];
            let qh = &mut qh_all[32 * h..32 * h + 32];
            for i in 0..32 {
                let (l1, l2, l3, l4) = (
                    lb[i] as u8,
                    lb[i + 32] as u8,
                    lb[i + 64] as u8,
                    lb[i + 96] as u8,
                );
                ql[i] = (l1 & 0xF) | ((l3 & 0xF) << 4);
                ql[i + 32] = (l2 & 0xF) | ((l4 & 0xF) << 4);
                qh[i] = (l1 >> 4) | ((l2 >> 4) << 2) | ((l3 >> 4) << 4) | ((l4 >> 4) << 6);
            }
        }
    }
}

/// The four codes (minus 32) stored at position `i` (0..32) of half `h`.
#[inline(always)]
fn codes(ql: &[u8], qh: &[u8], i: usize) -> [i32; 4] {
    let h = qh[i];
    [
        ((ql[i] & 0xF) | ((h & 3) << 4)) as i32 - 32,
        ((ql[i + 32] & 0xF) | (((h >> 2) & 3) << 4)) as i32 - 32,
        ((ql[i] >> 4) | (((h >> 4) & 3) << 4)) as i32 - 32,
        ((ql[i + 32] >> 4) | (((h >> 6) & 3) << 4)) as i32 - 32,
    ]
}

/// `dequantize_row_q6_K`.
pub(crate) fn dequantize(src: &[u8], dst: &mut [f32]) {
    for (x, y) in src
        .chunks_exact(BLOCK_BYTES)
        .zip(dst.chunks_exact_mut(QK_K))
    {
        let d = rd_f16(x, D);
        for h in 0..2 {
            let ql = &x[QL + 64 * h..QL + 64 * h + 64];
            let qh = &x[QH + 32 * h..QH + 32 * h + 32];
            let sc = &x[SCALES + 8 * h..SCALES + 8 * h + 8];
            let out = &mut y[128 * h..128 * h + 128];
            for i in 0..32 {
                let is = i / 16;
                let q = codes(ql, qh, i);
                for k in 0..4 {
                    out[i + 32 * k] = d * sc[is + 2 * k] as i8 as f32 * q[k] as f32;
                }
            }
        }
    }
}

/// Q6_K · Q8_K over `nb` super-blocks (`ggml_vec_dot_q6_K_q8_K_generic`, integer sums
/// per super-block).
pub(crate) fn vec_dot_scalar(w: &[u8], a: &[u8], nb: usize) -> f32 {
    let mut sumf = 0f32;
    for (x, y) in w
        .chunks_exact(BLOCK_BYTES)
        .zip(a.chunks_exact(q8_k::BLOCK_BYTES))
        .take(nb)
    {
        let q8 = q8_k::qs(y);
        // sum((q - 32) * y) over a group = sum(q * y) - 32 * (group sum of y).
        let mut isum = 0i32;
        for h in 0..2 {
            let ql = &x[QL + 64 * h..QL + 64 * h + 64];
            let qh = &x[QH + 32 * h..QH + 32 * h + 32];
            let sc = &x[SCALES + 8 * h..SCALES + 8 * h + 8];
            for k in 0..4 {
                let lo = &ql[32 * (k & 1)..32 * (k & 1) + 32];
                let lshift = 4 * (k >> 1);
                let hshift = 2 * k;
                for is in 0..2 {
                    let g = 2 * k + is;
                    let q8g = &q8[128 * h + 32 * k + 16 * is..][..16];
                    let mut s = 0i32;
                    for i in 0..16 {
                        let e = 16 * is + i;
                        let q = ((lo[e] >> lshift) & 0xF) | (((qh[e] >> hshift) & 3) << 4);
                        s += q as i32 * q8g[i] as i8 as i32;
                    }
                    isum += sc[g] as i8 as i32 * (s - 32 * q8_k::bsum(y, 8 * h + g));
                }
            }
        }
        sumf += rd_f16(x, D) * q8_k::d(y) * isum as f32;
    }
    sumf
}
