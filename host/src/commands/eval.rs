use std::path::PathBuf;

use anyhow::{Context, Result};
use serde_json::json;

use crate::native;

#[derive(clap::Args)]
pub struct Args {
    /// GGUF model.
    #[arg(long)]
    model: PathBuf,
    /// JSON array of prompt strings (tokenized with special tokens added and parsed).
    #[arg(long)]
    prompts: PathBuf,
    /// Greedy steps after each prompt.
    #[arg(long, default_value_t = 32)]
    greedy: usize,
    /// How many top logits to print per position.
    #[arg(long, default_value_t = 40)]
    top: usize,
    /// Run the engine natively instead of in the wasm component.
    #[arg(long)]
    native: bool,
}

pub fn run(a: Args) -> Result<()> {
    super::require_native(a.native, "eval")?;
    let prompts: Vec<String> = serde_json::from_str(
        &std::fs::read_to_string(&a.prompts).with_context(|| format!("reading {}", a.prompts.display()))?,
    )
    .context("--prompts must be a JSON array of strings")?;
    let engine = native::load_engine(&a.model)?;
    for (case, prompt) in prompts.iter().enumerate() {
        let ids = engine.tokenize(prompt, true, true)?;
        let r = engine.eval_logits(&ids, a.greedy, a.top)?;
        let top = |t: &chord_core::eval::TopLogits| json!({"lse": t.lse, "top": t.top});
        let line = json!({
            "case": case,
            "ids": r.ids,
            "positions": r.positions.iter().map(top).collect::<Vec<_>>(),
            "greedy": r.greedy.iter().map(|g| json!({"token": g.token, "next": top(&g.next)})).collect::<Vec<_>>(),
        });
        println!("{line}");
    }
    Ok(())
}
