//! The dispatched dot kernels ([`vec_dot`], [`vec_dot_rows`]) against the scalar
//! reference kernels ([`vec_dot_reference`]) for every weight format.
//!
//! Natively on x86-64 with AVX2 + FMA the dispatched kernels of Q4_0, Q4_1 and Q8_0
//! are the AVX2 ones (`cargo test -p wasm-chord-core --test quant_simd`), the others
//! scalar. Built for wasm32 with `+simd128` (and `+relaxed-simd`) the dispatched ones
//! are the SIMD kernels:
//!
//! ```text
//! cargo build -p chord --bin wasm-test-runner     # once: the runner of .cargo/config.toml
//! RUSTFLAGS="-C target-feature=+simd128,+relaxed-simd" \
//!   cargo test -p wasm-chord-core --target wasm32-wasip2 --test quant_simd
//! RUSTFLAGS="-C target-feature=+simd128" \
//!   cargo test -p wasm-chord-core --target wasm32-wasip2 --test quant_simd
//! ```
//!
//! The quantized kernels must agree bit for bit (they compute the same integer sums
//! and the same `f32` operations in the same order); the F32/F16/BF16 ones, which
//! accumulate in `f32` rather than `f64`, to a rounding bound. Inputs: rows quantized
//! from random floats, random block bytes over the whole code range with random,
//! zero, huge, subnormal, infinite and NaN scales, maximal and minimal codes, and
//! activation rows of -128s, 127s and alternating signs; 1 to 8 blocks per row.

use chord_core::quant::simd128::{
    kernels_for, vec_dot_reference, vec_dot_rows, vec_dot_tokens, KERNELS,
};
use chord_core::quant::{
    f32_to_f16, quantize_activations, quantize_row, row_bytes, vec_dot, vec_dot_type, GgmlType,
};

/// xorshift64*: deterministic and dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// Uniform in [-1, 1).
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
    fn bytes(&mut self, out: &mut [u8]) {
        for b in out {
            *b = self.next() as u8;
        }
    }
    /// A float row with a random scale and some outliers, like real activations.
    fn floats(&mut self, n: usize) -> Vec<f32> {
        let scale = 10f32.powf(self.unit() * 3.0);
        (0..n)
            .map(|_| {
                let v = self.unit() * scale;
                if self.below(50) == 0 {
                    v * 20.0
                } else {
                    v
                }
            })
            .collect()
    }
}

/// Byte offsets of the f16 scale fields in a block of `ty` (weights or activations).
fn f16_fields(ty: GgmlType) -> &'static [usize] {
    match ty {
        GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0 => &[0],
        GgmlType::Q4_1 | GgmlType::Q5_1 | GgmlType::Q8_1 | GgmlType::Q4K | GgmlType::Q5K => &[0, 2],
        GgmlType::Q2K => &[80, 82],
        GgmlType::Q3K => &[108],
        GgmlType::Q6K => &[208],
        _ => &[],
    }
}

/// The ways a scale field is filled.
#[derive(Clone, Copy, Debug)]
enum Scale {
    Random,
    One,
    Zero,
    Huge,
    Subnormal,
    Negative,
    Inf,
    NaN,
}

const SCALES: [Scale; 8] = [
    Scale::Random,
    Scale::One,
    Scale::Zero,
    Scale::Huge,
    Scale::Subnormal,
    Scale::Negative,
    Scale::Inf,
    Scale::NaN,
];

fn scale_value(rng: &mut Rng, s: Scale) -> f32 {
    match s {
        Scale::Random => {
            let e = rng.below(20) as i32 - 14;
            rng.unit() * 2f32.powi(e)
        }
        Scale::One => 1.0,
        Scale::Zero => 0.0,
        Scale::Huge => 65504.0,
        Scale::Subnormal => 2f32.powi(-24) * (1 + rng.below(1023)) as f32,
        Scale::Negative => -0.0078125,
        Scale::Inf => f32::INFINITY,
        Scale::NaN => f32::NAN,
    }
}

