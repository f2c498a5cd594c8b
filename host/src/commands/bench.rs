//! `chord bench`: prompt-processing and generation throughput, as llama.cpp's
//! `llama-bench` measures them (pp N = one prompt of N tokens, tg N = N single-token
//! decoding steps), through the component (default) or the native engine.
//!
//! Both modes run the same workload, `chord_core::throughput::run_tokens`: the prompt
//! is N pseudo-random token ids (exactly N, whatever the tokenizer would make of a
//! text), only the last position's logits are computed, and decoding is greedy and
//! never stops at an end-of-generation token. A warm-up pass over every weight (page
//! faults, lazy set-up) runs first and is not timed.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use chord::runtime::{Instance, Limits};
use serde_json::json;

use chord::native;

#[derive(clap::Args)]
pub struct Args {
    /// GGUF model (default: SmolLM2-135M-Instruct from the model cache).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Prompt tokens of the prefill measurement (0 skips it).
    #[arg(long, default_value_t = 512)]
    pp: u32,
    /// Generated tokens of the decode measurement (0 skips it).
    #[arg(long, default_value_t = 128)]
    tg: u32,
    /// Repetitions of each measurement; the mean throughput is reported.
    #[arg(long, default_value_t = 1)]
    reps: u32,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// `--model` is a packed component (weights inside), made by `chord pack`.
    #[arg(long, conflicts_with = "native")]
    packed: bool,
    #[command(flatten)]
    run: super::component::ComponentArgs,
}

/// One measurement: tokens processed and the mean time per repetition.
struct Timing {
    tokens: u32,
    mean: Duration,
}

impl Timing {
    fn tok_s(&self) -> Option<f64> {
        (self.tokens > 0).then(|| self.tokens as f64 / self.mean.as_secs_f64().max(1e-9))
    }
}

/// Runs the model on a token sequence and decodes greedily (`run_tokens`).
trait Runner {
    fn vocab_size(&mut self) -> Result<u32>;
    fn run_tokens(&mut self, ids: &[u32], steps: u32) -> Result<u32>;
}

struct NativeRunner(chord_core::engine::Engine);

impl Runner for NativeRunner {
    fn vocab_size(&mut self) -> Result<u32> {
        Ok(self.0.model().cfg.vocab_size as u32)
    }

    fn run_tokens(&mut self, ids: &[u32], steps: u32) -> Result<u32> {
        Ok(chord_core::throughput::run_tokens(
            self.0.model(),
            ids,
            steps as usize,
        )?)
    }
}

struct ComponentRunner(Instance);

impl Runner for ComponentRunner {
    fn vocab_size(&mut self) -> Result<u32> {
        Ok(self.0.info()?.vocab_size)
    }

    fn run_tokens(&mut self, ids: &[u32], steps: u32) -> Result<u32> {
        Ok(self.0.run_tokens(ids, steps)?)
    }
}

/// `n` token ids in `0..vocab`, the same for every run (xorshift64*), like the random
/// prompts of `llama-bench`.
fn prompt_ids(n: usize, vocab: u32) -> Vec<u32> {
    let mut s = 0x9E37_79B9_7F4A_7C15u64;
    (0..n)
        .map(|_| {
            s ^= s >> 12;
            s ^= s << 25;
            s ^= s >> 27;
            (s.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32) as u32 % vocab
        })
        .collect()
}

fn measure(r: &mut dyn Runner, a: &Args) -> Result<(Timing, Timing)> {
    let vocab = r.vocab_size()?;
    if vocab == 0 {
        bail!("the model has an empty vocabulary");
    }
    let ids = prompt_ids((a.pp as usize).max(1), vocab);
    // Warm-up: touches every weight once.
    r.run_tokens(&ids[..ids.len().min(4)], 1)?;
    let reps = a.reps.max(1);
    let time = |r: &mut dyn Runner, ids: &[u32], steps: u32| -> Result<Duration> {
        let mut total = Duration::ZERO;
        for _ in 0..reps {
            let t0 = Instant::now();
            std::hint::black_box(r.run_tokens(ids, steps)?);
            total += t0.elapsed();
        }
        Ok(total / reps)
    };
    let pp = Timing {
        tokens: a.pp,
        mean: if a.pp > 0 {
            time(r, &ids, 0)?
        } else {
            Duration::ZERO
        },
    };
    // `tg` single-token forward passes: the first token, then `tg - 1` steps.
    let tg = Timing {
        tokens: a.tg,
        mean: if a.tg > 0 {
            time(r, &ids[..1], a.tg - 1)?
        } else {
            Duration::ZERO
        },
    };
    Ok((pp, tg))
}

pub fn run(a: Args) -> Result<()> {
    let model = match &a.model {
        Some(m) => m.clone(),
        None => chord::models::default_model()?,
    };
    if !model.exists() {
        bail!(
            "model {} not found: run scripts/fetch-models.sh smollm2, or pass --model",
            model.display()
        );
    }
    let (mode, (pp, tg)) = if a.packed {
        if !chord::runtime::is_packed_component(&model) {
            bail!(
                "{} is not a packed component: make one with `chord pack --model MODEL.gguf`",
                model.display()
            );
        }
        ("packed", measure(&mut component_runner(&a, &model)?, &a)?)
    } else if a.run.native {
        let mut r = NativeRunner(native::load_engine(&model)?);
        ("native", measure(&mut r, &a)?)
    } else {
        (
            "component",
            measure(&mut component_runner(&a, &model)?, &a)?,
        )
    };
    let name = model.display().to_string();
    if a.json {
        let line = json!({
            "model": name,
            "mode": mode,
            "pp_tokens": pp.tokens,
            "pp_tok_s": pp.tok_s(),
            "tg_tokens": tg.tokens,
            "tg_tok_s": tg.tok_s(),
        });
        println!("{line}");
    } else {
        println!("model {name} ({mode})");
        for (what, t) in [("pp", &pp), ("tg", &tg)] {
            if let Some(s) = t.tok_s() {
                println!(
                    "{what}{:<5} {:>9.2} tok/s  ({:.3} s per run, {} run(s))",
                    t.tokens,
                    s,
                    t.mean.as_secs_f64(),
                    a.reps.max(1)
                );
            }
        }
    }
    Ok(())
}

/// One component instance with the model loaded, with no wall-clock limit short
/// enough to cut a long benchmark (large models decode slowly).
fn component_runner(a: &Args, model: &Path) -> Result<ComponentRunner> {
    let mut engine = a.run.open(model)?;
    engine.set_limits(Limits {
        timeout: Duration::from_secs(24 * 3600),
        ..Limits::default()
    });
    Ok(ComponentRunner(engine.instance()?))
}
