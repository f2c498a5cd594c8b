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
    PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap())
        .join("../fixtures")
        .join(rel)
}

/// SmolLM2-135M-Instruct in `ty` (`q4_1` is the published file; `q8_0` and `f16` are made
/// once with the project's own requantizer, as the fixtures' README describes, and cached).
pub fn smollm2(ty: &str) -> PathBuf {
    use chord_core::gguf::{FileSource, Gguf};
    use chord_core::quant::GgmlType;
    let base = model("smollm2-135m-instruct-q4_1.gguf");
    if ty == "q4_1" {
        return base;
    }
    let out = models_dir().join(format!("smollm2-135m-instruct-{ty}.gguf"));
    if !out.exists() {
        let target = GgmlType::from_name(ty).expect("known type");
        let src = FileSource::open(&base).unwrap();
        let g = Gguf::read(&src).unwrap();
        let tmp = out.with_extension(format!("tmp{}", std::process::id()));
        let mut f = std::io::BufWriter::new(std::fs::File::create(&tmp).unwrap());
        chord_core::requantize::requantize(&src, &g, target, &mut f, |_, _, _| {}).unwrap();
        drop(f);
        std::fs::rename(&tmp, &out).unwrap();
    }
    out
}

/// Loads a whole GGUF model into memory.
pub fn load_decoder(path: &std::path::Path) -> chord_core::model::DecoderModel {
    use chord_core::gguf::Gguf;
    let bytes = std::fs::read(path).unwrap();
    let g = Gguf::read(bytes.as_slice()).unwrap();
    chord_core::model::DecoderModel::load(&g, Box::new(chord_core::weights::SliceWeights(bytes)))
        .unwrap()
}
