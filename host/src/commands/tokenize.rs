use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use chord_core::tokenizer::Tokenizer;
use serde_json::json;

use chord::native;

#[derive(clap::Args)]
pub struct Args {
    /// A GGUF file (its tensor data may be missing), or a directory with `tokenizer.json`.
    #[arg(long)]
    model: PathBuf,
    /// JSON array of strings.
    #[arg(long)]
    strings: PathBuf,
    #[command(flatten)]
    run: super::component::ComponentArgs,
}

pub fn load_tokenizer(model: &Path) -> Result<Tokenizer> {
    if model.is_dir() {
        let path = model.join("tokenizer.json");
        let json = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        return Tokenizer::from_hf_json(&json)
            .with_context(|| format!("loading {}", path.display()));
    }
    let g = native::read_header(model)?;
    Tokenizer::from_gguf(&g)
        .with_context(|| format!("loading the tokenizer of {}", model.display()))
}

pub fn run(a: Args) -> Result<()> {
    let strings: Vec<String> = serde_json::from_str(
        &std::fs::read_to_string(&a.strings)
            .with_context(|| format!("reading {}", a.strings.display()))?,
    )
    .context("--strings must be a JSON array of strings")?;
    // A tokenizer.json directory has no GGUF for the component to load: native only.
    if a.run.native || a.model.is_dir() {
        let tok = load_tokenizer(&a.model)?;
        for (case, s) in strings.iter().enumerate() {
            let line = json!({
                "case": case,
                "ids": tok.encode(s, true, false)?,
                "ids_no_special": tok.encode(s, false, false)?,
                "ids_parse_special": tok.encode(s, true, true)?,
            });
            println!("{line}");
        }
        return Ok(());
    }
    let engine = a.run.open(&a.model)?;
    let inst = engine.instance();
    let mut inst = inst?;
    for (case, s) in strings.iter().enumerate() {
        let line = json!({
            "case": case,
            "ids": inst.tokenize(s, true, false)?,
            "ids_no_special": inst.tokenize(s, false, false)?,
            "ids_parse_special": inst.tokenize(s, true, true)?,
        });
        println!("{line}");
    }
    Ok(())
}
