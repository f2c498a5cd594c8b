//! The scale searches of ggml's K-quant reference quantizers (`ggml-quants.c`):
//! `nearest_int`, `make_qx_quants`, `make_q3_quants`, `make_qkx2_quants` and the 6-bit
//! scale packing of Q4_K/Q5_K. Written to perform the same f32 operations in the same
//! order as the C code (no fused multiply-adds: ggml-base is built without FMA), so that
//! the chosen codes and scales are bit-identical.

// Kernels index several block fields with one counter; iterator chains would hide that.
#![allow(clippy::needless_range_loop)]

pub(crate) const GROUP_MAX_EPS: f32 = 1e-15;

/// ggml's `nearest_int`: round to nearest, ties to even, by adding 1.5 * 2^23 and
/// reading the mantissa. Meaningful for |x| <= 2^22; for larger inputs it returns the
/// same garbage the C code does.
#[inline(always)]
pub(crate) fn nearest_int(fval: f32) -> i32 {
    let val = fval + 12_582_912.0;
    let i = val.to_bits() as i32;
    (i & 0x007f_ffff) - 0x0040_0000
}

/// C's `(int8_t)f` for an f32 (x86: truncate to i32, keep the low byte).
#[inline(always)]
pub(crate) fn trunc_to_i8(f: f32) -> i8 {
    trunc_to_i32(f) as i8
}

/// C's `(int)f` as compiled for x86 (`cvttss2si`): truncation toward zero, and
/// `i32::MIN` for NaN or out-of-range values.
#[inline(always)]
pub(crate) fn trunc_to_i32(f: f32) -> i32 {
    if f.abs() < 2_147_483_648.0 {
        f as i32
    } else {
        i32::MIN
    }
}

