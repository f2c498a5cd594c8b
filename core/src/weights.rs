//! The one door through which kernels reach weight bytes.
//!
//! Natively the weights are a plain byte slice. Inside the component they live in a
//! separate (64-bit or shard) wasm memory that Rust cannot address: there the
//! implementation copies the requested range into memory-0 scratch with a
//! post-link-rewritten `memory.copy`. Kernels therefore ask for a range and get a
//! slice that is either borrowed or copied; they never hold pointers into weights.

/// [`WeightMemory::chunk_bytes`] of borrowed weights.
pub const DEFAULT_CHUNK_BYTES: usize = 128 * 1024;

/// Read-only weight bytes, addressed by 64-bit offsets.
pub trait WeightMemory {
    /// Total size in bytes.
    fn len(&self) -> u64;

    /// The bytes `offset..offset + len`: borrowed when directly addressable, otherwise
    /// copied into `scratch` (which is resized as needed and reused across calls).
    ///
    /// Callers only ask for ranges of tensors that the model validated against
    /// [`WeightMemory::len`] at load time; an out-of-range request is a bug and panics.
    fn bytes<'a>(&'a self, offset: u64, len: usize, scratch: &'a mut Vec<u8>) -> &'a [u8];

    /// Bytes of weight rows a matrix product asks for at a time. Borrowed ranges want
    /// large requests (each is one call of the kernels, with per-call set-up); copied
    /// ones override this with a small size (see `WasmWeights`).
    fn chunk_bytes(&self) -> usize {
        DEFAULT_CHUNK_BYTES
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Weights held in ordinary memory (native builds, tests).
pub struct SliceWeights<T: AsRef<[u8]>>(pub T);

impl<T: AsRef<[u8]>> WeightMemory for SliceWeights<T> {
    fn len(&self) -> u64 {
        self.0.as_ref().len() as u64
    }

    fn bytes<'a>(&'a self, offset: u64, len: usize, _scratch: &'a mut Vec<u8>) -> &'a [u8] {
        let start = offset as usize;
        &self.0.as_ref()[start..start + len]
    }
}
