use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use chord_core::bert::{BertEmbedder, HfFiles};
use chord_core::gguf::FileSource;
use chord_core::pooling::{self, EmbedError, EmbedOptions, Embedder, Pooling};
use chord_core::safetensors::SafeTensors;
use chord_core::weights::SliceWeights;
use serde_json::json;

#[derive(clap::Args)]
pub struct Args {
    /// A GGUF model (bert, llama, qwen2), or a Hugging Face BERT directory
    /// (config.json, model.safetensors, tokenizer.json; sentence-transformers' pooling files).
    #[arg(long)]
    model: PathBuf,
    /// JSON array of strings.
    #[arg(long)]
    texts: PathBuf,
    /// mean, cls, last or none (per-token vectors). Default: the model's.
    #[arg(long)]
    pooling: Option<String>,
    /// L2-normalise the vectors. Default: the model's.
    #[arg(long, conflicts_with = "no_normalize")]
    normalize: bool,
    /// Do not L2-normalise, whatever the model's default.
    #[arg(long)]
    no_normalize: bool,
    /// Cut inputs longer than the model's positions (keeping [CLS]/[SEP]) instead of failing.
    #[arg(long)]
    truncate: bool,
    #[command(flatten)]
    run: super::component::ComponentArgs,
}

/// Memory-maps `path` (read-only; see `native::load_engine` for the caveat).
fn map(path: &Path) -> Result<memmap2::Mmap> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    // SAFETY: read-only map of a model file; truncation underneath us could fault.
    unsafe { memmap2::Mmap::map(&file) }.with_context(|| format!("mapping {}", path.display()))
}

/// Loads a GGUF embedding model or a Hugging Face BERT directory, weights memory-mapped.
pub fn load_embedder(model: &Path) -> Result<Box<dyn Embedder>> {
    if model.is_dir() {
        let files = HfFiles::read_dir(model)?;
        let map = map(&model.join("model.safetensors"))?;
        let st = SafeTensors::read(&map[..])
            .with_context(|| format!("reading {}/model.safetensors", model.display()))?;
        let e = BertEmbedder::from_hf(&files, &st, Box::new(SliceWeights(map)))
            .with_context(|| format!("loading {}", model.display()))?;
        return Ok(Box::new(e));
    }
    let map = map(model)?;
    let header = FileSource::open(model).with_context(|| format!("opening {}", model.display()))?;
    pooling::load_gguf_embedder(&header, Box::new(SliceWeights(map)))
        .with_context(|| format!("loading {}", model.display()))
}

pub fn run(a: Args) -> Result<()> {
    if !a.run.native {
        anyhow::bail!(
            "`chord embed` through the wasm component is not available yet (its `embed` export is \
             not wired to the engine): pass --native"
        );
    }
    let texts: Vec<String> = serde_json::from_str(
        &std::fs::read_to_string(&a.texts)
            .with_context(|| format!("reading {}", a.texts.display()))?,
    )
    .context("--texts must be a JSON array of strings")?;
    let pooling = a
        .pooling
        .as_deref()
        .map(|p| {
            Pooling::from_name(p)
                .ok_or_else(|| anyhow!("unknown pooling '{p}' (mean, cls, last, none)"))
        })
        .transpose()?;
    let opts = EmbedOptions {
        pooling,
        normalize: match (a.normalize, a.no_normalize) {
            (true, _) => Some(true),
            (_, true) => Some(false),
            _ => None,
        },
        truncate: a.truncate,
    };
    let e = load_embedder(&a.model)?;
    let def = e.default_pooling();
    let pooling = opts.pooling.unwrap_or(def.pooling);
    let normalize = opts.normalize.unwrap_or(def.normalize);

    // Tokenize each text; those that cannot be embedded (no tokens, too long) get an
    // error line, the others run as one batch.
    let start = std::time::Instant::now();
    let mut lines: Vec<Option<serde_json::Value>> = vec![None; texts.len()];
    let mut batch = Vec::new();
    let mut batch_cases = Vec::new();
    for (case, t) in texts.iter().enumerate() {
        let (ids, _) = e.tokenize(t, opts.truncate)?;
        let err = if ids.is_empty() {
            Some(EmbedError::EmptyInput { index: case }.to_string())
        } else if ids.len() > e.max_tokens() {
            Some(
                EmbedError::TooLong {
                    index: case,
                    n_tokens: ids.len(),
                    max: e.max_tokens(),
                }
                .to_string(),
            )
        } else {
            None
        };
        match err {
            Some(msg) => lines[case] = Some(json!({"case": case, "ids": ids, "error": msg})),
            None => {
                batch.push(ids);
                batch_cases.push(case);
            }
        }
    }
    let n_ok = batch.len();
    let embeddings = e.embed_tokens(batch, &opts)?;
    let secs = start.elapsed().as_secs_f64();
    for (case, emb) in batch_cases.into_iter().zip(embeddings) {
        let values: serde_json::Value = if pooling == Pooling::None {
            emb.vectors().map(|v| v.to_vec()).collect::<Vec<_>>().into()
        } else {
            emb.values.clone().into()
        };
        lines[case] =
            Some(json!({"case": case, "ids": emb.ids, "dim": emb.dim, "embedding": values}));
    }
    let mut out = std::io::stdout().lock();
    for l in lines.into_iter().flatten() {
        writeln!(out, "{l}")?;
    }
    out.flush()?;
    let failed = texts.len() - n_ok;
    eprintln!(
        "embedded {n_ok} of {} texts (dim {}, pooling {pooling}, normalize {normalize}) in {:.1} ms ({:.1} embeddings/s)",
        texts.len(),
        e.dim(),
        secs * 1000.0,
        n_ok as f64 / secs.max(1e-9)
    );
    if failed > 0 {
        anyhow::bail!("{failed} text(s) could not be embedded (see their \"error\" lines)");
    }
    Ok(())
}
