//! wasm-chord host library.
pub mod models;
pub mod native;
pub mod runtime;
pub mod serve;

use std::path::PathBuf;

/// The repository root. Cargo sets `CARGO_MANIFEST_DIR` when it runs a binary, test
/// or bench, so the runtime value follows the checkout even when a shared target
/// directory holds a binary compiled in another clone (cargo does not rebuild a
/// workspace that moved); the compile-time value is the fallback for a binary run
/// directly.
pub fn repo_root() -> PathBuf {
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    manifest_dir
        .parent()
        .map(PathBuf::from)
        .unwrap_or(manifest_dir)
}

/// A component written by `cargo xtask build` (`target/NAME`).
pub fn built_component(name: &str) -> PathBuf {
    repo_root().join("target").join(name)
}
