//! Attention micro-benchmark: the attention of one layer over a whole prefill of `ctx`
//! tokens (token `t` attends to positions `0..=t`, the prompt-processing kernel), with
//! the dispatched kernels ([`attend`]: SIMD in wasm builds) and the scalar reference
//! ([`attend_reference`]). Default shape: SmolLM2-135M (9 heads, 3 KV heads, head size
//! 64, 30 layers), so `x layers` is the attention time of a `ppN` run of that model.
//!
//! ```text
//! cargo bench -p wasm-chord-core --bench attention                       # native
//! RUSTFLAGS="-C target-feature=+simd128,+relaxed-simd" \
//!   cargo bench -p wasm-chord-core --bench attention --target wasm32-wasip2
//! RUSTFLAGS="-C target-feature=+simd128" \
//!   cargo bench -p wasm-chord-core --bench attention --target wasm32-wasip2
//! ```
//!
//! Options (after `--`): `--ctx N` (default 512; repeatable), `--heads H KV HD`,
//! `--layers L`, `--secs S` per measurement (default 1).

use std::hint::black_box;
use std::time::{Duration, Instant};

use chord_core::ops::{attend, attend_reference, AttnKernel, AttnScratch, AttnShape};
use chord_core::quant::simd128::KERNELS;

type Attend = fn(&[f32], &[f32], &[f32], AttnShape, &mut [f32], &mut AttnScratch, AttnKernel);

/// Best time of one pass of `f`, repeated for at least `secs` (after one warm-up).
fn time(secs: f64, mut f: impl FnMut()) -> Duration {
    f();
    let mut best = Duration::MAX;
    let start = Instant::now();
    let mut passes = 0;
    while passes < 2 || start.elapsed().as_secs_f64() < secs {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed());
        passes += 1;
    }
    best
}

fn main() {
    let mut ctxs = Vec::new();
    let (mut n_head, mut n_head_kv, mut head_dim, mut layers, mut secs) = (9, 3, 64, 30, 1.0);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut num = |what: &str| -> f64 {
            args.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{what} needs a number"))
        };
        match a.as_str() {
            "--bench" => {}
            "--ctx" => ctxs.push(num("--ctx") as usize),
            "--heads" => {
                n_head = num("--heads") as usize;
                n_head_kv = num("--heads") as usize;
                head_dim = num("--heads") as usize;
            }
            "--layers" => layers = num("--layers") as usize,
            "--secs" => secs = num("--secs"),
            other => panic!("unknown argument {other:?}"),
        }
    }
    if ctxs.is_empty() {
        ctxs.push(512);
    }
    let target = if cfg!(target_arch = "wasm32") {
        "wasm32"
    } else {
        std::env::consts::ARCH
    };
    println!(
        "# attention of one layer over a prefill: {n_head} heads, {n_head_kv} KV heads, head size {head_dim}, {target}, kernels: {KERNELS}"
    );
    println!("| ctx | reference ms | dispatched ms | speedup | x {layers} layers: reference s | dispatched s |");
    println!("|---:|---:|---:|---:|---:|---:|");
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut unit = move || {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    };
    for ctx in ctxs {
        let d = n_head * head_dim;
        let kv = n_head_kv * head_dim;
        let q: Vec<f32> = (0..ctx * d).map(|_| unit() * 2.0).collect();
        let keys: Vec<f32> = (0..ctx * kv).map(|_| unit() * 2.0).collect();
        let values: Vec<f32> = (0..ctx * kv).map(|_| unit()).collect();
        let mut out = vec![0f32; ctx * d];
        let mut scratch = AttnScratch::default();
        let mut prefill = |f: Attend| {
            time(secs, || {
                for t in 0..ctx {
                    f(
                        black_box(&q[t * d..(t + 1) * d]),
                        &keys,
                        &values,
                        AttnShape::causal(t, n_head, n_head_kv, head_dim),
                        &mut out[t * d..(t + 1) * d],
                        &mut scratch,
                        AttnKernel::for_batch(ctx),
                    );
                }
                black_box(&mut out);
            })
        };
        let t_ref = prefill(attend_reference);
        let t_dis = prefill(attend);
        let ms = |t: Duration| t.as_secs_f64() * 1e3;
        println!(
            "| {ctx} | {:.2} | {:.2} | {:.1}x | {:.3} | {:.3} |",
            ms(t_ref),
            ms(t_dis),
            t_ref.as_secs_f64() / t_dis.as_secs_f64(),
            t_ref.as_secs_f64() * layers as f64,
            t_dis.as_secs_f64() * layers as f64,
        );
    }
}
