//! Loading models into the engine compiled into this binary (`--native`).

use std::path::Path;

use anyhow::{Context, Result};
use chord_core::engine::Engine;
use chord_core::gguf::{FileSource, Gguf};
use chord_core::weights::SliceWeights;

/// Memory-maps a GGUF file and builds the engine over it (weights are not copied).
pub fn load_engine(path: &Path) -> Result<Engine> {
    let file =
        std::fs::File::open(path).with_context(|| format!("opening model {}", path.display()))?;
    // SAFETY: the map is read-only; a file truncated underneath us while mapped could
    // fault, which is the usual caveat of memory-mapping model files (llama.cpp does too).
    let map = unsafe { memmap2::Mmap::map(&file) }
        .with_context(|| format!("mapping {}", path.display()))?;
    let header = FileSource::open(path)?;
    Engine::load(&header, Box::new(SliceWeights(map)))
        .with_context(|| format!("loading {}", path.display()))
}

/// Parses just the header (any GGUF, even one whose tensor data is missing).
pub fn read_header(path: &Path) -> Result<Gguf> {
    let src = FileSource::open(path).with_context(|| format!("opening {}", path.display()))?;
    Gguf::read_header(&src).with_context(|| format!("reading {}", path.display()))
}
