//! WebAssembly SIMD128 kernels of one attention head, bit-identical to the scalar
//! `head_scalar` of `attention.rs`: every lane of every `f32x4` below is one of the
//! scalar code's lane variables and goes through the same operations in the same
//! order, so only the instruction count changes (`cargo test -p wasm-chord-core
//! --test attention_simd` compares the two bit for bit).
//!
//! The fused multiply-adds are `f32x4.relaxed_madd` when built with relaxed-SIMD and
//! the engine fuses it (probed once, as the quantized kernels do), else an exact
//! emulation through `f64x2` lanes ([`fma_exact`]), the vector form of the scalar
//! code's `fma_via_f64`.

use core::arch::wasm32::*;

use super::attention::{AttnKernel, Head};
use super::ggml_order::{fma, hsum16, reduce_dot_lanes, soft_max_exp, DOT_STEP, LANES};

/// One head: `out = softmax(K·q * scale) · V` for the cache rows of `h`.
pub(super) fn head(h: &Head, scores: &mut [f32], acc: &mut [f32], out: &mut [f32]) {
    #[cfg(target_feature = "relaxed-simd")]
    if crate::quant::simd128::madd_is_fused() {
        return head_with::<true>(h, scores, acc, out);
    }
    head_with::<false>(h, scores, acc, out)
}

#[inline(always)]
fn head_with<const FUSED: bool>(h: &Head, scores: &mut [f32], acc: &mut [f32], out: &mut [f32]) {
    let head_dim = out.len();
    let lanes = h.kernel.lanes();
    let mut max = f32::NEG_INFINITY;
    for (p, s) in scores.iter_mut().enumerate() {
        *s = vec_dot_f32::<FUSED>(h.key(p), h.q) * h.scale;
        max = max.max(*s);
    }
    let inv = (1.0 / soft_max_exp(scores, max)) as f32;

    acc.fill(0.0);
    for (p, &s) in scores.iter().enumerate() {
        let w = s * inv;
        axpy::<FUSED>(
            &mut acc[(p % lanes) * head_dim..][..head_dim],
            h.value(p),
            w,
        );
    }
    match h.kernel {
        AttnKernel::Batch => reduce16(acc, out),
        AttnKernel::Single => reduce64(acc, out),
    }
}

/// `a * b + c` per lane, rounded once; `FUSED` says `f32x4.relaxed_madd` is fused here.
#[inline(always)]
fn fma4<const FUSED: bool>(a: v128, b: v128, c: v128) -> v128 {
    #[cfg(target_feature = "relaxed-simd")]
    if FUSED {
        return f32x4_relaxed_madd(a, b, c);
    }
    fma_exact(a, b, c)
}

/// Exact `a * b + c` per lane without a fused instruction: the product of two `f32` is
/// exact in `f64`, so the `f64` sum is rounded once, and rounding it to `f32` is the
/// correctly rounded result unless it lies exactly halfway between two `f32` (double
/// rounding) or the result is zero or subnormal (where the `f32` grid is coarser than
/// the halfway test assumes). Those lanes take the scalar route, which handles them.
#[inline(always)]
fn fma_exact(a: v128, b: v128, c: v128) -> v128 {
    let high = |v: v128| i32x4_shuffle::<2, 3, 2, 3>(v, v);
    let s_lo = f64x2_add(
        f64x2_mul(f64x2_promote_low_f32x4(a), f64x2_promote_low_f32x4(b)),
        f64x2_promote_low_f32x4(c),
    );
    let s_hi = f64x2_add(
        f64x2_mul(
            f64x2_promote_low_f32x4(high(a)),
            f64x2_promote_low_f32x4(high(b)),
        ),
        f64x2_promote_low_f32x4(high(c)),
    );
    let r =
        i32x4_shuffle::<0, 1, 4, 5>(f32x4_demote_f64x2_zero(s_lo), f32x4_demote_f64x2_zero(s_hi));
    let low = u64x2_splat(0x1FFF_FFFF);
    let half = u64x2_splat(0x1000_0000);
    let tie = v128_or(
        i64x2_eq(v128_and(s_lo, low), half),
        i64x2_eq(v128_and(s_hi, low), half),
    );
    // `<=`: an `f64` sum just below the smallest normal `f32` may round up to it.
    let tiny = f32x4_le(f32x4_abs(r), f32x4_splat(f32::MIN_POSITIVE));
    if v128_any_true(v128_or(tie, tiny)) {
        return fma_lanes(a, b, c);
    }
    r
}

