use std::path::PathBuf;

use anyhow::{Context, Result};
use serde_json::json;

use chord::native;

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
    #[command(flatten)]
    run: super::component::ComponentArgs,
}

pub fn run(a: Args) -> Result<()> {
    let prompts: Vec<String> = serde_json::from_str(
        &std::fs::read_to_string(&a.prompts)
            .with_context(|| format!("reading {}", a.prompts.display()))?,
    )
    .context("--prompts must be a JSON array of strings")?;
    if a.run.native {
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
        return Ok(());
    }
    let engine = a.run.open(&a.model)?;
    for (case, prompt) in prompts.iter().enumerate() {
        let ids = engine.tokenize(prompt, true, true)?;
        let r = engine.logits(&ids, a.greedy as u32, a.top as u32)?;
        let pairs =
            |top: &[(u32, f32)]| top.iter().map(|&(t, l)| json!([t, l])).collect::<Vec<_>>();
        let line = json!({
            "case": case,
            "ids": ids,
            "positions": r.positions.iter().map(|p| json!({"lse": p.lse, "top": pairs(&p.top)})).collect::<Vec<_>>(),
            "greedy": r.greedy.iter().map(|g| json!({"token": g.token, "next": {"lse": g.next.lse, "top": pairs(&g.next.top)}})).collect::<Vec<_>>(),
        });
        println!("{line}");
    }
    Ok(())
}