/// Sets every scale field of the blocks in `row` (type `ty`) as `s` says.
fn set_scales(rng: &mut Rng, ty: GgmlType, row: &mut [u8], s: Scale) {
    for block in row.chunks_exact_mut(ty.type_size()) {
        if ty == GgmlType::Q8K {
            let v = scale_value(rng, s);
            block[..4].copy_from_slice(&v.to_le_bytes());
            continue;
        }
        for &off in f16_fields(ty) {
            let v = scale_value(rng, s);
            block[off..off + 2].copy_from_slice(&f32_to_f16(v).to_le_bytes());
        }
    }
}

/// Rewrites the `bsums` of Q8_K blocks (and the `s` of Q8_1 ones) from their codes,
/// as the quantizers write them.
fn fix_sums(ty: GgmlType, row: &mut [u8]) {
    match ty {
        GgmlType::Q8K => {
            for b in row.chunks_exact_mut(292) {
                for g in 0..16 {
                    let s: i32 = b[4 + 16 * g..4 + 16 * g + 16]
                        .iter()
                        .map(|&q| q as i8 as i32)
                        .sum();
                    b[260 + 2 * g..262 + 2 * g].copy_from_slice(&(s as i16).to_le_bytes());
                }
            }
        }
        GgmlType::Q8_1 => {
            for b in row.chunks_exact_mut(36) {
                let d = chord_core::quant::f16_to_f32(u16::from_le_bytes([b[0], b[1]]));
                let s: i32 = b[4..36].iter().map(|&q| q as i8 as i32).sum();
                b[2..4].copy_from_slice(&f32_to_f16(d * s as f32).to_le_bytes());
            }
        }
        _ => {}
    }
}

/// Byte ranges of the codes (everything but the scale fields and Q8_K's bsums).
fn fill_codes(ty: GgmlType, row: &mut [u8], byte: impl Fn(usize) -> u8) {
    let fields = f16_fields(ty);
    for block in row.chunks_exact_mut(ty.type_size()) {
        for (i, b) in block.iter_mut().enumerate() {
            let is_scale = fields.iter().any(|&o| i == o || i == o + 1)
                || (ty == GgmlType::Q8K && !(4..260).contains(&i));
            if !is_scale {
                *b = byte(i);
            }
        }
    }
}

fn is_float(ty: GgmlType) -> bool {
    matches!(ty, GgmlType::F32 | GgmlType::F16 | GgmlType::BF16)
}

/// Element values of a float row (F32/F16/BF16 bytes).
fn float_values(ty: GgmlType, row: &[u8]) -> Vec<f64> {
    match ty {
        GgmlType::F32 => row
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64)
            .collect(),
        GgmlType::F16 => row
            .chunks_exact(2)
            .map(|c| chord_core::quant::f16_to_f32(u16::from_le_bytes([c[0], c[1]])) as f64)
            .collect(),
        GgmlType::BF16 => row
            .chunks_exact(2)
            .map(|c| chord_core::quant::bf16_to_f32(u16::from_le_bytes([c[0], c[1]])) as f64)
            .collect(),
        _ => unreachable!(),
    }
}

/// Checks `vec_dot` against the reference for one pair of rows.
fn check(ty: GgmlType, w: &[u8], a: &[u8], n: usize, what: &str) {
    let want = vec_dot_reference(ty, w, a, n).unwrap();
    let got = vec_dot(ty, w, a, n).unwrap();
    if is_float(ty) {
        let (x, y) = (float_values(ty, w), float_values(ty, a));
        let mag: f64 = x.iter().zip(&y).map(|(p, q)| (p * q).abs()).sum();
        // 16 lanes of n/16 terms, then a 16-term reduction, in f32.
        let tol = (n as f64 / 16.0 + 24.0) * f32::EPSILON as f64 * mag + 1e-37;
        let err = (got as f64 - want as f64).abs();
        assert!(
            err <= tol || (got.is_nan() && want.is_nan()) || got == want,
            "{ty} {what} n={n}: simd {got} vs reference {want} (err {err:e} > tol {tol:e}, {KERNELS})"
        );
    } else {
        if !(got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan())) {
            eprintln!("w={w:02x?}\na={a:02x?}");
        }
        assert!(
            got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
            "{ty} {what} n={n}: simd {got} vs reference {want} ({})",
            kernels_for(ty)
        );
        // The multi-row and the prefill kernels (several rows or tokens per pass,
        // their own block terms) on the same edge values: the row four times, the
        // activations four times.
        let mut rows = [f32::NAN; 4];
        vec_dot_rows(ty, &w.repeat(4), a, n, &mut rows).unwrap();
        let mut tokens = [f32::NAN; 4];
        vec_dot_tokens(ty, w, 1, &a.repeat(4), n, &mut tokens, 1).unwrap();
        for (k, o) in rows.into_iter().chain(tokens).enumerate() {
            assert!(
                o.to_bits() == want.to_bits() || (o.is_nan() && want.is_nan()),
                "{ty} {what} n={n} {} {}: simd {o} vs reference {want} ({})",
                if k < 4 { "rows, row" } else { "tokens, token" },
                k % 4,
                kernels_for(ty)
            );
        }
    }
}

