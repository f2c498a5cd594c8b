//! The host's `weights` resource as a GGUF [`ByteSource`], and the copy of the whole
//! file into memory 0 or the weights memory.

use std::cell::RefCell;
use std::io;

use chord_core::gguf::ByteSource;

use crate::memory;
use crate::wasm_chord::llm::types::Error;
use crate::wasm_chord::llm::weights::{self, Blob};

/// Opens the model `name` through the `weights` import and copies it into the
/// weights memory: the header source and the weights.
pub fn open_model(name: &str) -> Result<(BlobSource, memory::WasmWeights), Error> {
    let blob = weights::open(name).ok_or(Error::ModelNotFound)?;
    let src = BlobSource::new(blob);
    // Refuse what is not GGUF before growing the weights memory.
    let mut magic = [0u8; 4];
    if src.read_at(0, &mut magic).is_err() || &magic != b"GGUF" {
        return Err(Error::UnsupportedModel(format!(
            "not a GGUF file (magic {magic:02x?})"
        )));
    }
    let weights = src.load_weights()?;
    Ok((src, weights))
}

/// Largest single `read` of the header window (the host caps reads at 64 MiB).
const CHUNK: u64 = 16 << 20;

pub struct BlobSource {
    blob: Blob,
    len: u64,
    /// (offset, bytes) of the last read.
    window: RefCell<(u64, Vec<u8>)>,
}

impl BlobSource {
    pub fn new(blob: Blob) -> Self {
        let len = blob.size();
        Self {
            blob,
            len,
            window: RefCell::new((0, Vec::new())),
        }
    }

    /// Copies the file into memory 0 or the weights memory (see [`memory::load`]).
    pub fn load_weights(&self) -> Result<memory::WasmWeights, Error> {
        let trace = std::env::var_os("WASM_CHORD_TRACE").is_some();
        let t0 = std::time::Instant::now();
        let mut t_read = std::time::Duration::ZERO;
        let weights = memory::load(self.len, |at, buf| {
            let t = std::time::Instant::now();
            let chunk = self
                .blob
                .read(at, buf.len() as u32)
                .map_err(|e| Error::Runtime(format!("reading the model at {at}: {e}")))?;
            if chunk.len() != buf.len() {
                return Err(Error::Runtime(format!(
                    "host returned {} bytes for a read of {} at {at}",
                    chunk.len(),
                    buf.len()
                )));
            }
            buf.copy_from_slice(&chunk);
            t_read += t.elapsed();
            Ok(())
        })?;
        if trace {
            eprintln!(
                "[wasm-chord guest] host reads {t_read:.2?}, the rest of the copy {:.2?} ({})",
                t0.elapsed() - t_read,
                match weights {
                    memory::WasmWeights::Resident(_) => "memory 0",
                    memory::WasmWeights::Separate { .. } => "weights memory",
                }
            );
        }
        Ok(weights)
    }
}

/// Header parsing makes many small reads: serve them from a window of this size
/// instead of one host call each.
const WINDOW: u64 = 1 << 20;

impl ByteSource for BlobSource {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let end = offset
            .checked_add(buf.len() as u64)
            .filter(|&e| e <= self.len)
            .ok_or_else(|| {
                io::Error::new(io::ErrorKind::UnexpectedEof, "read beyond end of model")
            })?;
        let mut window = self.window.borrow_mut();
        let mut at = offset;
        while at < end {
            let (start, data) = &*window;
            if at >= *start && at < start + data.len() as u64 {
                let from = (at - start) as usize;
                let n = ((end - at) as usize).min(data.len() - from);
                let dst = (at - offset) as usize;
                buf[dst..dst + n].copy_from_slice(&data[from..from + n]);
                at += n as u64;
                continue;
            }
            // Large reads go straight through; small ones refill the window.
            let want = (end - at).clamp(WINDOW, CHUNK).min(self.len - at);
            let data = self.blob.read(at, want as u32).map_err(io::Error::other)?;
            if data.len() as u64 != want {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "short read from host",
                ));
            }
            *window = (at, data);
        }
        Ok(())
    }
}
