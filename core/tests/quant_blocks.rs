//! Quantized block formats against vectors written by ggml itself
//! (`fixtures/quant/blocks.jsonl`), plus self-consistency and error-handling checks.
//!
//! Fixture floats are printed with 9 significant digits, which round-trips every f32
//! (FLT_DECIMAL_DIG = 9), so they are compared exactly (as bits) after parsing.

use chord_core::quant::{
    dequantize_row, quantize_activations, quantize_row, row_bytes, vec_dot, vec_dot_type, GgmlType,
    QuantError, QuantizedActivations,
};

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../fixtures/quant/blocks.jsonl"
);

struct Case {
    line: usize,
    ty: GgmlType,
    n: usize,
    x: Vec<f32>,
    q: Vec<u8>,
    dequant: Vec<f32>,
    /// `(y, y_type, y_q, dot)` for the cases with a dot product.
    dot: Option<(Vec<f32>, GgmlType, Vec<u8>, f32)>,
}

fn hex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digit"))
        .collect()
}

fn floats(v: &serde_json::Value) -> Vec<f32> {
    v.as_array()
        .expect("array of numbers")
        .iter()
        .map(|x| x.as_f64().expect("number") as f32)
        .collect()
}

fn cases() -> Vec<Case> {
    let text = std::fs::read_to_string(FIXTURE).unwrap_or_else(|e| panic!("{FIXTURE}: {e}"));
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(line).expect("json line");
        let ty = GgmlType::from_name(v["type"].as_str().unwrap()).expect("known type");
        let n = v["n"].as_u64().unwrap() as usize;
        let dot = v.get("y_type").map(|yt| {
            (
                floats(&v["y"]),
                GgmlType::from_name(yt.as_str().unwrap()).expect("known y_type"),
                hex(v["y_q"].as_str().unwrap()),
                v["dot"].as_f64().unwrap() as f32,
            )
        });
        let case = Case {
            line: i + 1,
            ty,
            n,
            x: floats(&v["x"]),
            q: hex(v["q"].as_str().unwrap()),
            dequant: floats(&v["dequant"]),
            dot,
        };
        assert_eq!(case.x.len(), n);
        assert_eq!(case.dequant.len(), n);
        out.push(case);
    }
    assert!(!out.is_empty());
    out
}

fn first_diff<T: PartialEq>(a: &[T], b: &[T]) -> Option<usize> {
    a.iter().zip(b).position(|(x, y)| x != y)
}

#[test]
fn fixture_floats_round_trip_through_their_decimal_form() {
    // 9 significant digits identify an f32 uniquely: printing what we parsed with 9
    // digits and parsing again must give the same bits.
    for c in cases() {
        for &v in c.x.iter().chain(&c.dequant) {
            let again: f32 = format!("{v:.8e}").parse().unwrap();
            assert_eq!(again.to_bits(), v.to_bits(), "line {}", c.line);
        }
    }
}

