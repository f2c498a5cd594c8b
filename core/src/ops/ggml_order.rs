//! Float operations in the exact order of ggml's x86-64 CPU kernels (AVX-512 build, the
//! one llama.cpp's reference logits in `fixtures/logits` come from), in portable scalar
//! Rust: lane arrays stand for SIMD registers and `f32::mul_add` for FMA instructions.
//!
//! Why: every matrix product re-quantizes its input to 8 bits, so a last-bit difference
//! in an activation can flip a code and grow into a visible logit difference a few layers
//! later. Summing in ggml's order (not just computing the same maths) keeps our logits on
//! llama.cpp's. Nothing here calls libm, so native and wasm builds give identical bits.
//!
//! Callers should run inside [`with_fma`] so that `mul_add` is one instruction on x86-64
//! (the result is the same without it, only slower).

pub(crate) use crate::quant::x86_order::with_fma;

/// Lanes of one `__m512` register.
pub(crate) const LANES: usize = 16;

/// Elements per step of `ggml_vec_dot_f32` (`GGML_F32_STEP`: four registers).
pub(crate) const DOT_STEP: usize = 4 * LANES;

/// `a * b + c` rounded once, as an FMA instruction. Where there is no such instruction
/// (wasm), `f32::mul_add` is a libm call per element, too slow for attention; the f64
/// route of [`fma_via_f64`] gives the same bits inline.
#[inline(always)]
pub(crate) fn fma(a: f32, b: f32, c: f32) -> f32 {
    #[cfg(target_arch = "wasm32")]
    {
        fma_via_f64(a, b, c)
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        a.mul_add(b, c)
    }
}

/// An exact f32 FMA through f64: `a * b` is exact in f64, so the only error is the one
/// rounding of the f64 sum, and rounding that sum to f32 gives the FMA's result unless
/// the sum landed exactly halfway between two f32s (a tie the f64 rounding may have
/// created) or in the f32 subnormal range; those rare cases take `f32::mul_add`.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
#[inline(always)]
fn fma_via_f64(a: f32, b: f32, c: f32) -> f32 {
    let s = a as f64 * b as f64 + c as f64;
    let halfway = s.to_bits() & 0x1fff_ffff == 0x1000_0000;
    if !halfway && (s == 0.0 || s.abs() >= f32::MIN_POSITIVE as f64) {
        s as f32
    } else {
        a.mul_add(b, c)
    }
}

/// `_mm512_reduce_add_ps`: the upper half is added to the lower half until one lane is
/// left (GCC and Clang both expand it this way).
#[inline(always)]
pub(crate) fn hsum16(v: &[f32; LANES]) -> f32 {
    let mut h = [0f32; 8];
    for i in 0..8 {
        h[i] = v[i] + v[i + 8];
    }
    let q = [h[0] + h[4], h[1] + h[5], h[2] + h[6], h[3] + h[7]];
    (q[0] + q[2]) + (q[1] + q[3])
}

/// `GGML_F32x16_REDUCE` of `ggml_vec_dot_f32`'s four accumulators (element `k` of a step
/// went to lane `k % 64` of `acc`): registers 0+2 and 1+3, then those two, then
/// [`hsum16`].
#[inline(always)]
pub(crate) fn reduce_dot_lanes(acc: &[f32; DOT_STEP]) -> f32 {
    let mut r = [0f32; LANES];
    for (l, out) in r.iter_mut().enumerate() {
        *out = (acc[l] + acc[l + 2 * LANES]) + (acc[l + LANES] + acc[l + 3 * LANES]);
    }
    hsum16(&r)
}

/// `ggml_vec_dot_f32` (AVX-512): four 16-lane FMA accumulators over steps of 64
/// elements, [`reduce_dot_lanes`], then the leftover elements one by one (compilers
/// contract that `sumf += x*y` into an FMA).
#[inline(always)]
pub(crate) fn vec_dot_f32(x: &[f32], y: &[f32]) -> f32 {
    let n = x.len().min(y.len());
    let np = n - n % DOT_STEP;
    let mut acc = [0f32; DOT_STEP];
    for (xs, ys) in x[..np]
        .chunks_exact(DOT_STEP)
        .zip(y[..np].chunks_exact(DOT_STEP))
    {
        for l in 0..DOT_STEP {
            acc[l] = fma(xs[l], ys[l], acc[l]);
        }
    }
    let mut sum = reduce_dot_lanes(&acc);
    for i in np..n {
        sum = fma(x[i], y[i], sum);
    }
    sum
}

