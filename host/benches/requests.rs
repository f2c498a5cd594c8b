//! Per-request cost of the component, and steady-state decode speed, native vs
//! component, in one run:
//!
//!     cargo bench -p chord --bench requests [-- --model PATH --packed PATH --requests N --tokens N]
//!
//! A request = fresh `Store` + instantiate + weights load (the guest copies the GGUF
//! into its 64-bit weights memory; a packed component has them built in) + prompt +
//! first token; natively, opening the model + prompt + first token. Medians over N
//! requests. Modes: native, the component (runtime-loaded weights) and, when
//! `--packed` is given or `MODEL.packed.wasm` exists next to the model (`chord pack`),
//! the packed component. Needs `cargo xtask build --release`; the model defaults to
//! SmolLM2-135M Q4_1.

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
    /// The packed component of the same model (`chord pack`), if any.
    packed: Option<PathBuf>,
    requests: usize,
    tokens: u32,
}

fn args() -> Result<Args> {
    let mut a = Args {
        model: PathBuf::new(),
        component: std::env::var_os("WASM_CHORD_COMPONENT")
            .map(PathBuf::from)
            .unwrap_or_else(|| chord::built_component("wasm-chord.wasm")),
        packed: None,
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
            "--packed" => a.packed = Some(PathBuf::from(v()?)),
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
    if a.packed.is_none() {
        a.packed = Some(packed_path(&a.model)).filter(|p| p.exists());
    }
    Ok(a)
}

/// Where `benches/run.sh` keeps a model's packed component: next to the GGUF.
fn packed_path(model: &std::path::Path) -> PathBuf {
    model.with_extension("packed.wasm")
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

/// Per-request costs (medians) and steady-state decode speed of one mode.
struct Report {
    instantiate: Duration,
    load: Duration,
    first_token: Duration,
    request: Duration,
    tok_s: f64,
}

/// A request = fresh `Store` + instantiate + weights load + prompt + first token.
fn component(engine: &ComponentEngine, a: &Args) -> Result<Report> {
    let (mut inst_t, mut load_t, mut first_t, mut total_t) = (vec![], vec![], vec![], vec![]);
    for _ in 0..a.requests {
        let t0 = Instant::now();
        let mut inst = engine.instance()?;
        inst_t.push(inst.instantiate_time);
        let t1 = Instant::now();
        inst.info()?; // loads the weights (packed: parses the built-in header)
        load_t.push(t1.elapsed());
        let mut first = None;
        inst.stream(PROMPT, &params(1), |_| {
            first.get_or_insert(t0.elapsed());
            true
        })?;
        first_t.push(first.unwrap_or(t0.elapsed()));
        total_t.push(t0.elapsed());
    }
    // Steady state: decode speed on one warm instance.
    let mut inst = engine.instance()?;
    inst.generate(PROMPT, &params(4))?; // warm-up
    let t = Instant::now();
    let out = inst.generate(PROMPT, &params(a.tokens))?;
    Ok(Report {
        instantiate: median(inst_t),
        load: median(load_t),
        first_token: median(first_t),
        request: median(total_t),
        tok_s: out.usage.generated_tokens as f64 / t.elapsed().as_secs_f64(),
    })
}

/// The native engine: a "request" opens (maps and parses) the model and answers.
fn native(a: &Args) -> Result<Report> {
    let (mut load_t, mut first_t) = (vec![], vec![]);
    let first = sampler::SamplingParams {
        temperature: 0.0,
        max_tokens: 1,
        ..Default::default()
    };
    for _ in 0..a.requests {
        let t0 = Instant::now();
        let engine: Engine = chord::native::load_engine(&a.model)?;
        load_t.push(t0.elapsed());
        engine.generate(PROMPT, &first)?;
        first_t.push(t0.elapsed());
    }
    let engine: Engine = chord::native::load_engine(&a.model)?;
    let p = sampler::SamplingParams {
        max_tokens: a.tokens,
        ..first
    };
    engine.generate(PROMPT, &sampler::SamplingParams { max_tokens: 4, ..p })?;
    let t = Instant::now();
    let (_, _, usage) = engine.generate(PROMPT, &p)?;
    let first_token = median(first_t);
    Ok(Report {
        instantiate: Duration::ZERO,
        load: median(load_t),
        first_token,
        request: first_token,
        tok_s: usage.completion_tokens as f64 / t.elapsed().as_secs_f64(),
    })
}

fn open(path: &std::path::Path, model: Option<&std::path::Path>) -> Result<ComponentEngine> {
    let t0 = Instant::now();
    let mut engine = ComponentEngine::new(path)
        .with_context(|| format!("loading {} (cargo xtask build --release)", path.display()))?;
    if let Some(m) = model {
        engine.load_model(m)?;
    }
    println!(
        "{} ready in {:.1} ms (compiled code from cache: {})",
        path.display(),
        ms(t0.elapsed()),
        engine.load_stats().from_cache
    );
    Ok(engine)
}

fn main() -> Result<()> {
    let a = args()?;
    println!(
        "model {}  ({} requests, {} decode tokens)",
        a.model.display(),
        a.requests,
        a.tokens
    );
    let mut rows = vec![("native", native(&a)?)];
    rows.push((
        "component",
        component(&open(&a.component, Some(&a.model))?, &a)?,
    ));
    match &a.packed {
        Some(p) => rows.push(("packed", component(&open(p, None)?, &a)?)),
        None => println!(
            "no packed component ({} missing: `chord pack {} -o ...`, or pass --packed)",
            packed_path(&a.model).display(),
            a.model.display()
        ),
    }

    println!(
        "per request, median of {} (decode: prompt + {} tokens on a warm instance, incl. prefill):",
        a.requests, a.tokens
    );
    println!(
        "{:<10} {:>12} {:>13} {:>12} {:>11} {:>12} {:>10}",
        "mode",
        "instantiate",
        "weights load",
        "first token",
        "request",
        "decode tok/s",
        "vs native"
    );
    let native_tps = rows[0].1.tok_s;
    for (mode, r) in &rows {
        println!(
            "{mode:<10} {:>9.3} ms {:>10.3} ms {:>9.3} ms {:>8.3} ms {:>12.1} {:>9.2}x",
            ms(r.instantiate),
            ms(r.load),
            ms(r.first_token),
            ms(r.request),
            r.tok_s,
            r.tok_s / native_tps
        );
    }
    Ok(())
}