/// `make_qx_quants` (symmetric codes in `[-nmax, nmax-1]`, stored `+nmax` in `l`),
/// returning the scale. Only the paths the reference quantizers use: `rmse_type` 1 with
/// weights `x*x` (no importance matrix).
pub(crate) fn make_qx_quants_rmse1(n: usize, nmax: i32, x: &[f32], l_out: &mut [i8]) -> f32 {
    let x = &x[..n];
    let l_out = &mut l_out[..n];
    let mut max = 0f32;
    let mut amax = 0f32;
    for &v in x {
        let ax = v.abs();
        if ax > amax {
            amax = ax;
            max = v;
        }
    }
    if amax < GROUP_MAX_EPS {
        l_out.fill(0);
        return 0.0;
    }
    let nmaxf = nmax as f32;
    let mut iscale = -nmaxf / max;
    let mut sumlx = 0f32;
    let mut suml2 = 0f32;
    for (&xi, li) in x.iter().zip(l_out.iter_mut()) {
        let l = nearest_int(iscale * xi).clamp(-nmax, nmax - 1);
        *li = (l + nmax) as i8;
        let w = xi * xi;
        let lf = l as f32;
        sumlx += w * xi * lf;
        suml2 += w * lf * lf;
    }
    let mut scale = if suml2 != 0.0 { sumlx / suml2 } else { 0.0 };
    let mut best = scale * sumlx;
    for is in -9i32..=9 {
        if is == 0 {
            continue;
        }
        iscale = -(nmaxf + 0.1f32 * is as f32) / max;
        sumlx = 0.0;
        suml2 = 0.0;
        for &xi in x {
            let l = nearest_int(iscale * xi).clamp(-nmax, nmax - 1);
            let w = xi * xi;
            let lf = l as f32;
            sumlx += w * xi * lf;
            suml2 += w * lf * lf;
        }
        if suml2 > 0.0 && sumlx * sumlx > best * suml2 {
            for (&xi, li) in x.iter().zip(l_out.iter_mut()) {
                let l = nearest_int(iscale * xi);
                *li = (nmax + l.clamp(-nmax, nmax - 1)) as i8;
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    scale
}

/// `make_q3_quants(n, nmax, x, L, do_rmse = true)`: codes in `[-nmax, nmax-1]` refined
/// by coordinate descent, stored `+nmax` in `l`; returns the scale.
pub(crate) fn make_q3_quants_rmse(n: usize, nmax: i32, x: &[f32], l_out: &mut [i8]) -> f32 {
    let x = &x[..n];
    let l_out = &mut l_out[..n];
    let mut max = 0f32;
    let mut amax = 0f32;
    for &v in x {
        let ax = v.abs();
        if ax > amax {
            amax = ax;
            max = v;
        }
    }
    if amax < GROUP_MAX_EPS {
        l_out.fill(0);
        return 0.0;
    }
    let iscale = -(nmax as f32) / max;
    let mut sumlx = 0f32;
    let mut suml2 = 0f32;
    for (&xi, li) in x.iter().zip(l_out.iter_mut()) {
        let l = nearest_int(iscale * xi).clamp(-nmax, nmax - 1);
        *li = l as i8;
        let w = xi * xi;
        let lf = l as f32;
        sumlx += w * xi * lf;
        suml2 += w * lf * lf;
    }
    for _itry in 0..5 {
        let mut n_changed = 0;
        for (&xi, li) in x.iter().zip(l_out.iter_mut()) {
            let w = xi * xi;
            let lcur = *li as f32;
            let mut slx = sumlx - w * xi * lcur;
            if slx > 0.0 {
                let mut sl2 = suml2 - w * lcur * lcur;
                let new_l = nearest_int(xi * sl2 / slx).clamp(-nmax, nmax - 1);
                if new_l != *li as i32 {
                    let nl = new_l as f32;
                    slx += w * xi * nl;
                    sl2 += w * nl * nl;
                    if sl2 > 0.0 && slx * slx * suml2 > sumlx * sumlx * sl2 {
                        *li = new_l as i8;
                        sumlx = slx;
                        suml2 = sl2;
                        n_changed += 1;
                    }
                }
            }
        }
        if n_changed == 0 {
            break;
        }
    }
    for li in l_out.iter_mut() {
        *li += nmax as i8;
    }
    if suml2 > 0.0 {
        sumlx / suml2
    } else {
        0.0
    }
}

/// `make_qkx2_quants`: asymmetric codes in `[0, nmax]` with a scale and a (negated) min,
/// minimising the weighted error over a grid of candidate scales. Returns
/// `(scale, the_min)` where values are reconstructed as `scale * l - the_min`.
/// `laux` is scratch of at least `n` bytes.
#[allow(clippy::too_many_arguments)]
pub(crate) fn make_qkx2_quants(
    n: usize,
    nmax: i32,
    x: &[f32],
    weights: &[f32],
    l_out: &mut [u8],
    laux: &mut [u8],
    rmin: f32,
    rdelta: f32,
    nstep: i32,
    use_mad: bool,
) -> (f32, f32) {
    let x = &x[..n];
    let weights = &weights[..n];
    let l_out = &mut l_out[..n];
    let laux = &mut laux[..n];

    let mut min = x[0];
    let mut max = x[0];
    let mut sum_w = weights[0];
    let mut sum_x = sum_w * x[0];
    for i in 1..n {
        if x[i] < min {
            min = x[i];
        }
        if x[i] > max {
            max = x[i];
        }
        let w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if min > 0.0 {
        min = 0.0;
    }
    if max == min {
        l_out.fill(0);
        return (0.0, -min);
    }
    let nmaxf = nmax as f32;
    let mut iscale = nmaxf / (max - min);
    let mut scale = 1.0 / iscale;
    let mut best_error = 0f32;
    for i in 0..n {
        let l = nearest_int(iscale * (x[i] - min)).clamp(0, nmax);
        l_out[i] = l as u8;
        let mut diff = scale * l as f32 + min - x[i];
        diff = if use_mad { diff.abs() } else { diff * diff };
        best_error += weights[i] * diff;
    }
    if nstep < 1 {
        return (scale, -min);
    }
    for is in 0..=nstep {
        iscale = (rmin + rdelta * is as f32 + nmaxf) / (max - min);
        let mut sum_l = 0f32;
        let mut sum_l2 = 0f32;
        let mut sum_xl = 0f32;
        for i in 0..n {
            let l = nearest_int(iscale * (x[i] - min)).clamp(0, nmax);
            laux[i] = l as u8;
            let w = weights[i];
            let lf = l as f32;
            sum_l += w * lf;
            sum_l2 += w * lf * lf;
            sum_xl += w * lf * x[i];
        }
        let d = sum_w * sum_l2 - sum_l * sum_l;
        if d > 0.0 {
            let mut this_scale = (sum_w * sum_xl - sum_x * sum_l) / d;
            let mut this_min = (sum_l2 * sum_x - sum_l * sum_xl) / d;
            if this_min > 0.0 {
                this_min = 0.0;
                this_scale = sum_xl / sum_l2;
            }
            let mut cur_error = 0f32;
            for i in 0..n {
                let mut diff = this_scale * laux[i] as f32 + this_min - x[i];
                diff = if use_mad { diff.abs() } else { diff * diff };
                cur_error += weights[i] * diff;
            }
            if cur_error < best_error {
                l_out.copy_from_slice(laux);
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    (scale, -min)
}

/// `get_scale_min_k4`: the 6-bit scale and min of sub-block `j` (0..8) from the 12
/// packed scale bytes of a Q4_K/Q5_K block.
#[inline(always)]
pub(crate) fn get_scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// All eight (scale, min) pairs of a Q4_K/Q5_K block at once.
#[inline(always)]
pub(crate) fn scales_mins_k4(q: &[u8]) -> ([u8; 8], [u8; 8]) {
    let mut sc = [0u8; 8];
    let mut mn = [0u8; 8];
    for j in 0..8 {
        let (s, m) = get_scale_min_k4(j, q);
        sc[j] = s;
        mn[j] = m;
    }
    (sc, mn)
}

/// Packs eight 6-bit scales and mins into the 12 scale bytes of a Q4_K/Q5_K block, as
/// `quantize_row_q4_K_ref` does.
pub(crate) fn pack_scales_mins_k4(ls: &[u8; 8], lm: &[u8; 8], out: &mut [u8]) {
    for j in 0..8 {
        if j < 4 {
            out[j] = ls[j];
            out[j + 4] = lm[j];
        } else {
            out[j + 4] = (ls[j] & 0xF) | ((lm[j] & 0xF) << 4);
            out[j - 4] |= (ls[j] >> 4) << 6;
            out[j] |= (lm[j] >> 4) << 6;
        }
    }
}

/// The sixteen signed 6-bit scales of a Q3_K block (already minus 32).
#[inline(always)]
pub(crate) fn q3k_scales(s: &[u8]) -> [i8; 16] {
    let mut out = [0i8; 16];
    for (j, o) in out.iter_mut().enumerate() {
        let lo = if j < 8 { s[j] & 0xF } else { s[j - 8] >> 4 };
        let hi = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
        *o = ((lo | (hi << 4)) as i8) - 32;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_int_rounds_ties_to_even() {
        assert_eq!(nearest_int(0.5), 0);
        assert_eq!(nearest_int(1.5), 2);
        assert_eq!(nearest_int(2.5), 2);
        assert_eq!(nearest_int(-0.5), 0);
        assert_eq!(nearest_int(-1.5), -2);
        assert_eq!(nearest_int(-3.7), -4);
        assert_eq!(nearest_int(127.49), 127);
        for i in -1000..1000 {
            let f = i as f32 * 0.37;
            assert_eq!(nearest_int(f), f.round_ties_even() as i32, "{f}");
        }
    }

    #[test]
    fn scale_packing_round_trips() {
        let ls = [0u8, 63, 17, 42, 5, 63, 33, 1];
        let lm = [63u8, 0, 9, 60, 31, 32, 2, 63];
        let mut packed = [0u8; 12];
        pack_scales_mins_k4(&ls, &lm, &mut packed);
        assert_eq!(scales_mins_k4(&packed), (ls, lm));
    }
}