/// `ggml_vec_dot_f16` (AVX-512 build without FP16 arithmetic): both rows converted to
/// f32, summed as [`vec_dot_f32`], the leftovers (past a multiple of 64) added in f64.
/// `w` and `a` hold `n` little-endian f16 values each (at least; the rest is ignored).
/// ggml uses it for F16 weights when a product has one activation row (decoding).
pub fn vec_dot_f16(w: &[u8], a: &[u8], n: usize) -> f32 {
    with_fma(
        #[inline(always)]
        || vec_dot_f16_inner(w, a, n),
    )
}

#[inline(always)]
fn vec_dot_f16_inner(w: &[u8], a: &[u8], n: usize) -> f32 {
    let np = n - n % DOT_STEP;
    let mut acc = [0f32; DOT_STEP];
    for (ws, as_) in w[..2 * np]
        .chunks_exact(2 * DOT_STEP)
        .zip(a[..2 * np].chunks_exact(2 * DOT_STEP))
    {
        for (l, a) in acc.iter_mut().enumerate() {
            *a = fma(f16_at(ws, l), f16_at(as_, l), *a);
        }
    }
    let mut sum = reduce_dot_lanes(&acc) as f64;
    for i in np..n {
        sum += (f16_at(w, i) * f16_at(a, i)) as f64;
    }
    sum as f32
}

/// One output of llamafile's `tinyBLAS<16, __m512>` over f16 rows (`n` values each): one
/// 16-lane FMA accumulator, element `i` in lane `i % 16` (a partial last load is
/// zero-filled), then [`hsum16`]. ggml uses it for F16 weights when a product has two
/// activation rows or more (prompt processing). Same inputs as [`vec_dot_f16`].
pub fn tinyblas_dot_f16(w: &[u8], a: &[u8], n: usize) -> f32 {
    with_fma(
        #[inline(always)]
        || tinyblas_dot_f16_inner(w, a, n),
    )
}

#[inline(always)]
fn tinyblas_dot_f16_inner(w: &[u8], a: &[u8], n: usize) -> f32 {
    let mut acc = [0f32; LANES];
    for i in 0..n {
        acc[i % LANES] = fma(f16_at(w, i), f16_at(a, i), acc[i % LANES]);
    }
    hsum16(&acc)
}

#[inline(always)]
fn f16_at(b: &[u8], i: usize) -> f32 {
    crate::quant::f16_to_f32(u16::from_le_bytes([b[2 * i], b[2 * i + 1]]))
}

/// One lane of ggml's AVX-512 `ggml_v_expf` (ARM's optimized-routines polynomial, at most
/// ~1.5 ulp from `e^x`): `x = n ln2 + b`, `e^x = 2^n * p(b)`. Inputs beyond ±192·ln 2
/// give `0` or `+inf`, like the vector code's blend.
#[inline(always)]
pub(crate) fn expf(x: f32) -> f32 {
    // The constants of `ggml_v_expf`, as bit patterns of its hex float literals.
    let r = f32::from_bits(0x4b40_0000); // 0x1.8p23: adding it rounds to an integer
    let log2e = f32::from_bits(0x3fb8_aa3b); // 0x1.715476p+0
    let ln2_hi = f32::from_bits(0x3f31_7200); // 0x1.62e4p-1
    let ln2_lo = f32::from_bits(0x35bf_be8e); // 0x1.7f7d1cp-20
    let c5 = f32::from_bits(0x3c07_2010); // 0x1.0e4020p-7
    let c4 = f32::from_bits(0x3d2b_9f17); // 0x1.573e2ep-5
    let c3 = f32::from_bits(0x3e2a_af33); // 0x1.555e66p-3
    let c2 = f32::from_bits(0x3eff_fedb); // 0x1.fffdb6p-2
    let c1 = f32::from_bits(0x3f7f_fff6); // 0x1.ffffecp-1

    let z = fma(x, log2e, r);
    let n = z - r;
    // `_mm512_fnmadd_ps(a, b, c)` is `-(a * b) + c` with one rounding.
    let b = fma(-n, ln2_lo, fma(-n, ln2_hi, x));
    if n.abs() > 192.0 {
        return if n <= 0.0 { 0.0 } else { f32::INFINITY };
    }
    let u = b * b;
    let j = fma(fma(fma(c5, b, c4), u, fma(c3, b, c2)), u, fma(c1, b, 1.0));
    scalef(j, n)
}

