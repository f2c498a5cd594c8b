//! Loading models into the engine compiled into the host (`--native`), weights
//! memory-mapped.

use std::path::Path;

use anyhow::{Context, Result};
use chord_core::bert::{BertEmbedder, HfFiles};
use chord_core::engine::Engine;
use chord_core::gguf::{FileSource, Gguf};
use chord_core::pooling::{self, Embedder};
use chord_core::safetensors::SafeTensors;
use chord_core::weights::SliceWeights;

/// Memory-maps a GGUF file and builds the engine over it (weights are not copied).
pub fn load_engine(path: &Path) -> Result<Engine> {
    let map = map(path)?;
    let header = FileSource::open(path)?;
    Engine::load(&header, Box::new(SliceWeights(map)))
        .with_context(|| format!("loading {}", path.display()))
}

/// Parses just the header (any GGUF, even one whose tensor data is missing).
pub fn read_header(path: &Path) -> Result<Gguf> {
    let src = FileSource::open(path).with_context(|| format!("opening {}", path.display()))?;
    Gguf::read_header(&src).with_context(|| format!("reading {}", path.display()))
}

/// Memory-maps `path` read-only.
fn map(path: &Path) -> Result<memmap2::Mmap> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    // SAFETY: the map is read-only; a file truncated underneath us while mapped could
    // fault, which is the usual caveat of memory-mapping model files (llama.cpp does too).
    unsafe { memmap2::Mmap::map(&file) }.with_context(|| format!("mapping {}", path.display()))
}

/// Loads a GGUF embedding model or a Hugging Face BERT directory, weights memory-mapped.
pub fn load_embedder(model: &Path) -> Result<Box<dyn Embedder>> {
    if model.is_dir() {
        let files = HfFiles::read_dir(model)?;
        let map = map(&model.join("model.safetensors"))?;
        let st = SafeTensors::read(&map[..])
            .with_context(|| format!("reading {}/model.safetensors", model.display()))?;
        let e = BertEmbedder::from_hf(&files, &st, Box::new(SliceWeights(map)))
            .with_context(|| format!("loading {}", model.display()))?;
        return Ok(Box::new(e));
    }
    let map = map(model)?;
    let header = FileSource::open(model).with_context(|| format!("opening {}", model.display()))?;
    pooling::load_gguf_embedder(&header, Box::new(SliceWeights(map)))
        .with_context(|| format!("loading {}", model.display()))
}
