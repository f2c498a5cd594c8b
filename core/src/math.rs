//! Elementary functions from IEEE-754 basic operations only, so the native build and
//! the wasm build compute the same bits. `f32::sin`, `f64::exp` and friends call the
//! platform's libm: glibc natively, wasi-libc (musl) in the component, and the two
//! differ in the last bit often enough to flip Q8 activation codes over a long
//! prompt. The forward pass and the sampler take every function beyond `+ - * / sqrt`
//! from here, or from ggml's own approximations in `ops::ggml_order` (`expf`, SiLU).

/// `e^x` from IEEE-754 basic operations only (so the same bits on every platform):
/// `x = (32 n + j) ln2/32 + r` with `|r| <= ln2/64` (Cody–Waite), then
/// `e^x = 2^n · 2^(j/32) · e^r`, the table holding `2^(j/32)` correctly rounded and
/// `e^r` a degree-6 Taylor polynomial (truncation error below 4e-18). Relative
/// error is a few ulps. Results that would be subnormal (`x < -708`) are flushed
/// to 0.
pub fn exp(x: f64) -> f64 {
    const INV_LN2_32: f64 = 46.166_241_308_446_83; // 32 / ln 2
    const LN2_32_HI: f64 = 0.021_660_834_550_857_544; // ln2/32, low 32 mantissa bits 0
    const LN2_32_LO: f64 = 1.484_164_074_697_397_7e-8; // ln2/32 - LN2_32_HI
    const TWO_J_32: [f64; 32] = [
        1.0,
        1.021_897_148_654_116_6,
        1.044_273_782_427_413_8,
        1.067_140_400_676_823_7,
        1.090_507_732_665_257_7,
        1.114_386_742_595_892_4,
        1.138_788_634_756_691_6,
        1.163_724_858_777_577_5,
        1.189_207_115_002_721,
        1.215_247_359_980_469,
        1.241_857_812_073_484,
        1.269_050_957_191_733_2,
        1.296_839_554_651_009_6,
        1.325_236_643_159_741_3,
        1.354_255_546_936_892_7,
        1.383_909_881_963_832,
        std::f64::consts::SQRT_2,
        1.445_180_806_977_046_7,
        1.476_826_145_939_499_3,
        1.509_164_427_593_422_8,
        1.542_210_825_407_940_7,
        1.575_980_845_107_886_5,
        1.610_490_331_949_254_3,
        1.645_755_478_153_965,
        1.681_792_830_507_429,
        1.718_619_298_122_478,
        1.756_252_160_373_299_5,
        1.794_709_075_003_107_2,
        1.834_008_086_409_342_4,
        1.874_167_634_110_3,
        1.915_206_561_397_147_4,
        1.957_144_124_175_400_2,
    ];
    if x.is_nan() {
        return x;
    }
    if x > 709.0 {
        return f64::INFINITY;
    }
    if x < -708.0 {
        return 0.0;
    }
    // Round to the nearest integer by adding and removing 1.5 * 2^52 (exact IEEE
    // arithmetic; `floor`/`round` can be libm calls on baseline targets).
    const SHIFT: f64 = 6_755_399_441_055_744.0;
    let kf = (x * INV_LN2_32 + SHIFT) - SHIFT;
    let k = kf as i64; // |k| <= 32734: kf * LN2_32_HI is exact
    let r = (x - kf * LN2_32_HI) - kf * LN2_32_LO;
    let p = 1.0
        + r
        + r * r
            * (0.5
                + r * (0.166_666_666_666_666_66
                    + r * (0.041_666_666_666_666_664
                        + r * (0.008_333_333_333_333_333 + r * 0.001_388_888_888_888_889))));
    let n = k.div_euclid(32); // in [-1022, 1022]: 2^n is a normal number
    let scale = f64::from_bits(((n + 1023) as u64) << 52);
    TWO_J_32[k.rem_euclid(32) as usize] * p * scale
}

/// Natural logarithm of a positive, finite, normal `x`, from basic operations only
/// (used once per sampler, for min-p): `x = m 2^e` with `m` in `(√½, √2]`, then
/// `ln m = 2 atanh((m-1)/(m+1))` by its series.
pub fn ln(x: f64) -> f64 {
    const LN2_HI: f64 = 0.693_147_180_369_123_8; // low 32 mantissa bits 0
    const LN2_LO: f64 = 1.908_214_929_270_587_7e-10; // ln 2 - LN2_HI
    debug_assert!(x.is_normal() && x > 0.0);
    let bits = x.to_bits();
    let mut e = ((bits >> 52) & 0x7ff) as i64 - 1023;
    let mut m = f64::from_bits((bits & ((1u64 << 52) - 1)) | (1023u64 << 52));
    if m > std::f64::consts::SQRT_2 {
        m *= 0.5;
        e += 1;
    }
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    // sum over k of s^(2k) / (2k + 1), k = 0..=12; |s| <= 0.1716 so s^26 < 1e-19.
    let mut t = 0.0;
    for k in (0..=12u32).rev() {
        t = t * s2 + 1.0 / f64::from(2 * k + 1);
    }
    let ef = e as f64;
    ef * LN2_HI + (2.0 * s * t + ef * LN2_LO)
}