/// `_mm512_scalef_ps(j, n)` for an integer-valued `n` in -192..=192: `j * 2^n` rounded
/// once to f32 (the f64 product is exact, and its one rounding to f32 handles
/// subnormal and overflowing results as the instruction does).
#[inline(always)]
fn scalef(j: f32, n: f32) -> f32 {
    let pow2 = f64::from_bits(((n as i64 + 1023) as u64) << 52);
    (j as f64 * pow2) as f32
}

/// `ggml_v_silu`: `x / (1 + e^-x)` with [`expf`].
#[inline(always)]
pub(crate) fn silu(x: f32) -> f32 {
    x / (1.0 + expf(0.0 - x))
}

/// `ggml_vec_swiglu_f32`: `gate[i] = silu(gate[i]) * up[i]`. ggml computes a tail shorter
/// than 16 with libm's `expf`; we keep [`expf`] there so that results never depend on the
/// platform's libm (models with a feed-forward width that is a multiple of 16 — all the
/// supported ones — have no tail).
///
/// Built for wasm32 with `+simd128` this runs the SIMD kernel of `swiglu_simd128.rs`,
/// bit-identical to [`swiglu_reference`].
pub fn swiglu(gate: &mut [f32], up: &[f32]) {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    return super::swiglu_simd128::swiglu(gate, up);
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    swiglu_reference(gate, up)
}

/// [`swiglu`] in scalar code, whatever the build.
pub fn swiglu_reference(gate: &mut [f32], up: &[f32]) {
    with_fma(
        #[inline(always)]
        || {
            for (g, &u) in gate.iter_mut().zip(up) {
                *g = silu(*g) * u;
            }
        },
    )
}

/// `ggml_vec_geglu_f32` as ggml builds it for x86 (`GGML_GELU_FP16`): `gate[i] =
/// gelu(gate[i]) * up[i]`, the GELU read from a table of every f16 input (the input
/// rounded to f16, the result rounded to f16), 0 at or below -10 and the identity at or
/// above 10.
pub fn geglu(gate: &mut [f32], up: &[f32]) {
    use crate::quant::{f16_to_f32, f32_to_f16};
    let table = gelu_f16_table();
    for (g, &u) in gate.iter_mut().zip(up) {
        let x = *g;
        *g = if x <= -10.0 {
            0.0
        } else if x >= 10.0 {
            x * u
        } else {
            f16_to_f32(table[f32_to_f16(x) as usize]) * u
        };
    }
}

/// `ggml_table_gelu_f16`: [`gelu`] of every f16 value, rounded to f16 (built once).
fn gelu_f16_table() -> &'static [u16] {
    use crate::quant::{f16_to_f32, f32_to_f16};
    static TABLE: std::sync::OnceLock<Vec<u16>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        (0..=u16::MAX)
            .map(|h| f32_to_f16(gelu(f16_to_f32(h))))
            .collect()
    })
}

/// `ggml_gelu_f32`, the tanh approximation: `0.5 x (1 + tanh(sqrt(2/pi) x (1 + 0.044715
/// x^2)))`.
fn gelu(x: f32) -> f32 {
    const GELU_COEF_A: f32 = 0.044715;
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    0.5 * x * (1.0 + tanh(SQRT_2_OVER_PI * x * (1.0 + GELU_COEF_A * x * x)))
}

/// `tanh` from [`expf`], the same on every platform (libm's `tanhf` differs by an ulp
/// between them; the GELU table rounds its results to f16 anyway).
fn tanh(x: f32) -> f32 {
    (1.0 - 2.0 / (expf(2.0 * x.abs()) + 1.0)).copysign(x)
}

