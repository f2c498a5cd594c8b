//! Embedding throughput, native vs component, in one run:
//!
//!     cargo bench -p chord --bench embeddings [-- --model PATH --rounds N]
//!
//! Texts of exactly 16 and 256 tokens (special tokens included), batches of 1 and 32;
//! reports embeddings/s (median round). Default model: all-MiniLM-L6-v2 converted to
//! GGUF F32. Needs `cargo xtask build --release` and `scripts/fetch-models.sh minilm`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use chord::runtime::{ComponentEngine, EmbedOptions};
use chord_core::pooling::{self, Embedder};
use chord_core::quant::GgmlType;

/// A text that the model's tokenizer turns into exactly `n` tokens.
fn text_of(e: &dyn Embedder, n: usize) -> Result<String> {
    let words = [
        "alpha", "river", "stone", "light", "market", "window", "quiet", "orange",
    ];
    let mut text = String::new();
    for i in 0.. {
        let (ids, _) = e.tokenize(&text, false)?;
        if ids.len() == n {
            return Ok(text);
        }
        anyhow::ensure!(
            ids.len() < n,
            "could not build a text of exactly {n} tokens"
        );
        if !text.is_empty() {
            text.push(' ');
        }
        text.push_str(words[i % words.len()]);
    }
    unreachable!()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() -> Result<()> {
    let mut model = None;
    let mut rounds = 5usize;
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        match k.as_str() {
            "--model" => model = Some(PathBuf::from(it.next().context("--model PATH")?)),
            "--rounds" => rounds = it.next().context("--rounds N")?.parse()?,
            "--bench" => {}
            other => anyhow::bail!("unknown argument {other}"),
        }
    }
    let model = match model {
        Some(m) => m,
        None => chord::models::minilm_gguf(GgmlType::F32)?,
    };
    let component = std::env::var_os("WASM_CHORD_COMPONENT")
        .map(PathBuf::from)
        .unwrap_or_else(|| chord::built_component("wasm-chord.wasm"));

    let native = chord::native::load_embedder(&model)?;
    let mut engine = ComponentEngine::new(&component).with_context(|| {
        format!(
            "loading {} (cargo xtask build --release)",
            component.display()
        )
    })?;
    engine.load_model(&model)?;
    let mut inst = engine.instance()?;
    let opts = EmbedOptions {
        pooling: None,
        normalize: None,
        truncate: false,
    };
    println!("model {} ({} rounds, median)", model.display(), rounds);
    println!(
        "{:>7} {:>6} {:>14} {:>14} {:>8}",
        "tokens", "batch", "native emb/s", "component emb/s", "ratio"
    );
    for n_tokens in [16, 256] {
        let text = text_of(native.as_ref(), n_tokens)?;
        for batch in [1usize, 32] {
            let texts = vec![text.clone(); batch];
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            let native_opts = pooling::EmbedOptions::default();
            native.embed(&refs, &native_opts)?; // warm-up
            inst.embed(&texts, opts)?;
            let mut tn = Vec::new();
            let mut tc = Vec::new();
            for _ in 0..rounds {
                let t = Instant::now();
                native.embed(&refs, &native_opts)?;
                tn.push(t.elapsed());
                let t = Instant::now();
                inst.embed(&texts, opts)?;
                tc.push(t.elapsed());
            }
            let n = batch as f64 / median(tn).as_secs_f64();
            let c = batch as f64 / median(tc).as_secs_f64();
            println!(
                "{n_tokens:>7} {batch:>6} {n:>14.1} {c:>14.1} {:>8.2}",
                c / n
            );
        }
    }
    Ok(())
}
