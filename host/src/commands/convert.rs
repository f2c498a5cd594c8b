use std::io::{BufWriter, Write};
use std::path::PathBuf;

use anyhow::{anyhow, Context, Result};
use chord_core::bert::{self, HfFiles};
use chord_core::gguf::FileSource;
use chord_core::quant::GgmlType;
use chord_core::safetensors::SafeTensors;

#[derive(clap::Args)]
pub struct Args {
    /// Hugging Face BERT directory: config.json, model.safetensors, tokenizer.json
    /// (and sentence-transformers' 1_Pooling/config.json, modules.json if present).
    #[arg(long)]
    model: PathBuf,
    /// Type of the matrices: f32, f16, bf16, q8_0 (also q4_0, q4_1, q5_0, q5_1).
    #[arg(long = "type", default_value = "f32")]
    ty: String,
    /// Output GGUF file.
    #[arg(short = 'o', long)]
    output: PathBuf,
    /// `general.name` (default: the directory's name).
    #[arg(long)]
    name: Option<String>,
}

pub fn run(a: Args) -> Result<()> {
    let target = GgmlType::from_name(&a.ty).ok_or_else(|| anyhow!("unknown type '{}'", a.ty))?;
    if !a.model.is_dir() {
        anyhow::bail!(
            "--model must be a Hugging Face model directory, {} is not one",
            a.model.display()
        );
    }
    let files = HfFiles::read_dir(&a.model)?;
    let st_path = a.model.join("model.safetensors");
    let src =
        FileSource::open(&st_path).with_context(|| format!("opening {}", st_path.display()))?;
    let st = SafeTensors::read(&src).with_context(|| format!("reading {}", st_path.display()))?;
    let name = a.name.clone().or_else(|| {
        a.model
            .canonicalize()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
    });
    // Write next to the target and rename at the end: a failed run leaves no half file.
    let tmp = a.output.with_extension("gguf.partial");
    let mut out = BufWriter::new(
        std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?,
    );
    let report = bert::convert_hf_to_gguf(
        &files,
        &st,
        &src,
        target,
        name.as_deref(),
        &mut out,
        |i, n, name| {
            eprint!("\r[{:>4}/{n}] {name:<40}", i + 1);
        },
    );
    eprintln!();
    let report = match report
        .map_err(anyhow::Error::from)
        .and_then(|r| Ok(out.flush().map(|_| r)?))
    {
        Ok(r) => r,
        Err(e) => {
            drop(out);
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    drop(out);
    std::fs::rename(&tmp, &a.output)?;
    eprintln!(
        "wrote {}: bert, {} tensors ({} in {target}, {} kept f32{}), vocabulary of {}",
        a.output.display(),
        report.n_tensors,
        report.converted,
        report.kept_f32,
        if report.fallbacks.is_empty() {
            String::new()
        } else {
            format!(
                ", {} in f16: rows not a multiple of {}",
                report.fallbacks.len(),
                target.block_size()
            )
        },
        report.n_vocab
    );
    Ok(())
}