/// The larger of `acc` and `x`, ignoring a NaN `x` (as `f32::max` does when `acc` is
/// not NaN). `f32::max` is a libm call (`fmaxf`) in wasm, whose `f32.max` instruction
/// has other NaN rules; this is one compare everywhere.
#[inline(always)]
pub fn max_f32(acc: f32, x: f32) -> f32 {
    if x > acc {
        x
    } else {
        acc
    }
}

/// `sin` and `cos` of an `f32` exactly as glibc's `sinf`/`cosf` compute them on
/// x86-64 with FMA (the build llama.cpp's fixtures come from): ARM's optimized
/// routine, a degree-7/8 polynomial on the argument reduced to `[-π/4, π/4]`, in f64.
/// Reproducing its arithmetic (including which products the compiler fuses) makes
/// RoPE's angle tables bit-identical to ggml's on every target. Error < 0.57 ulp.
///
/// One range reduction serves both: the cosine is the sine a quadrant ahead, i.e. the
/// other polynomial of the same reduced argument (what `cosf` computes on its own).
pub fn sincosf(y: f32) -> (f32, f32) {
    match reduce(y) {
        Reduced::Tiny => (y, 1.0),
        Reduced::Small(x) => {
            let x2 = x * x;
            (poly(x, x2, &POLY[0], 0), poly(x, x2, &POLY[0], 1))
        }
        Reduced::Quadrant { x, n, sign } => {
            let q = n.wrapping_add(sign);
            let p = &POLY[((q >> 1) & 1) as usize];
            let (xs, x2) = (x * QUADRANT_SIGN[(q & 3) as usize], x * x);
            (poly(xs, x2, p, n), poly(xs, x2, p, n ^ 1))
        }
        Reduced::NotFinite => (f32::NAN, f32::NAN),
    }
}

/// Coefficients of the cosine (`c0..c4`) and sine (`s1..s3`) polynomials on
/// `[-π/4, π/4]`. The second set negates the cosine, for quadrants 2 and 3.
struct Poly {
    c: [f64; 5],
    s: [f64; 3],
}

/// The cosine polynomial's coefficients `c0..c4`.
const COS: [f64; 5] = [
    1.0,
    f64::from_bits(0xbfdf_ffff_fd0c_621c),
    f64::from_bits(0x3fa5_5553_e106_8f19),
    f64::from_bits(0xbf56_c087_e89a_359d),
    f64::from_bits(0x3ef9_9343_027b_f8c3),
];

/// The sine polynomial's coefficients `s1..s3`.
const SIN: [f64; 3] = [
    f64::from_bits(0xbfc5_5554_5995_a603),
    f64::from_bits(0x3f81_1076_0523_0bc4),
    f64::from_bits(0xbf29_94eb_3774_cf24),
];

const POLY: [Poly; 2] = [
    Poly { c: COS, s: SIN },
    Poly {
        c: [-COS[0], -COS[1], -COS[2], -COS[3], -COS[4]],
        s: SIN,
    },
];

/// Sign of the sine polynomial's argument in quadrants 0..3.
const QUADRANT_SIGN: [f64; 4] = [1.0, -1.0, -1.0, 1.0];

/// `2/π · 2^24`: the quadrant lands in bits 24..31 of the truncated product.
const HALF_PI_INV_2_24: f64 = f64::from_bits(0x4164_5f30_6dc9_c883);
/// `π/2` rounded to f64.
const HALF_PI: f64 = f64::from_bits(0x3ff9_21fb_5444_2d18);
/// `2π · 2^-64`: the weight of one unit of the 2.62 fixed-point remainder.
const PI_2_POW_M62: f64 = f64::from_bits(0x3c19_21fb_5444_2d18);

/// The bits of `2/π` (192 of them), as overlapping 32-bit windows 8 bits apart, so
/// that a float's exponent picks the three words its mantissa must be multiplied by.
const INV_PIO4: [u32; 24] = [
    0x0000_00a2,
    0x0000_a2f9,
    0x00a2_f983,
    0xa2f9_836e,
    0xf983_6e4e,
    0x836e_4e44,
    0x6e4e_4415,
    0x4e44_1529,
    0x4415_29fc,
    0x1529_fc27,
    0x29fc_2757,
    0xfc27_57d1,
    0x2757_d1f5,
    0x57d1_f534,
    0xd1f5_34dd,
    0xf534_ddc0,
    0x34dd_c0db,
    0xddc0_db62,
    0xc0db_6295,
    0xdb62_9599,
    0x6295_993c,
    0x9599_3c43,
    0x993c_4390,
    0x3c43_9041,
];

