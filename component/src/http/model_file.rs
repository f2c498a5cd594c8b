//! The model as a file on the WASI filesystem (a Spin `files` mount, a
//! `wasmtime serve --dir`, the directory `chord serve` preopens), copied into the
//! memory 0 or the 64-bit weights memory the first time a request needs the weights.

use std::path::{Path, PathBuf};

use chord_core::gguf::{ByteSource, FileSource};
use chord_core::openai::ModelSource;
use chord_core::weights::WeightMemory;

use crate::memory::{self, WasmWeights};
use crate::Error;

/// Environment variable naming the GGUF file inside the guest's filesystem.
pub const MODEL_ENV: &str = "WASM_CHORD_MODEL";
/// Without it: the first `*.gguf` (by name) in this directory.
pub const DEFAULT_DIR: &str = "/models";

pub struct ModelFile {
    id: String,
    file: FileSource,
    weights: Option<WasmWeights>,
}

/// The configured model path.
fn model_path() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os(MODEL_ENV) {
        return Ok(PathBuf::from(p));
    }
    let entries = std::fs::read_dir(DEFAULT_DIR).map_err(|e| {
        format!(
            "no model: set {MODEL_ENV} or mount a directory with a .gguf at {DEFAULT_DIR} ({e})"
        )
    })?;
    let mut ggufs: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "gguf"))
        .collect();
    ggufs.sort();
    ggufs
        .into_iter()
        .next()
        .ok_or_else(|| format!("no .gguf file in {DEFAULT_DIR} (or set {MODEL_ENV})"))
}

impl ModelFile {
    pub fn open() -> Result<Self, String> {
        let path = model_path()?;
        let file = FileSource::open(&path)
            .map_err(|e| format!("opening the model {}: {e}", path.display()))?;
        Ok(Self {
            id: model_id(&path),
            file,
            weights: None,
        })
    }

    fn load_weights(&self) -> Result<WasmWeights, String> {
        memory::load(self.file.len(), |at, buf| {
            self.file
                .read_at(at, buf)
                .map_err(|e| Error::Read(format!("reading the model at {at}: {e}")))
        })
        .map_err(|e| e.to_string())
    }
}

/// The file name without `.gguf`: what clients pass as `model`.
fn model_id(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into())
}

impl ModelSource for ModelFile {
    fn id(&self) -> &str {
        &self.id
    }

    fn header(&self) -> &dyn ByteSource {
        &self.file
    }

    fn weights(&mut self) -> Result<Box<dyn WeightMemory>, String> {
        let w = match &self.weights {
            Some(w) => w.clone(),
            None => {
                let w = self.load_weights()?;
                self.weights = Some(w.clone());
                w
            }
        };
        Ok(Box::new(w))
    }
}
