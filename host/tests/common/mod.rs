//! Paths shared by the integration tests: the built component, the model cache and
//! the fixtures. A missing file fails the test with a message saying how to get it.
#![allow(dead_code)] // each test binary uses its own subset

use std::path::PathBuf;

pub fn workspace() -> PathBuf {
    chord::repo_root()
}

/// A file under `target/` written by `cargo xtask build --release`.
pub fn built(name: &str) -> PathBuf {
    let p = workspace().join("target").join(name);
    assert!(
        p.exists(),
        "{} is missing: build it first with `cargo xtask build --release`",
        p.display()
    );
    p
}

/// `target/wasm-chord.wasm` (or `$WASM_CHORD_COMPONENT`), built by `cargo xtask build --release`.
pub fn component_path() -> PathBuf {
    let p = std::env::var_os("WASM_CHORD_COMPONENT")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target/wasm-chord.wasm"));
    assert!(
        p.exists(),
        "component {} is missing: build it first with `cargo xtask build --release` \
         (or set WASM_CHORD_COMPONENT)",
        p.display()
    );
    p
}

/// A file in the model cache, fetched by `scripts/fetch-models.sh`.
pub fn model_path(file: &str) -> PathBuf {
    let p = chord::models::cache_dir().join(file);
    assert!(
        p.exists(),
        "model {} is missing: run `scripts/fetch-models.sh` first",
        p.display()
    );
    p
}

pub fn smollm2() -> PathBuf {
    model_path("smollm2-135m-instruct-q4_1.gguf")
}

/// A file under the repository's `fixtures/`.
pub fn fixture(rel: &str) -> PathBuf {
    workspace().join("fixtures").join(rel)
}
