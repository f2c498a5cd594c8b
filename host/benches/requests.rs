//! Per-request cost of the component, and steady-state decode speed, native vs
//! component, in one run:
//!
//!     cargo bench -p chord --bench requests [-- --model PATH --requests N --tokens N]
//!
//! A request = fresh `Store` + instantiate + weights load (the guest copies the GGUF
//! into its 64-bit weights memory) + prompt + first token. Medians over N requests.
//! Needs `cargo xtask build --release`; the model defaults to SmolLM2-135M Q4_1.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use chord::runtime::{ComponentEngine, SamplingParams};
use chord_core::engine::Engine;
use chord_core::sampler;

const PROMPT: &str = "The capital of France is";

struct Args {
    model: PathBuf,
    component: PathBuf,
    requests: usize,
    tokens: u32,
}

fn args() -> Result<Args> {
    let mut a = Args {
        model: PathBuf::new(),
        component: std::env::var_os("WASM_CHORD_COMPONENT")
            .map(PathBuf::from)
            .unwrap_or_else(|| chord::built_component("wasm-chord.wasm")),
        requests: 10,
        tokens: 64,
    };
    let mut model = None;
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().with_context(|| format!("{k} needs a value"));
        match k.as_str() {
            "--model" => model = Some(PathBuf::from(v()?)),
            "--component" => a.component = PathBuf::from(v()?),
            "--requests" => a.requests = v()?.parse()?,
            "--tokens" => a.tokens = v()?.parse()?,
            "--bench" => {}
            other => anyhow::bail!("unknown argument {other}"),
        }
    }
    a.model = match model {
        Some(m) => m,
        None => chord::models::default_model()?,
    };
    Ok(a)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Greedy, no early stop: exactly `tokens` tokens unless the model ends first.
fn params(tokens: u32) -> SamplingParams {
    SamplingParams {
        max_tokens: Some(tokens),
        temperature: Some(0.0),
        ..Default::default()
    }
}

fn main() -> Result<()> {
    let a = args()?;
    println!(
        "model {}  ({} requests, {} decode tokens)",
        a.model.display(),
        a.requests,
        a.tokens
    );

    // Component: one engine per process (compile or load the .cwasm once).
    let t0 = Instant::now();
    let mut engine = ComponentEngine::new(&a.component).with_context(|| {
        format!(
            "loading {} (cargo xtask build --release)",
            a.component.display()
        )
    })?;
    engine.load_model(&a.model)?;
    println!(
        "component ready in {:.1} ms (compiled code from cache: {})",
        ms(t0.elapsed()),
        engine.load_stats().from_cache
    );
    let (mut inst_t, mut load_t, mut first_t, mut total_t) = (vec![], vec![], vec![], vec![]);
    for _ in 0..a.requests {
        let t0 = Instant::now();
        let mut inst = engine.instance()?;
        inst_t.push(inst.instantiate_time);
        let t1 = Instant::now();
        inst.info()?; // loads the weights
        load_t.push(t1.elapsed());
        let mut first = None;
        inst.stream(PROMPT, &params(1), |_| {
            first.get_or_insert(t0.elapsed());
            true
        })?;
        first_t.push(first.unwrap_or(t0.elapsed()));
        total_t.push(t0.elapsed());
    }
    println!("per request (median of {}):", a.requests);
    println!("  store + instantiate   {:8.3} ms", ms(median(inst_t)));
    println!("  weights load          {:8.3} ms", ms(median(load_t)));
    println!("  to first token        {:8.3} ms", ms(median(first_t)));
    println!("  whole request         {:8.3} ms", ms(median(total_t)));

    // Steady state: decode speed on one warm instance, then natively.
    let mut inst = engine.instance()?;
    inst.generate(PROMPT, &params(4))?; // warm-up
    let t = Instant::now();
    let out = inst.generate(PROMPT, &params(a.tokens))?;
    let comp_tps = out.usage.generated_tokens as f64 / t.elapsed().as_secs_f64();

    let native: Engine = chord::native::load_engine(&a.model)?;
    let p = sampler::SamplingParams {
        temperature: 0.0,
        max_tokens: a.tokens,
        ..Default::default()
    };
    native.generate(PROMPT, &sampler::SamplingParams { max_tokens: 4, ..p })?;
    let t = Instant::now();
    let (_, _, usage) = native.generate(PROMPT, &p)?;
    let native_tps = usage.completion_tokens as f64 / t.elapsed().as_secs_f64();
    println!(
        "steady state (prompt + {} tokens, incl. prefill):",
        a.tokens
    );
    println!("  component   {comp_tps:7.1} tok/s");
    println!("  native      {native_tps:7.1} tok/s");
    println!("  component / native = {:.2}", comp_tps / native_tps);
    Ok(())
}