/// The exponentials of `ggml_vec_soft_max_f32` (AVX-512): `y[i] = expf(y[i] - max)` in
/// place, and their sum: each group of 16 is reduced in f32 ([`hsum16`]) and the group
/// sums are added in f64.
///
/// ggml runs this over the whole padded KV window, whose masked slots give exactly 0; a
/// last group shorter than 16 is therefore summed as if padded with zeros.
#[inline(always)]
pub(crate) fn soft_max_exp(y: &mut [f32], max: f32) -> f64 {
    let mut sum = 0f64;
    for group in y.chunks_mut(LANES) {
        let mut v = [0f32; LANES];
        for (vi, yi) in v.iter_mut().zip(group.iter_mut()) {
            *vi = expf(*yi - max);
            *yi = *vi;
        }
        sum += hsum16(&v) as f64;
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference maths each ordered helper must stay close to.
    fn plain_dot(x: &[f32], y: &[f32]) -> f64 {
        x.iter().zip(y).map(|(&a, &b)| a as f64 * b as f64).sum()
    }

    fn values(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (s >> 8) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn fma_via_f64_is_a_fused_multiply_add() {
        let v = values(4000, 9);
        for w in v.windows(3) {
            let (a, b, c) = (w[0] * 3.0, w[1] * 1e-3, w[2]);
            assert_eq!(fma_via_f64(a, b, c).to_bits(), a.mul_add(b, c).to_bits());
        }
        // Cases where plain f64 double rounding goes wrong, and subnormal results.
        let (a, b) = (1.0f32 + f32::EPSILON, 1.0f32 - f32::EPSILON / 2.0);
        assert_eq!(fma_via_f64(a, b, -1.0), a.mul_add(b, -1.0));
        let c = f32::from_bits(0x3f80_0001);
        assert_eq!(
            fma_via_f64(c, 1.0 + f32::EPSILON * 0.5, 1e-30),
            c.mul_add(1.0 + f32::EPSILON * 0.5, 1e-30)
        );
        assert_eq!(fma_via_f64(1e-20, 1e-20, 0.0), 1e-20f32.mul_add(1e-20, 0.0));
    }

    #[test]
    fn hsum16_adds_halves() {
        // Lanes chosen so that any other association rounds differently.
        let mut v = [0f32; LANES];
        v[0] = 1.0;
        v[8] = 1e8;
        v[4] = -1e8;
        assert_eq!(hsum16(&v), (1.0f32 + 1e8) + -1e8);
        assert_ne!(hsum16(&v), 1.0);
    }

    #[test]
    fn vec_dot_f32_is_close_to_the_exact_dot_and_follows_lanes() {
        for n in [1, 63, 64, 130, 576] {
            let (x, y) = (values(n, 1), values(n, 2));
            let d = vec_dot_f32(&x, &y);
            assert!((d as f64 - plain_dot(&x, &y)).abs() < 1e-4, "n = {n}");
        }
        // 1e8 in lane 0 of register 0, -1e8 in lane 0 of register 2, 1 in lane 0 of
        // register 1: registers 0 and 2 are added first, so the 1 survives.
        let mut x = vec![0f32; 64];
        let y = vec![1f32; 64];
        x[0] = 1e8;
        x[32] = -1e8;
        x[16] = 1.0;
        assert_eq!(vec_dot_f32(&x, &y), 1.0);
        // A sequential sum would lose it.
        assert_eq!(x.iter().sum::<f32>(), 0.0);
    }

    #[test]
    fn f16_dots_follow_their_kernels() {
        let n = 200;
        let (x, y) = (values(n, 4), values(n, 5));
        let h = |v: &[f32]| -> (Vec<u8>, Vec<f32>) {
            let bytes: Vec<u8> = v
                .iter()
                .flat_map(|&f| crate::quant::f32_to_f16(f).to_le_bytes())
                .collect();
            let back = v.iter().map(|&f| crate::quant::round_f16(f)).collect();
            (bytes, back)
        };
        let ((xb, xf), (yb, yf)) = (h(&x), h(&y));
        let np = n - n % DOT_STEP;
        let tail: f64 = (np..n).map(|i| (xf[i] * yf[i]) as f64).sum();
        let want = (vec_dot_f32(&xf[..np], &yf[..np]) as f64 + tail) as f32;
        assert_eq!(vec_dot_f16(&xb, &yb, n), want);
        let mut acc = [0f32; LANES];
        for i in 0..n {
            acc[i % LANES] = xf[i].mul_add(yf[i], acc[i % LANES]);
        }
        assert_eq!(tinyblas_dot_f16(&xb, &yb, n), hsum16(&acc));
        assert!((tinyblas_dot_f16(&xb, &yb, n) as f64 - plain_dot(&xf, &yf)).abs() < 1e-4);
    }

    #[test]
    fn expf_matches_ggml_known_values_and_limits() {
        assert_eq!(expf(0.0), 1.0);
        assert_eq!(expf(f32::NEG_INFINITY), 0.0);
        assert_eq!(expf(-200.0), 0.0);
        assert_eq!(expf(200.0), f32::INFINITY);
        // Normal results (x >= -87): within the polynomial's ~1.5 ulp.
        for i in -1740..=800 {
            let x = i as f32 * 0.05;
            let e = expf(x) as f64;
            let exact = (x as f64).exp();
            assert!(
                ((e - exact) / exact).abs() < 4e-7,
                "expf({x}) = {e}, e^x = {exact}"
            );
        }
        // Subnormal results are rounded once, not flushed.
        assert!(expf(-100.0) > 0.0 && expf(-100.0) < f32::MIN_POSITIVE);
    }

    #[test]
    fn silu_and_swiglu() {
        assert_eq!(silu(0.0), 0.0);
        for x in [-8.0f32, -1.0, 0.5, 3.0] {
            let exact = x as f64 / (1.0 + (-x as f64).exp());
            assert!((silu(x) as f64 - exact).abs() < 1e-6);
        }
        let mut g = vec![1.0f32, -2.0, 0.0];
        swiglu(&mut g, &[2.0, 1.0, 5.0]);
        assert_eq!(g, vec![silu(1.0) * 2.0, silu(-2.0), 0.0]);
    }

    #[test]
    fn gelu_table_and_geglu() {
        // tanh against f64 over the range the GELU argument takes.
        for i in -800..=800 {
            let x = i as f32 / 100.0;
            assert!(
                (tanh(x) as f64 - (x as f64).tanh()).abs() < 3e-7,
                "tanh({x})"
            );
        }
        let exact = |x: f64| {
            0.5 * x
                * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x * x * x)).tanh())
        };
        let mut g = vec![-12.0f32, -10.0, -1.5, 0.0, 0.3, 2.0, 9.99, 10.0, 25.0];
        let x = g.clone();
        geglu(&mut g, &[2.0; 9]);
        assert_eq!((g[0], g[1], g[3]), (0.0, 0.0, 0.0));
        assert_eq!((g[7], g[8]), (20.0, 50.0));
        for (&got, &x) in g.iter().zip(&x).skip(2).take(5) {
            // The input and the result pass through f16: about 3 decimal digits.
            let want = 2.0 * exact(x as f64);
            assert!(
                (got as f64 - want).abs() <= 2e-3 * want.abs().max(1e-2),
                "{x}: {got} vs {want}"
            );
        }
        assert!({
            let mut n = [f32::NAN];
            geglu(&mut n, &[1.0]);
            n[0].is_nan()
        });
    }

    #[test]
    fn soft_max_exp_sums_groups_of_16() {
        let mut y = values(40, 3);
        let max = y.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        let orig = y.clone();
        let sum = soft_max_exp(&mut y, max);
        let exact: f64 = orig.iter().map(|&v| ((v - max) as f64).exp()).sum();
        assert!((sum - exact).abs() < 1e-5);
        assert_eq!(y[7], expf(orig[7] - max));
        let groups: f64 = y
            .chunks(LANES)
            .map(|g| {
                let mut v = [0f32; LANES];
                v[..g.len()].copy_from_slice(g);
                hsum16(&v) as f64
            })
            .sum();
        assert_eq!(sum, groups);
    }
}
