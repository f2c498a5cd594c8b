//! Prompt-processing and decoding throughput of the engine as built for this target,
//! on a real model (default: SmolLM2-135M-Instruct Q4_1 from the model cache), with
//! `throughput::run_tokens`, the workload of `chord bench`. Built for wasm32 it runs
//! the core engine with the weights in its one linear memory (the component reads
//! them from a second memory in 128 KiB copies: close, not identical):
//!
//! ```text
//! WASM_RUNNER_DIRS=$HOME/.cache/wasm-chord/models \
//! RUSTFLAGS="-C target-feature=+simd128,+relaxed-simd" \
//!   cargo bench -p wasm-chord-core --bench prefill --target wasm32-wasip2 -- --pp 512 --tg 32
//! ```
//!
//! Options (after `--`): `--model PATH`, `--pp N` (default 512), `--tg N` (default 0),
//! `--reps N` (default 1; the best run is reported).

use std::time::Instant;

use chord_core::gguf::Gguf;
use chord_core::model::DecoderModel;
use chord_core::quant::simd128::KERNELS;
use chord_core::throughput::run_tokens;
use chord_core::weights::SliceWeights;

fn main() {
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    let mut model = format!("{home}/.cache/wasm-chord/models/smollm2-135m-instruct-q4_1.gguf");
    let (mut pp, mut tg, mut reps) = (512usize, 0usize, 1usize);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut num = |what: &str| -> usize {
            args.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{what} needs a number"))
        };
        match a.as_str() {
            "--bench" => {}
            "--model" => model = args.next().expect("--model needs a path"),
            "--pp" => pp = num("--pp"),
            "--tg" => tg = num("--tg"),
            "--reps" => reps = num("--reps").max(1),
            other => panic!("unknown argument {other:?}"),
        }
    }
    let bytes = std::fs::read(&model).unwrap_or_else(|e| panic!("reading {model}: {e}"));
    let g = Gguf::read(bytes.as_slice()).expect("GGUF");
    let m = DecoderModel::load(&g, Box::new(SliceWeights(bytes))).expect("model");
    // Token ids of ordinary text range; the content does not change the work.
    let ids: Vec<u32> = (0..pp.max(1))
        .map(|i| 100 + (i as u32 * 37) % 900)
        .collect();
    let target = if cfg!(target_arch = "wasm32") {
        "wasm32"
    } else {
        std::env::consts::ARCH
    };
    println!("# {model}: {target}, kernels: {KERNELS}, best of {reps}");
    let best = |work: &dyn Fn()| {
        (0..reps)
            .map(|_| {
                let t = Instant::now();
                work();
                t.elapsed().as_secs_f64()
            })
            .fold(f64::INFINITY, f64::min)
    };
    if pp > 0 {
        let s = best(&|| {
            run_tokens(&m, &ids[..pp], 0).expect("prefill");
        });
        println!("pp{pp}: {:.2} tok/s ({s:.2} s)", pp as f64 / s);
    }
    if tg > 0 {
        // One prompt token, then `tg` decoding steps.
        let s = best(&|| {
            run_tokens(&m, &ids[..1], tg).expect("decode");
        });
        println!("tg{tg}: {:.2} tok/s ({s:.2} s)", tg as f64 / s);
    }
}