const QUANT_TYPES: [GgmlType; 12] = [
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
    GgmlType::Q8_1,
    GgmlType::Q2K,
    GgmlType::Q3K,
    GgmlType::Q4K,
    GgmlType::Q5K,
    GgmlType::Q6K,
    GgmlType::Q8K,
];

fn rows(ty: GgmlType, n: usize) -> (Vec<u8>, Vec<u8>) {
    (
        vec![0u8; row_bytes(ty, n).unwrap()],
        vec![0u8; row_bytes(vec_dot_type(ty), n).unwrap()],
    )
}

#[test]
fn which_kernels() {
    eprintln!("vec_dot kernels in this build: {KERNELS}");
    if cfg!(all(target_arch = "wasm32", target_feature = "simd128")) {
        assert_ne!(KERNELS, "scalar");
    } else {
        assert_eq!(KERNELS, "scalar");
    }
    for ty in GgmlType::ALL {
        eprintln!("  {ty}: {}", kernels_for(ty));
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            let avx2 = matches!(ty, GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q8_0);
            assert_eq!(kernels_for(ty) == "avx2", avx2, "{ty}");
        }
    }
}

#[test]
fn quantized_rows_from_random_floats() {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    for ty in QUANT_TYPES {
        let at = vec_dot_type(ty);
        // 70 blocks: a second chunk of the 32-element kernels, with a tail.
        for nb in (1..=8).chain([70]) {
            let n = nb * ty.block_size();
            for rep in 0..6 {
                let (mut w, mut a) = rows(ty, n);
                quantize_row(ty, &rng.floats(n), &mut w).unwrap();
                quantize_activations(at, &rng.floats(n), &mut a).unwrap();
                check(ty, &w, &a, n, &format!("quantized floats #{rep}"));
            }
        }
    }
}

#[test]
fn random_blocks_with_every_kind_of_scale() {
    let mut rng = Rng(0x0bad_cafe_f00d_1234);
    for ty in QUANT_TYPES {
        let at = vec_dot_type(ty);
        for nb in 1..=8 {
            let n = nb * ty.block_size();
            for ws in SCALES {
                for as_ in [Scale::Random, Scale::One, ws] {
                    let (mut w, mut a) = rows(ty, n);
                    rng.bytes(&mut w);
                    rng.bytes(&mut a);
                    set_scales(&mut rng, ty, &mut w, ws);
                    set_scales(&mut rng, at, &mut a, as_);
                    fix_sums(at, &mut a);
                    fix_sums(ty, &mut w);
                    check(
                        ty,
                        &w,
                        &a,
                        n,
                        &format!("random bytes, scales {ws:?}/{as_:?}"),
                    );
                }
            }
        }
    }
}

