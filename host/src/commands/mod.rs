pub mod convert;
pub mod embed;
pub mod eval;
pub mod generate;
pub mod info;
pub mod quantize;
pub mod tokenize;

use anyhow::{bail, Result};

/// Until the component path is wired for a command, say so instead of silently running natively.
pub fn require_native(native: bool, command: &str) -> Result<()> {
    if !native {
        bail!("`chord {command}` runs only natively for now: pass --native");
    }
    Ok(())
}