/// An argument after range reduction.
enum Reduced {
    /// `|y| < 2^-12`: `sin y = y`, `cos y = 1` in f32.
    Tiny,
    /// `|y| < π/4`: no reduction needed.
    Small(f64),
    /// `y = x + n π/2` with `|x| <= π/4`; `sign` is y's sign bit (the large-argument
    /// reduction works on `|y|`).
    Quadrant {
        x: f64,
        n: u32,
        sign: u32,
    },
    NotFinite,
}

/// The top 12 bits of `|y|`'s representation: cheap magnitude comparisons.
fn abs_top12(y: f32) -> u32 {
    (y.to_bits() >> 20) & 0x7ff
}

fn reduce(y: f32) -> Reduced {
    const TOP_TINY: u32 = 0x398; // 2^-12
    const TOP_PI_4: u32 = 0x3f4; // π/4 as f32, 0x3f490fdb
    const TOP_120: u32 = 0x42f; // 120.0
    const TOP_INF: u32 = 0x7f8;
    let top = abs_top12(y);
    let x = f64::from(y);
    if top < TOP_PI_4 {
        if top < TOP_TINY {
            Reduced::Tiny
        } else {
            Reduced::Small(x)
        }
    } else if top < TOP_120 {
        // One multiply-subtract: π/2 in f64 has enough bits for |y| <= 120. The
        // quadrant is rounded by adding 2^23 before the shift (truncating a
        // negative product would round toward zero).
        let r = x * HALF_PI_INV_2_24;
        let n = ((r as i32).wrapping_add(0x80_0000) >> 24) as u32;
        let x = (-f64::from(n as i32)).mul_add(HALF_PI, x);
        Reduced::Quadrant { x, n, sign: 0 }
    } else if top < TOP_INF {
        let (x, n) = reduce_large(y.to_bits());
        Reduced::Quadrant {
            x,
            n,
            sign: y.to_bits() >> 31,
        }
    } else {
        Reduced::NotFinite
    }
}

/// `|y| mod π/2` for `|y| >= 120` by integer arithmetic: the 24-bit mantissa times
/// 96 bits of `2/π` chosen by the exponent gives the exact remainder as a 2.62
/// fixed-point number (the two integer bits are the quadrant).
fn reduce_large(bits: u32) -> (f64, u32) {
    let arr = &INV_PIO4[((bits >> 26) & 15) as usize..];
    let shift = (bits >> 23) & 7;
    let m = ((bits & 0xff_ffff) | 0x80_0000) << shift;
    let lo = u64::from(m.wrapping_mul(arr[0]));
    let mid = u64::from(m) * u64::from(arr[4]);
    let hi = u64::from(m) * u64::from(arr[8]);
    let mut r = (hi >> 32) | (lo << 32);
    r = r.wrapping_add(mid);
    let n = r.wrapping_add(1 << 61) >> 62;
    r = r.wrapping_sub(n << 62);
    ((r as i64) as f64 * PI_2_POW_M62, n as u32)
}

/// The sine polynomial for even quadrants `n`, the cosine one for odd. The fused
/// multiply-adds are where glibc's FMA build (GCC contracting `a + b * c`) has them.
fn poly(x: f64, x2: f64, p: &Poly, n: u32) -> f32 {
    if n & 1 == 0 {
        let x3 = x * x2;
        let s1 = x2.mul_add(p.s[2], p.s[1]);
        let x7 = x3 * x2;
        let s = x3.mul_add(p.s[0], x);
        x7.mul_add(s1, s) as f32
    } else {
        let x4 = x2 * x2;
        let c2 = x2.mul_add(p.c[4], p.c[3]);
        let c1 = x2.mul_add(p.c[1], p.c[0]);
        let x6 = x4 * x2;
        let c = x4.mul_add(p.c[2], c1);
        x6.mul_add(c2, c) as f32
    }
}

