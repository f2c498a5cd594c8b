//! `chord synth`: a full-size GGUF with random weights from a real model's header.

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use chord_core::synth::{ShapeOverrides, Synth};

use chord::native;

#[derive(clap::Args)]
pub struct Args {
    /// A GGUF whose header (metadata, tokenizer, tensor table) is complete; its tensor
    /// data may be missing (e.g. the first 100 MB of a download).
    #[arg(long)]
    header: PathBuf,
    /// Seed of the random weights: the same header, shape and seed give the same file.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output GGUF file.
    #[arg(short = 'o', long)]
    output: PathBuf,
    /// Number of transformer blocks (default: the header's). Extra blocks copy the
    /// tensor types of the source block at the same relative depth.
    #[arg(long)]
    layers: Option<u64>,
    /// Model width (default: the header's).
    #[arg(long)]
    embedding_length: Option<u64>,
    /// Feed-forward width (default: the header's).
    #[arg(long)]
    feed_forward_length: Option<u64>,
    /// Attention heads (default: width / the header's head dimension).
    #[arg(long)]
    head_count: Option<u64>,
    /// Key/value heads (default: the header's grouping ratio kept).
    #[arg(long)]
    head_count_kv: Option<u64>,
    /// Threads generating weights (default: all cores); the output does not depend on it.
    #[arg(long)]
    threads: Option<usize>,
}

pub fn run(a: Args) -> Result<()> {
    let g = native::read_header(&a.header)?;
    let shape = ShapeOverrides {
        layers: a.layers,
        embedding_length: a.embedding_length,
        feed_forward_length: a.feed_forward_length,
        head_count: a.head_count,
        head_count_kv: a.head_count_kv,
    };
    let synth = Synth::new(&g, &shape, a.seed)?;
    let threads = a
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let total = synth.data_bytes();
    eprintln!(
        "synthesizing {} tensors, {:.2} GiB of tensor data, seed {}, {threads} thread(s)",
        synth.tensors().len(),
        total as f64 / (1u64 << 30) as f64,
        a.seed
    );
    // Write next to the target and rename at the end: a failed run leaves no half file.
    let tmp = a.output.with_extension("gguf.partial");
    let file =
        std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let start = Instant::now();
    let mut last_report = start;
    let result = synth.write(&mut out, threads, |p| {
        let now = Instant::now();
        if now.duration_since(last_report).as_millis() < 500 && p.done_bytes < p.total_bytes {
            return;
        }
        last_report = now;
        let secs = now.duration_since(start).as_secs_f64().max(1e-9);
        let rate = p.done_bytes as f64 / secs;
        let eta = (p.total_bytes - p.done_bytes.min(p.total_bytes)) as f64 / rate.max(1.0);
        eprint!(
            "\r[{:>4}/{}] {:5.1}% {:7.1} MB/s, eta {:5.0}s  {:<32}",
            p.tensor_index + 1,
            p.tensor_count,
            100.0 * p.done_bytes as f64 / p.total_bytes.max(1) as f64,
            rate / 1e6,
            eta,
            p.tensor
        );
    });
    eprintln!();
    let finished = result
        .map_err(anyhow::Error::from)
        .and_then(|()| Ok(out.flush()?));
    if let Err(e) = finished {
        drop(out);
        let _ = std::fs::remove_file(&tmp);
        return Err(e.context(format!("writing {}", a.output.display())));
    }
    drop(out);
    std::fs::rename(&tmp, &a.output)
        .with_context(|| format!("renaming {} to {}", tmp.display(), a.output.display()))?;
    let bytes = std::fs::metadata(&a.output)?.len();
    eprintln!(
        "wrote {} ({bytes} bytes) in {:.1}s",
        a.output.display(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
