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
use super::ggml_order::{fma, hsum16, reduce_dot_lanes, DOT_STEP, LANES};

/// The heads of one KV group: `out[j] = softmax(K·q[j] * scale) · V` for the cache
/// rows of `h`, whose `q` holds the group's queries back to back (`out.len()` values).
/// Each key row is loaded once for the whole group (`scores` holds one row of scores
/// per head), then each head's softmax and values as alone.
pub(super) fn group(h: &Head, scores: &mut [f32], acc: &mut [f32], out: &mut [f32]) {
    #[cfg(target_feature = "relaxed-simd")]
    if crate::quant::simd128::madd_is_fused() {
        return group_with::<true>(h, scores, acc, out);
    }
    group_with::<false>(h, scores, acc, out)
}

#[inline(always)]
fn group_with<const FUSED: bool>(h: &Head, scores: &mut [f32], acc: &mut [f32], out: &mut [f32]) {
    let head_dim = h.head_dim;
    let n = scores.len() * head_dim / out.len();
    key_scores::<FUSED>(h, scores);
    for (s, o) in scores
        .chunks_exact_mut(n)
        .zip(out.chunks_exact_mut(head_dim))
    {
        let max = s
            .iter()
            .fold(f32::NEG_INFINITY, |m, &v| crate::math::max_f32(m, v));
        values::<FUSED>(h, s, max, acc, o);
    }
}

/// The softmax of one head's `scores` (`max` their maximum) and the weighted sum of
/// the values into `out`.
#[inline(always)]
fn values<const FUSED: bool>(
    h: &Head,
    scores: &mut [f32],
    max: f32,
    acc: &mut [f32],
    out: &mut [f32],
) {
    let head_dim = out.len();
    let lanes = h.kernel.lanes();
    let inv = (1.0 / soft_max_exp::<FUSED>(scores, max)) as f32;

    // Lane `l` sums the weighted values of positions `l, l + lanes, ...` in order; 32
    // columns of a lane at a time stay in registers over all its positions.
    let n = scores.len();
    for (l, row) in acc.chunks_exact_mut(head_dim).enumerate() {
        let mut c = 0;
        while c + 32 <= head_dim {
            lane_block::<FUSED, 8>(h, scores, inv, l, c, row);
            c += 32;
        }
        while c + 4 <= head_dim {
            lane_block::<FUSED, 1>(h, scores, inv, l, c, row);
            c += 4;
        }
        for (c, r) in row.iter_mut().enumerate().skip(c) {
            let mut a = 0.0;
            for p in (l..n).step_by(lanes) {
                a = fma(h.value(p)[c], scores[p] * inv, a);
            }
            *r = a;
        }
    }
    match h.kernel {
        AttnKernel::Batch => reduce16(acc, out),
        AttnKernel::Single => reduce64(acc, out),
    }
}

/// `scores[j * n + p] = K[p]·q[j] * scale` for every cache row `p` (`n` of them) and
/// every query `j` of `h.q` (`head_dim` values each), the queries of one key row one
/// after the other while it is in cache.
///
/// This and the other passes of a head are functions of their own
/// (`#[inline(never)]`): inlined into one large function, Cranelift's register
/// allocator spilled and reloaded the accumulators at every position.
#[inline(never)]
fn key_scores<const FUSED: bool>(h: &Head, scores: &mut [f32]) {
    let head_dim = h.head_dim;
    let heads = h.q.len() / head_dim;
    let n = scores.len() / heads;
    for p in 0..n {
        // Before a sliding window: masked, as the scalar code.
        if p < h.first {
            (0..heads).for_each(|j| scores[j * n + p] = f32::NEG_INFINITY);
            continue;
        }
        let k = h.key(p);
        for (j, q) in h.q.chunks_exact(head_dim).enumerate() {
            scores[j * n + p] = vec_dot_f32::<FUSED>(k, q) * h.scale;
        }
    }
}