/// A named byte pattern: byte value for each position.
type Pattern = (&'static str, fn(usize) -> u8);

#[test]
fn extreme_codes_and_activations() {
    let mut rng = Rng(42);
    // Weight code bytes: all zero bits, all one bits, sign bits only, 0x7f, random.
    let weight_patterns: [Pattern; 5] = [
        ("0x00", |_| 0x00),
        ("0xff", |_| 0xff),
        ("0x80", |_| 0x80),
        ("0x7f", |_| 0x7f),
        ("0xaa/0x55", |i| if i % 2 == 0 { 0xaa } else { 0x55 }),
    ];
    let act_patterns: [Pattern; 5] = [
        ("-128", |_| 0x80),
        ("127", |_| 0x7f),
        ("-128/127", |i| if i % 2 == 0 { 0x80 } else { 0x7f }),
        ("-1", |_| 0xff),
        ("0", |_| 0),
    ];
    for ty in QUANT_TYPES {
        let at = vec_dot_type(ty);
        for nb in 1..=8 {
            let n = nb * ty.block_size();
            for (wn, wp) in weight_patterns {
                for (an, ap) in act_patterns {
                    for (ws, as_) in [(Scale::One, Scale::One), (Scale::Random, Scale::Random)] {
                        let (mut w, mut a) = rows(ty, n);
                        set_scales(&mut rng, ty, &mut w, ws);
                        set_scales(&mut rng, at, &mut a, as_);
                        fill_codes(ty, &mut w, wp);
                        fill_codes(at, &mut a, ap);
                        fix_sums(at, &mut a);
                        fix_sums(ty, &mut w);
                        check(ty, &w, &a, n, &format!("weights {wn}, activations {an}"));
                    }
                }
            }
        }
    }
}

#[test]
fn float_rows_of_every_length() {
    let mut rng = Rng(7);
    for ty in [GgmlType::F32, GgmlType::F16, GgmlType::BF16] {
        let lengths = (1..=80).chain([127, 128, 129, 255, 256, 1000, 4096, 4099]);
        for n in lengths {
            for rep in 0..4 {
                let (mut w, mut a) = rows(ty, n);
                quantize_row(ty, &rng.floats(n), &mut w).unwrap();
                quantize_row(ty, &rng.floats(n), &mut a).unwrap();
                check(ty, &w, &a, n, &format!("random #{rep}"));
            }
        }
    }
}

#[test]
fn float_edge_values() {
    let mut rng = Rng(99);
    let specials = [
        0.0f32, -0.0, 65504.0, -65504.0, 6.0e-8, -6.0e-8, 1.0e-5, 1.0e30, -1.0e-38, 1.0, -1.0,
    ];
    for ty in [GgmlType::F32, GgmlType::F16, GgmlType::BF16] {
        for n in [1, 3, 8, 15, 16, 17, 31, 32, 33, 64, 100] {
            let pick = |rng: &mut Rng| {
                (0..n)
                    .map(|_| specials[rng.below(specials.len() as u64) as usize])
                    .collect::<Vec<f32>>()
            };
            let (mut w, mut a) = rows(ty, n);
            quantize_row(ty, &pick(&mut rng), &mut w).unwrap();
            quantize_row(ty, &pick(&mut rng), &mut a).unwrap();
            check(ty, &w, &a, n, "special values");
        }
    }
    // Infinities and NaNs propagate like the reference (inf, -inf or NaN).
    for ty in [GgmlType::F32, GgmlType::F16, GgmlType::BF16] {
        for (x, y) in [
            (f32::INFINITY, 1.0),
            (f32::NEG_INFINITY, 2.0),
            (f32::NAN, 1.0),
            (f32::INFINITY, 0.0),
        ] {
            for n in [1, 17, 40] {
                let mut xs = rng.floats(n);
                let ys = vec![y; n];
                xs[n / 2] = x;
                let (mut w, mut a) = rows(ty, n);
                quantize_row(ty, &xs, &mut w).unwrap();
                quantize_row(ty, &ys, &mut a).unwrap();
                let want = vec_dot_reference(ty, &w, &a, n).unwrap();
                let got = vec_dot(ty, &w, &a, n).unwrap();
                assert!(
                    got == want || (got.is_nan() && want.is_nan()),
                    "{ty} n={n} {x}*{y}: {got} vs {want}"
                );
            }
        }
    }
}

#[test]
fn multi_row_dots_match_single_rows() {
    let mut rng = Rng(0xfeed);
    for ty in GgmlType::ALL {
        let at = vec_dot_type(ty);
        for nb in [1usize, 2, 3, 5, 8] {
            let n = nb * ty.block_size() * if is_float(ty) { 33 } else { 1 };
            let rb = row_bytes(ty, n).unwrap();
            for nrows in 0..=9 {
                let mut w = vec![0u8; rb * nrows];
                for r in w.chunks_exact_mut(rb) {
                    quantize_row(ty, &rng.floats(n), r).unwrap();
                }
                let mut a = vec![0u8; row_bytes(at, n).unwrap()];
                quantize_activations(at, &rng.floats(n), &mut a).unwrap();
                let mut out = vec![f32::NAN; nrows];
                vec_dot_rows(ty, &w, &a, n, &mut out).unwrap();
                for (r, (&o, wr)) in out.iter().zip(w.chunks_exact(rb)).enumerate() {
                    let single = vec_dot(ty, wr, &a, n).unwrap();
                    assert_eq!(
                        o.to_bits(),
                        single.to_bits(),
                        "{ty} n={n} row {r}/{nrows}: {o} vs {single} ({})",
                        kernels_for(ty)
                    );
                }
            }
        }
    }
}

/// The prefill form (several activation rows against several weight rows; four
/// activation rows at a time for the 32-element block formats in wasm) against one
/// `vec_dot` per row and token, bit for bit; outputs outside the rows stay untouched.
#[test]
fn token_tiles_match_single_dots() {
    let mut rng = Rng(0x0071_11e5);
    for ty in GgmlType::ALL {
        let at = vec_dot_type(ty);
        for nb in [1usize, 2, 3, 5, 8, 70] {
            let n = nb * ty.block_size();
            let (rb, ab) = (row_bytes(ty, n).unwrap(), row_bytes(at, n).unwrap());
            for (nrows, ntok) in [(0, 3), (1, 1), (1, 4), (2, 5), (3, 8), (5, 9), (4, 0)] {
                let mut w = vec![0u8; rb * nrows];
                for r in w.chunks_exact_mut(rb) {
                    quant_or_random(&mut rng, ty, n, r);
                }
                let mut a = vec![0u8; ab * ntok];
                for t in a.chunks_exact_mut(ab) {
                    quantize_activations(at, &rng.floats(n), t).unwrap();
                }
                let stride = nrows + 3;
                let mut out = vec![f32::NAN; ntok * stride];
                vec_dot_tokens(ty, &w, nrows, &a, n, &mut out, stride).unwrap();
                for (t, at) in a.chunks_exact(ab).enumerate() {
                    for (r, wr) in w.chunks_exact(rb).enumerate() {
                        let got = out[t * stride + r];
                        let want = vec_dot(ty, wr, at, n).unwrap();
                        assert!(
                            got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
                            "{ty} n={n} token {t}/{ntok} row {r}/{nrows}: {got} vs {want} ({})",
                            kernels_for(ty)
                        );
                    }
                    assert!(out[t * stride + nrows..(t + 1) * stride]
                        .iter()
                        .all(|v| v.is_nan()));
                }
            }
        }
    }
}

/// A weight row quantized from random floats, or (one time in three, quantized
/// formats) random block bytes with random scales, for codes over the whole range.
fn quant_or_random(rng: &mut Rng, ty: GgmlType, n: usize, row: &mut [u8]) {
    if is_float(ty) || rng.below(3) != 0 {
        quantize_row(ty, &rng.floats(n), row).unwrap();
    } else {
        rng.bytes(row);
        set_scales(rng, ty, row, Scale::Random);
        fix_sums(ty, row);
    }
}

#[test]
fn token_tile_length_errors() {
    let ty = GgmlType::Q4_1;
    let (w, a) = rows(ty, 64);
    let mut out = [0f32; 4];
    assert!(vec_dot_tokens(ty, &w, 1, &a, 64, &mut out, 1).is_ok());
    assert!(vec_dot_tokens(ty, &w, 2, &a, 64, &mut out, 2).is_err());
    assert!(vec_dot_tokens(ty, &w, 1, &a[1..], 64, &mut out, 1).is_err());
    assert!(vec_dot_tokens(ty, &w, 1, &[a.clone(), a.clone()].concat(), 64, &mut out, 4).is_err());
    assert!(vec_dot_tokens(ty, &w, 1, &[a.clone(), a].concat(), 64, &mut out, 3).is_ok());
}

#[test]
fn multi_row_length_errors() {
    let ty = GgmlType::Q4_0;
    let (w, a) = rows(ty, 64);
    let mut out = [0f32; 2];
    assert!(vec_dot_rows(ty, &w, &a, 64, &mut out).is_err());
    assert!(vec_dot_rows(ty, &w, &a[1..], 64, &mut out[..1]).is_err());
    assert!(vec_dot_rows(ty, &w, &a, 64, &mut out[..1]).is_ok());
    assert!(vec_dot_reference(ty, &w, &a, 65).is_err());
}
