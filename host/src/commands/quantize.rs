use std::io::{BufWriter, Write};
use std::path::PathBuf;

use anyhow::{anyhow, Context, Result};
use chord_core::gguf::{FileSource, Gguf};
use chord_core::quant::GgmlType;

#[derive(clap::Args)]
pub struct Args {
    /// Input GGUF model.
    #[arg(long)]
    model: PathBuf,
    /// Target format of the matrices: f32, f16, bf16, q4_0, q4_1, q5_0, q5_1, q8_0, q2_K..q6_K.
    #[arg(long = "type")]
    ty: String,
    /// Output GGUF file.
    #[arg(short = 'o', long)]
    output: PathBuf,
}

pub fn run(a: Args) -> Result<()> {
    let target = GgmlType::from_name(&a.ty).ok_or_else(|| anyhow!("unknown type '{}'", a.ty))?;
    let src =
        FileSource::open(&a.model).with_context(|| format!("opening {}", a.model.display()))?;
    let g = Gguf::read(&src).with_context(|| format!("reading {}", a.model.display()))?;
    // Write next to the target and rename at the end: a failed run leaves no half file.
    let tmp = a.output.with_extension("gguf.partial");
    let mut out = BufWriter::new(
        std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?,
    );
    let report = chord_core::requantize::requantize(&src, &g, target, &mut out, |i, n, name| {
        eprint!("\r[{:>4}/{n}] {name:<40}", i + 1);
    });
    eprintln!();
    let report = match report {
        Ok(r) => r,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e.into());
        }
    };
    out.flush()?;
    drop(out);
    std::fs::rename(&tmp, &a.output)?;
    eprintln!(
        "wrote {}: {} tensors in {target}, {} kept f32{}",
        a.output.display(),
        report.quantized,
        report.kept_f32,
        if report.fallbacks.is_empty() {
            String::new()
        } else {
            format!(
                ", {} in a fallback type (rows not a multiple of {})",
                report.fallbacks.len(),
                target.block_size()
            )
        }
    );
    Ok(())
}
