//! Shared test helpers: locating the models that `scripts/fetch-models.sh` fetches and the fixtures.
#![allow(dead_code)]

use std::path::PathBuf;

/// The model cache (`$WASM_CHORD_MODELS`, default `~/.cache/wasm-chord/models`).
pub fn models_dir() -> PathBuf {
    match std::env::var_os("WASM_CHORD_MODELS") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(std::env::var_os("HOME").expect("HOME is not set"))
            .join(".cache/wasm-chord/models"),
    }
}

/// A model file from the cache. Panics (fails the test) if it was not fetched: never skip silently.
pub fn model(name: &str) -> PathBuf {
    let p = models_dir().join(name);
    assert!(
        p.exists(),
        "model {} is missing: run scripts/fetch-models.sh first",
        p.display()
    );
    p
}

/// A file under the repository's `fixtures/`.
pub fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures")
        .join(rel)
}