#[cold]
#[inline(never)]
fn fma_lanes(a: v128, b: v128, c: v128) -> v128 {
    f32x4(
        fma(
            f32x4_extract_lane::<0>(a),
            f32x4_extract_lane::<0>(b),
            f32x4_extract_lane::<0>(c),
        ),
        fma(
            f32x4_extract_lane::<1>(a),
            f32x4_extract_lane::<1>(b),
            f32x4_extract_lane::<1>(c),
        ),
        fma(
            f32x4_extract_lane::<2>(a),
            f32x4_extract_lane::<2>(b),
            f32x4_extract_lane::<2>(c),
        ),
        fma(
            f32x4_extract_lane::<3>(a),
            f32x4_extract_lane::<3>(b),
            f32x4_extract_lane::<3>(c),
        ),
    )
}

/// Four floats at `s[i..i + 4]`.
#[inline(always)]
fn ld(s: &[f32], i: usize) -> v128 {
    let c = &s[i..i + 4];
    // SAFETY: `c` is 16 readable bytes; `v128_load` has no alignment requirement.
    unsafe { v128_load(c.as_ptr() as *const v128) }
}

#[inline(always)]
fn st(s: &mut [f32], i: usize, v: v128) {
    let c = &mut s[i..i + 4];
    // SAFETY: `c` is 16 writable bytes; `v128_store` has no alignment requirement.
    unsafe { v128_store(c.as_mut_ptr() as *mut v128, v) }
}

/// `ggml_order::vec_dot_f32`: its 64 lanes are 16 vectors `A0..A16` (lanes `4i..4i+4`).
/// `reduce_dot_lanes` adds lanes `l`, `l+16`, `l+32`, `l+48`, i.e. vectors `v`, `v+4`,
/// `v+8`, `v+12` for `v` in 0..4, so each of those four groups is accumulated over the
/// steps and reduced at once (lanes are independent: the order within each is kept).
#[inline(always)]
fn vec_dot_f32<const FUSED: bool>(x: &[f32], y: &[f32]) -> f32 {
    let n = x.len().min(y.len());
    let np = n - n % DOT_STEP;
    let (x, y) = (&x[..n], &y[..n]);
    let mut r = [f32x4_splat(0.0); 4];
    for (v, rv) in r.iter_mut().enumerate() {
        let mut a = [f32x4_splat(0.0); 4];
        for s in (0..np).step_by(DOT_STEP) {
            for (g, ag) in a.iter_mut().enumerate() {
                let i = s + 4 * v + LANES * g;
                *ag = fma4::<FUSED>(ld(x, i), ld(y, i), *ag);
            }
        }
        *rv = f32x4_add(f32x4_add(a[0], a[2]), f32x4_add(a[1], a[3]));
    }
    let mut sum = hsum16x4(r);
    for i in np..n {
        sum = fma(x[i], y[i], sum);
    }
    sum
}

/// `hsum16` of the 16 lanes `r[0] | r[1] | r[2] | r[3]`.
#[inline(always)]
fn hsum16x4(r: [v128; 4]) -> f32 {
    let h = f32x4_add(
        f32x4_add(r[0], r[2]), // lanes i + (i + 8), i in 0..4
        f32x4_add(r[1], r[3]), // lanes i + (i + 8), i in 4..8
    );
    let t = f32x4_add(h, i32x4_shuffle::<2, 3, 0, 1>(h, h));
    f32x4_extract_lane::<0>(t) + f32x4_extract_lane::<1>(t)
}

/// `acc[i] = fma(v[i], w, acc[i])`.
#[inline(always)]
fn axpy<const FUSED: bool>(acc: &mut [f32], v: &[f32], w: f32) {
    let n = acc.len().min(v.len());
    let n4 = n - n % 4;
    let wv = f32x4_splat(w);
    for i in (0..n4).step_by(4) {
        let a = fma4::<FUSED>(ld(v, i), wv, ld(acc, i));
        st(acc, i, a);
    }
    for i in n4..n {
        acc[i] = fma(v[i], w, acc[i]);
    }
}