/// `ggml_order::soft_max_exp`, a group of 16 at a time: the same [`expf4`] lanes, the
/// same `hsum16` per group, the group sums added in `f64` in order. A last group
/// shorter than 16 is padded, and its padding lanes zeroed before the sum, as the
/// scalar code's.
#[inline(never)]
fn soft_max_exp<const FUSED: bool>(y: &mut [f32], max: f32) -> f64 {
    let m = f32x4_splat(max);
    let mut sum = 0f64;
    for group in y.chunks_mut(LANES) {
        let len = group.len();
        let mut buf = [0f32; LANES];
        buf[..len].copy_from_slice(group);
        let e: [v128; 4] = core::array::from_fn(|i| expf4::<FUSED>(f32x4_sub(ld(&buf, 4 * i), m)));
        for (i, &ei) in e.iter().enumerate() {
            st(&mut buf, 4 * i, ei);
        }
        group.copy_from_slice(&buf[..len]);
        if len < LANES {
            buf[len..].fill(0.0);
            sum += hsum16(&buf) as f64;
        } else {
            sum += hsum16x4(e) as f64;
        }
    }
    sum
}

/// `ggml_order::expf` on four lanes: the same fused multiply-adds, products and
/// `scalef` (an exact `f64` product rounded once), and the same out-of-range results.
#[inline(always)]
pub(super) fn expf4<const FUSED: bool>(x: v128) -> v128 {
    let c = |bits: u32| f32x4_splat(f32::from_bits(bits));
    let r = c(0x4b40_0000);
    let z = fma4::<FUSED>(x, c(0x3fb8_aa3b), r);
    let n = f32x4_sub(z, r);
    let neg_n = f32x4_neg(n);
    let b = fma4::<FUSED>(
        neg_n,
        c(0x35bf_be8e),
        fma4::<FUSED>(neg_n, c(0x3f31_7200), x),
    );
    let u = f32x4_mul(b, b);
    let j = fma4::<FUSED>(
        fma4::<FUSED>(
            fma4::<FUSED>(c(0x3c07_2010), b, c(0x3d2b_9f17)),
            u,
            fma4::<FUSED>(c(0x3e2a_af33), b, c(0x3eff_fedb)),
        ),
        u,
        fma4::<FUSED>(c(0x3f7f_fff6), b, f32x4_splat(1.0)),
    );
    // scalef: `n` is an integer here (NaN lanes give 0, as `n as i64` does).
    let e = i32x4_add(i32x4_trunc_sat_f32x4(n), i32x4_splat(1023));
    let pow2 = |e: v128| i64x2_shl(e, 52);
    let high = |v: v128| i32x4_shuffle::<2, 3, 2, 3>(v, v);
    let lo = f64x2_mul(f64x2_promote_low_f32x4(j), pow2(i64x2_extend_low_i32x4(e)));
    let hi = f64x2_mul(
        f64x2_promote_low_f32x4(high(j)),
        pow2(i64x2_extend_high_i32x4(e)),
    );
    let scaled =
        i32x4_shuffle::<0, 1, 4, 5>(f32x4_demote_f64x2_zero(lo), f32x4_demote_f64x2_zero(hi));
    // |n| > 192: 0 below, +inf above.
    let out = f32x4_gt(f32x4_abs(n), f32x4_splat(192.0));
    let limit = v128_and(f32x4_gt(n, f32x4_splat(0.0)), f32x4_splat(f32::INFINITY));
    v128_bitselect(limit, scaled, out)
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
    if n == DOT_STEP {
        // One step (heads of 64): straight-line code. The loops below would each be
        // entered once per key, and Wasmtime checks its epoch at every loop header.
        let r: [v128; 4] = core::array::from_fn(|v| {
            let a: [v128; 4] = core::array::from_fn(|g| {
                let i = 4 * v + LANES * g;
                fma4::<FUSED>(ld(x, i), ld(y, i), f32x4_splat(0.0))
            });
            f32x4_add(f32x4_add(a[0], a[2]), f32x4_add(a[1], a[3]))
        });
        return hsum16x4(r);
    }
    let np = n - n % DOT_STEP;
    let (x, y) = (&x[..n], &y[..n]);
    let steps = || {
        x[..np]
            .chunks_exact(DOT_STEP)
            .zip(y[..np].chunks_exact(DOT_STEP))
    };
    let mut r = [f32x4_splat(0.0); 4];
    for (v, rv) in r.iter_mut().enumerate() {
        let mut a = [f32x4_splat(0.0); 4];
        for (xs, ys) in steps() {
            for (g, ag) in a.iter_mut().enumerate() {
                let i = 4 * v + LANES * g;
                *ag = fma4::<FUSED>(ld(xs, i), ld(ys, i), *ag);
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

/// Columns `c..c + 4V` of lane `l`'s accumulator row: `fma(value, weight, acc)` over the
/// positions `l, l + lanes, ...` in order, from zero.
#[inline(never)]
fn lane_block<const FUSED: bool, const V: usize>(
    h: &Head,
    scores: &[f32],
    inv: f32,
    l: usize,
    c: usize,
    row: &mut [f32],
) {
    let mut a = [f32x4_splat(0.0); V];
    for p in (l..scores.len()).step_by(h.kernel.lanes()) {
        let w = f32x4_splat(scores[p] * inv);
        let v = &h.value(p)[c..c + 4 * V];
        for (i, ai) in a.iter_mut().enumerate() {
            *ai = fma4::<FUSED>(ld(v, 4 * i), w, *ai);
        }
    }
    for (i, &ai) in a.iter().enumerate() {
        st(row, c + 4 * i, ai);
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
        let mut ties = 0;
        for _ in 0..100_000 {
            check(
                float(next(), 100, 50),
                float(next(), 100, 50),
                float(next(), 60, 160),
            );
            // `a * b = ±ulp(c) / 2 * (1 - k^2 2^-46)`: the exact sum lies just off a
            // halfway point, the `f64` sum rounds onto it (the double-rounding case).
            let c = float(next(), 100, 50);
            let k = (next() % 4 + 1) as f32;
            let half_ulp = f32::from_bits(c.to_bits() & 0x7f80_0000) * f32::EPSILON / 2.0;
            let sign = if next() % 2 == 0 { 1.0 } else { -1.0 };
            let a = 1.0 + k * f32::EPSILON;
            let b = sign * half_ulp * (1.0 - k * f32::EPSILON);
            let t = a as f64 * b as f64 + c as f64;
            if t.to_bits() & 0x1FFF_FFFF == 0x1000_0000 {
                ties += 1;
            }
            check(a, b, c);
        }
        // The halfway (slow) path was exercised.
        assert!(ties > 100, "{ties} halfway sums");
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

    /// `expf4` against the scalar `expf`, bit for bit, with both fused multiply-adds
    /// this build and engine can run: over the whole range (normal, subnormal, zero
    /// and infinite results), at the range limits and on non-finite inputs.
    #[test]
    fn vector_expf_matches_the_scalar_one() {
        use super::super::ggml_order::expf;
        let check = |x: [f32; 4], got: v128| {
            for (k, &xk) in x.iter().enumerate() {
                let g = f32x4_extract_lane::<0>(match k {
                    0 => got,
                    1 => i32x4_shuffle::<1, 1, 1, 1>(got, got),
                    2 => i32x4_shuffle::<2, 2, 2, 2>(got, got),
                    _ => i32x4_shuffle::<3, 3, 3, 3>(got, got),
                });
                let want = expf(xk);
                assert!(
                    g.to_bits() == want.to_bits() || (g.is_nan() && want.is_nan()),
                    "expf({xk:e}): {g:e} vs {want:e}"
                );
            }
        };
        let mut xs: Vec<f32> = (-140_000..=100_000)
            .map(|i| i as f32 * 0.001 + 1e-4)
            .collect();
        xs.extend([
            0.0,
            -0.0,
            -87.33655,
            -103.97208,
            -133.08,
            88.72284,
            88.72283,
            133.08,
            -133.09,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            f32::MAX,
            f32::MIN,
        ]);
        for x in xs.chunks(4) {
            let mut a = [0f32; 4];
            a[..x.len()].copy_from_slice(x);
            let v = f32x4(a[0], a[1], a[2], a[3]);
            check(a, expf4::<false>(v));
            #[cfg(target_feature = "relaxed-simd")]
            if crate::quant::simd128::madd_is_fused() {
                check(a, expf4::<true>(v));
            }
        }
    }
}
