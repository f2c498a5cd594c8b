//! The dispatched attention ([`attend`]) against its scalar reference
//! ([`attend_reference`]), bit for bit. Built for wasm32 with `+simd128` (and
//! `+relaxed-simd`) the dispatched one runs the SIMD kernels of
//! `ops/attention_simd128.rs`; natively both are the scalar code (the test then checks
//! the dispatch only):
//!
//! ```text
//! cargo test -p wasm-chord-core --test attention_simd
//! RUSTFLAGS="-C target-feature=+simd128,+relaxed-simd" \
//!   cargo test -p wasm-chord-core --target wasm32-wasip2 --test attention_simd
//! RUSTFLAGS="-C target-feature=+simd128" \
//!   cargo test -p wasm-chord-core --target wasm32-wasip2 --test attention_simd
//! ```
//!
//! Inputs: random queries and caches at several magnitudes (scores from flat to
//! saturated softmax weights, i.e. many weights that underflow to 0 or are subnormal),
//! tiny values whose products are subnormal, zeros, infinities and NaNs; head sizes
//! with and without a 64-element step and with tails of every length mod 4; grouped
//! and plain heads; both kernels; every position of a prefill.

use chord_core::ops::{attend, attend_reference, AttnKernel, AttnScratch, AttnShape};

/// xorshift64*: deterministic and dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [-1, 1).
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}

struct Case {
    n_head: usize,
    n_head_kv: usize,
    head_dim: usize,
    positions: usize,
    /// A sliding window (Gemma 3), or every earlier position.
    window: Option<usize>,
}

/// Runs both implementations at every position `0..positions` and compares.
fn compare(case: &Case, q: &[f32], keys: &[f32], values: &[f32], what: &str) {
    let d = case.n_head * case.head_dim;
    let mut s1 = AttnScratch::default();
    let mut s2 = AttnScratch::default();
    for kernel in [AttnKernel::Batch, AttnKernel::Single] {
        for pos in 0..case.positions {
            let qp = &q[pos * d..(pos + 1) * d];
            let mut got = vec![0f32; d];
            let mut want = vec![0f32; d];
            let mut shape = AttnShape::causal(pos, case.n_head, case.n_head_kv, case.head_dim);
            if let Some(w) = case.window {
                shape = shape.window(w);
            }
            attend(qp, keys, values, shape, &mut got, &mut s1, kernel);
            attend_reference(qp, keys, values, shape, &mut want, &mut s2, kernel);
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!(
                    g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()),
                    "{what}: {kernel:?} heads {}/{} head_dim {} pos {pos} out[{i}]: {g:e} vs {w:e}",
                    case.n_head,
                    case.n_head_kv,
                    case.head_dim
                );
            }
        }
    }
}

fn filled(rng: &mut Rng, n: usize, f: &mut dyn FnMut(&mut Rng) -> f32) -> Vec<f32> {
    (0..n).map(|_| f(rng)).collect()
}

#[test]
fn simd_attention_matches_the_scalar_reference() {
    let mut rng = Rng(0x5eed_a77e_0000_0001);
    let cases = [
        // SmolLM2-135M's shape.
        Case {
            n_head: 9,
            n_head_kv: 3,
            head_dim: 64,
            positions: 70,
            window: None,
        },
        Case {
            n_head: 4,
            n_head_kv: 4,
            head_dim: 128,
            positions: 40,
            window: None,
        },
        Case {
            n_head: 2,
            n_head_kv: 1,
            head_dim: 80,
            positions: 33,
            window: None,
        },
        Case {
            n_head: 4,
            n_head_kv: 1,
            head_dim: 64,
            positions: 50,
            window: Some(7),
        },
    ];
    for case in &cases {
        let kv = case.n_head_kv * case.head_dim;
        let n_q = case.positions * case.n_head * case.head_dim;
        let n_kv = case.positions * kv;
        // Score magnitudes: flat, typical, saturated (weights underflowing to 0).
        for mag in [0.01f32, 1.0, 4.0, 40.0] {
            let mut f = |r: &mut Rng| r.unit() * mag;
            let q = filled(&mut rng, n_q, &mut f);
            let k = filled(&mut rng, n_kv, &mut f);
            let v = filled(&mut rng, n_kv, &mut |r| r.unit());
            compare(case, &q, &k, &v, &format!("random x{mag}"));
        }
        // Tiny values (subnormal products and accumulators), exact zeros, huge values.
        let mut special = |r: &mut Rng| match r.next() % 8 {
            0 => 0.0,
            1 => r.unit() * 1e-20,
            2 => r.unit() * 1e-38,
            3 => r.unit() * 1e19,
            _ => r.unit(),
        };
        let q = filled(&mut rng, n_q, &mut special);
        let k = filled(&mut rng, n_kv, &mut special);
        let v = filled(&mut rng, n_kv, &mut special);
        compare(case, &q, &k, &v, "special values");
        // Overflowing scores (softmax of inf: NaN) and non-finite values.
        let mut nonfinite = |r: &mut Rng| match r.next() % 64 {
            0 => f32::INFINITY,
            1 => f32::NAN,
            2 => 3e38,
            _ => r.unit(),
        };
        let q = filled(&mut rng, n_q, &mut nonfinite);
        let k = filled(&mut rng, n_kv, &mut nonfinite);
        let v = filled(&mut rng, n_kv, &mut nonfinite);
        compare(case, &q, &k, &v, "non-finite values");
    }
}

#[test]
fn every_head_size_tail() {
    let mut rng = Rng(77);
    for head_dim in (1..=9).chain([63, 65, 66, 67, 127, 131]) {
        let case = Case {
            n_head: 2,
            n_head_kv: 1,
            head_dim,
            positions: 20,
            window: None,
        };
        let mut f = |r: &mut Rng| r.unit() * 2.0;
        let q = filled(&mut rng, case.positions * 2 * head_dim, &mut f);
        let k = filled(&mut rng, case.positions * head_dim, &mut f);
        let v = filled(&mut rng, case.positions * head_dim, &mut f);
        compare(&case, &q, &k, &v, "random");
    }
}

/// The dispatched SwiGLU ([`swiglu`]: SIMD in wasm) against its scalar reference, bit for
/// bit: random values at every magnitude (exponentials that overflow, underflow or are
/// subnormal), zeros, infinities and NaNs, every length mod 4.
#[test]
fn swiglu_matches_its_reference() {
    use chord_core::ops::ggml_order::{swiglu, swiglu_reference};
    let mut rng = Rng(0x51_9100);
    let specials = [
        0.0,
        -0.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        1e-40,
        -1e-40,
    ];
    for n in 0..70 {
        for scale in [1.0f32, 8.0, 100.0, 1e4] {
            let mut gate: Vec<f32> = (0..n).map(|_| rng.unit() * scale).collect();
            let up: Vec<f32> = (0..n).map(|_| rng.unit() * scale).collect();
            if n > 0 {
                let i = (rng.next() % n as u64) as usize;
                gate[i] = specials[(rng.next() % specials.len() as u64) as usize];
            }
            let mut want = gate.clone();
            swiglu_reference(&mut want, &up);
            swiglu(&mut gate, &up);
            for (i, (g, w)) in gate.iter().zip(&want).enumerate() {
                assert!(
                    g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()),
                    "n={n} scale={scale} [{i}]: {g:e} vs {w:e}"
                );
            }
        }
    }
}