/// `out[d] = hsum16(acc[l * head_dim + d] for l in 0..16)`, four `d` at a time.
#[inline(always)]
fn reduce16(acc: &[f32], out: &mut [f32]) {
    let hd = out.len();
    let hd4 = hd - hd % 4;
    for d in (0..hd4).step_by(4) {
        let v = |l: usize| ld(acc, l * hd + d);
        let h: [v128; 8] = core::array::from_fn(|i| f32x4_add(v(i), v(i + 8)));
        let q: [v128; 4] = core::array::from_fn(|i| f32x4_add(h[i], h[i + 4]));
        st(
            out,
            d,
            f32x4_add(f32x4_add(q[0], q[2]), f32x4_add(q[1], q[3])),
        );
    }
    for d in hd4..hd {
        out[d] = hsum16(&core::array::from_fn(|l| acc[l * hd + d]));
    }
}

/// `out[d] = reduce_dot_lanes(acc[l * head_dim + d] for l in 0..64)`, four `d` at a
/// time.
#[inline(always)]
fn reduce64(acc: &[f32], out: &mut [f32]) {
    let hd = out.len();
    let hd4 = hd - hd % 4;
    for d in (0..hd4).step_by(4) {
        let v = |l: usize| ld(acc, l * hd + d);
        let r: [v128; LANES] = core::array::from_fn(|l| {
            f32x4_add(
                f32x4_add(v(l), v(l + 2 * LANES)),
                f32x4_add(v(l + LANES), v(l + 3 * LANES)),
            )
        });
        let h: [v128; 8] = core::array::from_fn(|i| f32x4_add(r[i], r[i + 8]));
        let q: [v128; 4] = core::array::from_fn(|i| f32x4_add(h[i], h[i + 4]));
        st(
            out,
            d,
            f32x4_add(f32x4_add(q[0], q[2]), f32x4_add(q[1], q[3])),
        );
    }
    for d in hd4..hd {
        out[d] = reduce_dot_lanes(&core::array::from_fn(|l| acc[l * hd + d]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `fma_exact` against the correctly rounded `f32::mul_add` on random operands,
    /// on sums crafted to fall on and next to halfway points between two `f32`, and on
    /// zero, subnormal and overflowing results.
    #[test]
    fn exact_fma_emulation_rounds_like_mul_add() {
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        // Random sign and mantissa, biased exponent in `lo..lo + span`.
        let float = |r: u64, lo: u32, span: u64| {
            f32::from_bits((r as u32 & 0x807f_ffff) | ((lo + ((r >> 32) % span) as u32) << 23))
        };
        let check = |a: f32, b: f32, c: f32| {
            let want = a.mul_add(b, c);
            let got = f32x4_extract_lane::<2>(fma_exact(
                f32x4(1.0, 2.0, a, 3.0),
                f32x4(1.0, 2.0, b, 3.0),
                f32x4(0.0, 0.0, c, 0.0),
            ));
            assert!(
                got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
                "fma({a:e}, {b:e}, {c:e}): {got:e} vs {want:e}"
            );
        };
        for i in 0..100_000 {
            let (a, b) = (float(next(), 100, 50), float(next(), 100, 50));
            let c = if i % 2 == 0 {
                float(next(), 60, 160)
            } else {
                // `a * b` about half an ulp of `c`: the double-rounding cases.
                let p = a as f64 * b as f64;
                let e = (p.abs().log2().floor() as i32 + 24).clamp(-120, 120);
                let base = 2f64.powi(e) * if next() % 2 == 0 { 1.0 } else { -1.0 };
                (base + (next() % 5) as f64 * 2f64.powi(e - 23)) as f32
            };
            check(a, b, c);
        }
        let tiny = f32::MIN_POSITIVE;
        for (a, b, c) in [
            (1e-20, 1e-20, 0.0),
            (1e-20, -1e-20, 0.0),
            (tiny, 0.5, 0.0),
            (tiny, 1.0 - f32::EPSILON / 2.0, 0.0),
            (tiny, 1.0, -tiny),
            (0.0, -1.0, 0.0),
            (-0.0, 1.0, -0.0),
            (f32::MAX, 2.0, 0.0),
            (f32::MAX, 1.0, f32::MAX),
            (f32::INFINITY, 0.0, 1.0),
            (f32::NAN, 1.0, 1.0),
        ] {
            check(a, b, c);
        }
    }
}