/// `base^e` rounded to f32, through f64 [`exp`] and [`ln`] (relative error ~1e-15,
/// so the result is the correctly rounded one except within 1e-15 of a rounding
/// boundary). For model constants such as RoPE's `freq_base^(-2/n_rot)`.
pub fn powf(base: f32, e: f32) -> f32 {
    exp(f64::from(e) * ln(f64::from(base))) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `steps` f32 inputs spread evenly over `[lo, hi)`.
    fn sweep(lo: f32, hi: f32, steps: u32) -> impl Iterator<Item = f32> {
        (0..steps).map(move |i| lo + (hi - lo) * (i as f32 / steps as f32))
    }

    /// `|a - b|` in units of the last place of the f32 `a`.
    fn ulps(a: f32, b: f64) -> f64 {
        let exponent = ((a.abs().to_bits() >> 23) as i32).max(1);
        (f64::from(a) - b).abs() / 2f64.powi(exponent - 127 - 23)
    }

    #[test]
    fn exp_matches_std() {
        let mut x = -708.0f64;
        let mut worst = 0.0f64;
        while x <= 709.0 {
            let a = exp(x);
            let b = x.exp();
            worst = worst.max(((a - b) / b).abs());
            x += 0.012_345_678_9;
        }
        assert!(worst < 1e-15, "worst relative error {worst:e}");
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(-800.0), 0.0);
        assert_eq!(exp(f64::NEG_INFINITY), 0.0);
        assert!(exp(f64::NAN).is_nan());
        for x in [-1e-300, -1e-12, -0.5, -1.0, -20.0, -100.0] {
            let (a, b) = (exp(x), x.exp());
            assert!(((a - b) / b).abs() < 1e-15, "{x}: {a} vs {b}");
        }
    }

    #[test]
    fn ln_matches_std() {
        let mut worst = 0.0f64;
        for i in 1..=10_000 {
            let x = f64::from(i) / 10_000.0;
            let (a, b) = (ln(x), x.ln());
            let err = if b == 0.0 {
                a.abs()
            } else {
                ((a - b) / b).abs()
            };
            worst = worst.max(err);
        }
        for x in [
            f64::from(f32::MIN_POSITIVE),
            1e-45f32 as f64,
            0.05f32 as f64,
        ] {
            let (a, b) = (ln(x), x.ln());
            assert!(((a - b) / b).abs() < 1e-15, "{x}: {a} vs {b}");
        }
        assert!(worst < 1e-14, "worst relative error {worst:e}");
        assert_eq!(ln(1.0), 0.0);
    }

    #[test]
    fn sincosf_is_within_0_57_ulp_of_exact() {
        let mut worst = 0f64;
        let inputs = sweep(-200.0, 200.0, 400_000)
            .chain(sweep(0.0, 1e6, 200_000))
            .chain([1e-30, -1e-8, 0.785, 3.4e38, -3.0e38, 0.0, -0.0]);
        for y in inputs {
            let (s, c) = sincosf(y);
            let yd = f64::from(y);
            worst = worst.max(ulps(s, yd.sin())).max(ulps(c, yd.cos()));
        }
        assert!(worst < 0.57, "worst error {worst} ulp");
        assert!(sincosf(f32::NAN).0.is_nan() && sincosf(f32::INFINITY).1.is_nan());
    }

    /// The point of this module: on the platform llama.cpp's fixtures come from,
    /// the result is glibc's to the bit, over the angles RoPE uses.
    #[cfg(all(target_arch = "x86_64", target_os = "linux", target_env = "gnu"))]
    #[test]
    fn sincosf_equals_glibc_fma_build() {
        assert!(
            std::is_x86_feature_detected!("fma") && std::is_x86_feature_detected!("avx2"),
            "glibc picks its non-FMA sinf on this CPU; this test needs an FMA machine"
        );
        // Every 1073rd bit pattern: all magnitudes and both signs, both reductions.
        let mut differ = Vec::new();
        for y in (0..4_000_000u32).map(|i| f32::from_bits(i.wrapping_mul(1073))) {
            let (ours, glibc) = (sincosf(y), (y.sin(), y.cos()));
            let same = |a: f32, b: f32| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan());
            if !(same(ours.0, glibc.0) && same(ours.1, glibc.1)) {
                differ.push((y, ours, glibc));
            }
        }
        assert!(
            differ.is_empty(),
            "{} inputs differ from glibc, e.g. {:?}",
            differ.len(),
            &differ[..differ.len().min(5)]
        );
    }

    #[test]
    fn powf_is_correctly_rounded_for_rope_bases() {
        for base in [
            10_000f32,
            100_000.0,
            500_000.0,
            1_000_000.0,
            10_000_000.0,
            1e4 / 0.7,
        ] {
            for n_rot in [16u32, 32, 48, 64, 80, 96, 128, 256] {
                let e = -2.0 / n_rot as f32;
                let exact = f64::from(base).powf(f64::from(e));
                let got = powf(base, e);
                assert!(ulps(got, exact) <= 0.5, "{base}^{e}: {got} vs {exact}");
            }
        }
    }
}