#[test]
fn fixtures_quantize_bit_exact() {
    let cases = cases();
    let mut failures = Vec::new();
    for c in &cases {
        let mut q = vec![0u8; row_bytes(c.ty, c.n).unwrap()];
        quantize_row(c.ty, &c.x, &mut q).unwrap();
        if q != c.q {
            let at = first_diff(&q, &c.q).unwrap_or(q.len().min(c.q.len()));
            failures.push(format!(
                "line {} {} n={}: first differing byte {} (block {})",
                c.line,
                c.ty,
                c.n,
                at,
                at / c.ty.type_size()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    eprintln!(
        "quantize: {} of {} cases bit-exact",
        cases.len(),
        cases.len()
    );
}

#[test]
fn fixtures_dequantize_bit_exact() {
    let cases = cases();
    let mut failures = Vec::new();
    let mut checked = 0;
    for c in &cases {
        if c.ty == GgmlType::Q8K {
            // ggml has no Q8_K dequantizer in its type traits: the fixture holds zeros.
            assert!(c.dequant.iter().all(|&v| v == 0.0), "line {}", c.line);
            continue;
        }
        checked += 1;
        let mut y = vec![0f32; c.n];
        dequantize_row(c.ty, &c.q, &mut y).unwrap();
        let ours: Vec<u32> = y.iter().map(|v| v.to_bits()).collect();
        let theirs: Vec<u32> = c.dequant.iter().map(|v| v.to_bits()).collect();
        if let Some(i) = first_diff(&ours, &theirs) {
            failures.push(format!(
                "line {} {} n={}: element {i}: ours {} ggml {}",
                c.line, c.ty, c.n, y[i], c.dequant[i]
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} cases differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!("dequantize: {checked} cases bit-exact (q8_K skipped: no ggml dequantizer)");
}

#[test]
fn fixtures_activation_quantize_bit_exact() {
    let cases = cases();
    let mut failures = Vec::new();
    let mut checked = 0;
    let mut ref_differs = 0;
    for c in &cases {
        let Some((y, y_type, y_q, _)) = &c.dot else {
            continue;
        };
        assert_eq!(*y_type, vec_dot_type(c.ty), "line {}: vec_dot_type", c.line);
        checked += 1;
        let mut q = vec![0u8; row_bytes(*y_type, c.n).unwrap()];
        quantize_activations(*y_type, y, &mut q).unwrap();
        if &q != y_q {
            failures.push(format!(
                "line {} {} n={}: first differing byte {:?}",
                c.line,
                y_type,
                c.n,
                first_diff(&q, y_q)
            ));
        }
        let a = QuantizedActivations::for_weights(c.ty, y).unwrap();
        assert_eq!(a.bytes(), &q[..], "line {}", c.line);
        // For information: ggml's reference quantizer (model files) differs from the
        // CPU activation quantizer for Q8_0/Q8_1 on x86.
        let mut r = vec![0u8; q.len()];
        quantize_row(*y_type, y, &mut r).unwrap();
        if r != q {
            ref_differs += 1;
        }
    }
    assert!(
        failures.is_empty(),
        "{} cases differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!(
        "activation quantize: {checked} cases bit-exact; the reference quantizer would differ in {ref_differs}"
    );
}

#[test]
fn fixtures_vec_dot_within_tolerance() {
    let cases = cases();
    let mut failures = Vec::new();
    let mut worst = Vec::new();
    for c in &cases {
        let Some((_, y_type, y_q, dot)) = &c.dot else {
            continue;
        };
        let tol = match c.ty {
            GgmlType::F16 | GgmlType::BF16 | GgmlType::Q8_0 => 1e-5,
            _ => 1e-4,
        };
        let ours = vec_dot(c.ty, &c.q, y_q, c.n).unwrap();
        let rel = ((ours - dot).abs() / dot.abs().max(f32::MIN_POSITIVE)) as f64;
        worst.push((c.ty, rel));
        if rel.is_nan() || rel > tol {
            // Tell apart our error from ggml's: the exact dot of the two dequantized rows.
            let mut w = vec![0f32; c.n];
            let mut a = vec![0f32; c.n];
            dequantize_row(c.ty, &c.q, &mut w).unwrap();
            dequantize_row(*y_type, y_q, &mut a).unwrap();
            let exact: f64 = w.iter().zip(&a).map(|(&p, &q)| p as f64 * q as f64).sum();
            failures.push(format!(
                "line {} {} n={}: ours {ours} ggml {dot} (rel {rel:.2e} > {tol:e}); exact {exact}",
                c.line, c.ty, c.n
            ));
        }
    }
    worst.sort_by(|a, b| b.1.total_cmp(&a.1));
    eprintln!(
        "largest relative dot errors: {:?}",
        &worst[..worst.len().min(5)]
    );
    assert!(
        failures.is_empty(),
        "{} dots out of tolerance:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

// ------------------------------------------------------------------ self-consistency

/// xorshift64* with a Box-Muller-free approximately normal sampler.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [0, 1).
    fn uniform(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }
    /// Roughly normal (Irwin-Hall with 4 terms), mean 0, variance 1.
    fn normal(&mut self) -> f32 {
        let s: f32 = (0..4).map(|_| self.uniform()).sum();
        (s - 2.0) * 3f32.sqrt()
    }
    /// A test row: normal values at a random scale, with an occasional outlier, an
    /// all-positive or all-zero block, exact zeros and repeated values.
    fn row(&mut self, n: usize) -> Vec<f32> {
        let scale = [1e-3f32, 0.05, 1.0, 7.0, 300.0][(self.next_u64() % 5) as usize];
        let mut v: Vec<f32> = (0..n).map(|_| self.normal() * scale).collect();
        match self.next_u64() % 6 {
            0 => {
                let i = (self.next_u64() as usize) % n;
                v[i] *= 20.0;
            }
            1 => {
                let b = (self.next_u64() as usize) % (n / 32);
                v[32 * b..32 * b + 32].iter_mut().for_each(|x| *x = 0.0);
            }
            2 => {
                let b = (self.next_u64() as usize) % (n / 32);
                v[32 * b..32 * b + 32]
                    .iter_mut()
                    .for_each(|x| *x = x.abs() + scale);
            }
            3 => {
                for i in (0..n).step_by(7) {
                    v[i] = 0.0;
                }
            }
            4 => {
                let c = v[0];
                v[..16].iter_mut().for_each(|x| *x = c);
            }
            _ => {}
        }
        v
    }
}

#[test]
fn vec_dot_matches_dot_of_dequantized_rows_for_every_format() {
    let mut rng = Rng(0x1234_5678_9ABC_DEF1);
    for ty in GgmlType::ALL {
        for iter in 0..40 {
            let n = [256usize, 512, 768, 1024][iter % 4];
            let x = rng.row(n);
            let y = rng.row(n);

            let mut w = vec![0u8; row_bytes(ty, n).unwrap()];
            quantize_row(ty, &x, &mut w).unwrap();
            let act = QuantizedActivations::for_weights(ty, &y).unwrap();
            assert_eq!(act.ty(), vec_dot_type(ty));
            assert_eq!(act.len(), n);

            let got = act.dot(ty, &w).unwrap();
            assert_eq!(
                got.to_bits(),
                vec_dot(ty, &w, act.bytes(), n).unwrap().to_bits()
            );

            let mut wf = vec![0f32; n];
            dequantize_row(ty, &w, &mut wf).unwrap();
            let af = act.to_f32();
            let mut exact: f64 = wf.iter().zip(&af).map(|(&p, &q)| p as f64 * q as f64).sum();
            let mag: f64 = wf
                .iter()
                .zip(&af)
                .map(|(&p, &q)| (p as f64 * q as f64).abs())
                .sum();
            if matches!(ty, GgmlType::Q4_1 | GgmlType::Q5_1) {
                // The Q8_1 block field `s` is `d * sum(q)` rounded to f16, and the format
                // defines the weight minimum's contribution as `m * s`: use that.
                exact += q8_1_min_correction(ty, &w, act.bytes(), &af);
            }
            let err = (got as f64 - exact).abs();
            assert!(
                err <= 1e-5 * mag + 1e-30,
                "{ty} n={n} iter {iter}: vec_dot {got} vs exact {exact} (err {err:e}, magnitude {mag:e})"
            );

            // The dequantized weights are close to the input (a sanity check of the
            // quantizer, loose: 2-bit codes are coarse).
            let rms =
                |v: &[f32]| (v.iter().map(|&t| t as f64 * t as f64).sum::<f64>() / n as f64).sqrt();
            let diff: Vec<f32> = x.iter().zip(&wf).map(|(a, b)| a - b).collect();
            let bound = match ty {
                GgmlType::F32 => 0.0,
                GgmlType::F16 | GgmlType::BF16 => 0.01,
                GgmlType::Q8_0 | GgmlType::Q8_1 | GgmlType::Q8K | GgmlType::Q6K => 0.05,
                GgmlType::Q5_0
                | GgmlType::Q5_1
                | GgmlType::Q5K
                | GgmlType::Q4_0
                | GgmlType::Q4_1
                | GgmlType::Q4K => 0.25,
                GgmlType::Q3K => 0.45,
                GgmlType::Q2K => 0.8,
            };
            assert!(
                rms(&diff) <= bound * rms(&x) + 1e-30,
                "{ty} n={n} iter {iter}: quantization error rms {} vs signal rms {}",
                rms(&diff),
                rms(&x)
            );
        }
    }
}

/// `sum over blocks of m * (s - sum(d * q))` for Q4_1/Q5_1 weights (`m` at bytes 2..4)
/// and Q8_1 activations (`s` at bytes 2..4): the difference between the format's
/// definition of the dot product and the dot of the dequantized rows.
fn q8_1_min_correction(ty: GgmlType, w: &[u8], act: &[u8], af: &[f32]) -> f64 {
    let f16 = |b: &[u8]| chord_core::quant::f16_to_f32(u16::from_le_bytes([b[2], b[3]])) as f64;
    w.chunks_exact(ty.type_size())
        .zip(act.chunks_exact(GgmlType::Q8_1.type_size()))
        .zip(af.chunks_exact(32))
        .map(|((wb, ab), a)| {
            let sum: f64 = a.iter().map(|&v| v as f64).sum();
            f16(wb) * (f16(ab) - sum)
        })
        .sum()
}

#[test]
fn activation_quantizers_round_ties_to_even_unlike_the_reference_ones() {
    // amax = 127 makes d = 1 and the multiplier 1 in both quantizers, so 2.5 and -3.5
    // are exact ties: ggml's reference rounds them away from zero (roundf), its x86
    // activation code to even (_mm256_round_ps).
    let mut x = vec![0f32; 32];
    x[0] = 127.0;
    x[1] = 2.5;
    x[2] = -3.5;
    for ty in [GgmlType::Q8_0, GgmlType::Q8_1] {
        let off = ty.type_size() - 32;
        let mut r = vec![0u8; ty.type_size()];
        let mut a = vec![0u8; ty.type_size()];
        quantize_row(ty, &x, &mut r).unwrap();
        quantize_activations(ty, &x, &mut a).unwrap();
        assert_eq!(
            [r[off + 1] as i8, r[off + 2] as i8],
            [3, -4],
            "{ty} reference"
        );
        assert_eq!(
            [a[off + 1] as i8, a[off + 2] as i8],
            [2, -4],
            "{ty} activations"
        );
    }
}

#[test]
fn zero_rows_quantize_to_zero() {
    for ty in GgmlType::ALL {
        let n = 512;
        let x = vec![0f32; n];
        let mut w = vec![0xAAu8; row_bytes(ty, n).unwrap()];
        quantize_row(ty, &x, &mut w).unwrap();
        let mut back = vec![1f32; n];
        dequantize_row(ty, &w, &mut back).unwrap();
        assert!(back.iter().all(|&v| v == 0.0), "{ty}");
        let act = QuantizedActivations::for_weights(ty, &x).unwrap();
        assert_eq!(act.dot(ty, &w).unwrap(), 0.0, "{ty}");
    }
}

#[test]
fn requantize_reuses_the_buffer_and_switches_format() {
    let mut rng = Rng(7);
    let y1 = rng.row(512);
    let y2 = rng.row(512);
    let mut act = QuantizedActivations::empty(GgmlType::Q8K);
    assert!(act.is_empty());
    act.requantize(&y1).unwrap();
    let cap = act.bytes().as_ptr();
    act.requantize(&y2).unwrap();
    assert_eq!(act.bytes().as_ptr(), cap, "same allocation");
    assert_eq!(act, QuantizedActivations::new(GgmlType::Q8K, &y2).unwrap());

    act.requantize_as(GgmlType::Q8_0, &y1).unwrap();
    assert_eq!(act.ty(), GgmlType::Q8_0);
    assert_eq!(act.bytes().len(), row_bytes(GgmlType::Q8_0, 512).unwrap());
}

// ------------------------------------------------------------------ errors

#[test]
fn wrong_lengths_are_errors_not_panics() {
    for ty in GgmlType::ALL {
        let bs = ty.block_size();
        let ts = ty.type_size();
        let n = 2 * QK;
        let good = row_bytes(ty, n).unwrap();
        let x = vec![0.5f32; n];

        // Element counts that are not whole blocks.
        if bs > 1 {
            let bad_n = n + 1;
            let mut dst = vec![0u8; good];
            assert!(matches!(
                quantize_row(
                    ty,
                    &x[..bad_n.min(n)]
                        .iter()
                        .chain([1.0f32].iter())
                        .copied()
                        .collect::<Vec<_>>(),
                    &mut dst
                ),
                Err(QuantError::NotBlockMultiple { .. })
            ));
            let mut out = vec![0f32; bad_n];
            assert!(matches!(
                dequantize_row(ty, &dst, &mut out),
                Err(QuantError::NotBlockMultiple { .. })
            ));
            assert!(matches!(
                vec_dot(ty, &dst, &dst, bad_n),
                Err(QuantError::NotBlockMultiple { .. })
            ));
            assert!(matches!(
                row_bytes(ty, bad_n),
                Err(QuantError::NotBlockMultiple { .. })
            ));
        }

        // Byte buffers one byte / one block too short or too long.
        for bad in [good - 1, good + 1, good - ts, good + ts, 0] {
            let mut dst = vec![0u8; bad];
            assert!(
                matches!(
                    quantize_row(ty, &x, &mut dst),
                    Err(QuantError::ByteLength { .. })
                ),
                "{ty} {bad}"
            );
            assert!(matches!(
                quantize_activations(ty, &x, &mut dst),
                Err(QuantError::ByteLength { .. })
            ));
            let mut out = vec![0f32; n];
            assert!(matches!(
                dequantize_row(ty, &dst, &mut out),
                Err(QuantError::ByteLength { .. })
            ));

            let w = vec![0u8; good];
            let act_good = vec![0u8; row_bytes(vec_dot_type(ty), n).unwrap()];
            assert!(matches!(
                vec_dot(ty, &dst, &act_good, n),
                Err(QuantError::ByteLength { .. })
            ));
            let act_bad = vec![0u8; act_good.len() ^ 1];
            assert!(matches!(
                vec_dot(ty, &w, &act_bad, n),
                Err(QuantError::ByteLength { .. })
            ));
            assert_eq!(vec_dot(ty, &w, &act_good, n).unwrap(), 0.0);
        }

        // Empty rows are fine.
        quantize_row(ty, &[], &mut []).unwrap();
        dequantize_row(ty, &[], &mut []).unwrap();
        assert_eq!(vec_dot(ty, &[], &[], 0).unwrap(), 0.0);

        // Activations of the wrong format, or the wrong length.
        let w = vec![0u8; good];
        let other = if vec_dot_type(ty) == GgmlType::F32 {
            GgmlType::F16
        } else {
            GgmlType::F32
        };
        let act = QuantizedActivations::new(other, &x).unwrap();
        assert!(
            matches!(act.dot(ty, &w), Err(QuantError::Unsupported { .. })),
            "{ty}"
        );
        let act = QuantizedActivations::for_weights(ty, &x).unwrap();
        assert!(matches!(
            act.dot(ty, &w[..good - ts]),
            Err(QuantError::ByteLength { .. })
        ));
    }
}

#[test]
fn non_finite_and_huge_inputs_and_garbage_blocks_do_not_panic() {
    // Results are unspecified (as in ggml), but nothing may panic or overflow, even
    // with overflow checks on, and arbitrary bytes must be accepted as blocks.
    let mut rng = Rng(99);
    let specials = [
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::MAX,
        -f32::MAX,
        1e-45,
        -0.0,
    ];
    for ty in GgmlType::ALL {
        let n = 512;
        for s in specials {
            let mut x = rng.row(n);
            for i in (0..n).step_by(5) {
                x[i] = s;
            }
            let mut w = vec![0u8; row_bytes(ty, n).unwrap()];
            quantize_row(ty, &x, &mut w).unwrap();
            let act = QuantizedActivations::for_weights(ty, &x).unwrap();
            let _ = act.dot(ty, &w).unwrap();
            let mut back = vec![0f32; n];
            dequantize_row(ty, &w, &mut back).unwrap();
        }
        let garbage: Vec<u8> = (0..row_bytes(ty, n).unwrap())
            .map(|_| rng.next_u64() as u8)
            .collect();
        let act_garbage: Vec<u8> = (0..row_bytes(vec_dot_type(ty), n).unwrap())
            .map(|_| rng.next_u64() as u8)
            .collect();
        let _ = vec_dot(ty, &garbage, &act_garbage, n).unwrap();
        let mut back = vec![0f32; n];
        dequantize_row(ty, &garbage, &mut back).unwrap();
    }
}

#[test]
fn failed_requantize_leaves_activations_unchanged() {
    let x = vec![1.0f32; 256];
    let mut act = QuantizedActivations::new(GgmlType::Q8K, &x).unwrap();
    let before = act.clone();
    assert!(act.requantize(&x[..100]).is_err());
    assert_eq!(act, before);
    assert!(act.requantize_as(GgmlType::Q8_0, &x[..100]).is_err());
    assert_eq!(act, before);
    assert!(QuantizedActivations::new(GgmlType::Q8_0, &x[..33]).is_err());
}

/// Elements in two K-quant super-blocks (also a whole number of every other block).
const QK: usize = 256;
