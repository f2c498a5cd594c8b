//! Running commands through the wasm component (the default; `--native` bypasses it).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use chord::runtime::ComponentEngine;

/// Options shared by every command that can run in the component.
#[derive(clap::Args, Clone, Debug)]
pub struct ComponentArgs {
    /// Run the engine compiled into this binary instead of the wasm component.
    #[arg(long)]
    pub native: bool,
    /// The component to run (default: $WASM_CHORD_COMPONENT, else target/wasm-chord.wasm
    /// in this repository, built by `cargo xtask build --release`).
    #[arg(long)]
    pub component: Option<PathBuf>,
}

impl ComponentArgs {
    fn component_path(&self) -> PathBuf {
        self.component
            .clone()
            .or_else(|| std::env::var_os("WASM_CHORD_COMPONENT").map(PathBuf::from))
            .unwrap_or_else(|| chord::built_component("wasm-chord.wasm"))
    }

    /// Compiles (or loads from the cache) the component and serves `model` to it.
    /// A packed component (`chord pack`) given as the model runs by itself instead.
    pub fn open(&self, model: &Path) -> Result<ComponentEngine> {
        if chord::runtime::is_packed_component(model) {
            return ComponentEngine::new(model)
                .with_context(|| format!("loading packed component {}", model.display()));
        }
        let path = self.component_path();
        if !path.exists() {
            bail!(
                "component {} not found: build it with `cargo xtask build --release`, pass --component, or use --native",
                path.display()
            );
        }
        let mut engine = ComponentEngine::new(&path)
            .with_context(|| format!("loading component {}", path.display()))?;
        engine
            .load_model(model)
            .with_context(|| format!("serving model {}", model.display()))?;
        Ok(engine)
    }
}
