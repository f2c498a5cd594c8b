use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use chord::native::load_embedder;
use chord::runtime::{self as rt, GuestError, RequestError};
use chord_core::pooling::{EmbedError, EmbedOptions, Pooling};
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

/// One output line per input text: its embedding, or why it could not be embedded.
struct Outcome {
    lines: Vec<serde_json::Value>,
    dim: usize,
    pooling: String,
    normalize: bool,
    failed: usize,
}

pub fn run(a: Args) -> Result<()> {
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
    let start = std::time::Instant::now();
    let out = if a.run.native {
        embed_native(&a.model, &texts, &opts)?
    } else {
        embed_in_component(&a, &texts, &opts)?
    };
    let secs = start.elapsed().as_secs_f64();
    let mut stdout = std::io::stdout().lock();
    for l in &out.lines {
        writeln!(stdout, "{l}")?;
    }
    stdout.flush()?;
    let n_ok = texts.len() - out.failed;
    eprintln!(
        "embedded {n_ok} of {} texts (dim {}, pooling {}, normalize {}) in {:.1} ms ({:.1} embeddings/s)",
        texts.len(),
        out.dim,
        out.pooling,
        out.normalize,
        secs * 1000.0,
        n_ok as f64 / secs.max(1e-9)
    );
    if out.failed > 0 {
        anyhow::bail!(
            "{} text(s) could not be embedded (see their \"error\" lines)",
            out.failed
        );
    }
    Ok(())
}

/// The JSON line of one embedded text (per-token vectors as nested arrays).
fn embedding_line(
    case: usize,
    ids: &[u32],
    dim: usize,
    values: &[f32],
    per_token: bool,
) -> serde_json::Value {
    let embedding: serde_json::Value = if per_token {
        values
            .chunks_exact(dim.max(1))
            .map(<[f32]>::to_vec)
            .collect::<Vec<_>>()
            .into()
    } else {
        values.to_vec().into()
    };
    json!({"case": case, "ids": ids, "dim": dim, "embedding": embedding})
}

fn embed_native(model: &Path, texts: &[String], opts: &EmbedOptions) -> Result<Outcome> {
    let e = load_embedder(model)?;
    let def = e.default_pooling();
    let pooling = opts.pooling.unwrap_or(def.pooling);
    // Tokenize each text; those that cannot be embedded (no tokens, too long) get an
    // error line, the others run as one batch.
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
    let failed = texts.len() - batch.len();
    let embeddings = e.embed_tokens(batch, opts)?;
    for (case, emb) in batch_cases.into_iter().zip(embeddings) {
        lines[case] = Some(embedding_line(
            case,
            &emb.ids,
            emb.dim,
            &emb.values,
            pooling == Pooling::None,
        ));
    }
    Ok(Outcome {
        lines: lines.into_iter().flatten().collect(),
        dim: e.dim(),
        pooling: pooling.to_string(),
        normalize: opts.normalize.unwrap_or(def.normalize),
        failed,
    })
}

/// Through the component: one instance embeds the whole batch; if a text is refused
/// (empty, too long), each text is embedded alone to report which.
fn embed_in_component(a: &Args, texts: &[String], opts: &EmbedOptions) -> Result<Outcome> {
    if a.model.is_dir() {
        anyhow::bail!(
            "the component reads GGUF files: convert {} with `chord convert` first, or pass --native",
            a.model.display()
        );
    }
    let engine = a.run.open(&a.model)?;
    let mut inst = engine.instance()?;
    let wit = rt::EmbedOptions {
        pooling: opts.pooling.map(to_wit_pooling),
        normalize: opts.normalize,
        truncate: opts.truncate,
    };
    let per_text: Vec<Result<rt::Embeddings, String>> = match inst.embed(texts, wit) {
        Ok(all) => {
            let (dim, pooling, normalized) = (all.dim, all.pooling, all.normalized);
            all.data
                .into_iter()
                .map(|d| {
                    Ok(rt::Embeddings {
                        dim,
                        pooling,
                        normalized,
                        data: vec![d],
                    })
                })
                .collect()
        }
        Err(RequestError::Guest(GuestError::InvalidInput(_))) => texts
            .iter()
            .map(|t| match inst.embed(std::slice::from_ref(t), wit) {
                Ok(e) => Ok(e),
                Err(e) => Err(e.to_string()),
            })
            .collect::<Vec<_>>(),
        Err(e) => return Err(anyhow!("{e}")),
    };
    let mut out = Outcome {
        lines: Vec::new(),
        dim: 0,
        pooling: String::new(),
        normalize: false,
        failed: 0,
    };
    for (case, r) in per_text.into_iter().enumerate() {
        match r {
            Ok(e) => {
                let d = &e.data[0];
                out.dim = e.dim as usize;
                out.pooling = from_wit_pooling(e.pooling).to_string();
                out.normalize = e.normalized;
                out.lines.push(embedding_line(
                    case,
                    &d.ids,
                    e.dim as usize,
                    &d.values,
                    e.pooling == rt::Pooling::None,
                ));
            }
            Err(msg) => {
                out.failed += 1;
                out.lines.push(json!({"case": case, "error": msg}));
            }
        }
    }
    Ok(out)
}

fn to_wit_pooling(p: Pooling) -> rt::Pooling {
    match p {
        Pooling::Mean => rt::Pooling::Mean,
        Pooling::Cls => rt::Pooling::Cls,
        Pooling::Last => rt::Pooling::Last,
        Pooling::None => rt::Pooling::None,
    }
}

fn from_wit_pooling(p: rt::Pooling) -> Pooling {
    match p {
        rt::Pooling::Mean => Pooling::Mean,
        rt::Pooling::Cls => Pooling::Cls,
        rt::Pooling::Last => Pooling::Last,
        rt::Pooling::None => Pooling::None,
    }
}
