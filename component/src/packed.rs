//! The model of a packed component: its GGUF header sits at virtual address 0
//! (start of shard 0) with every tensor offset already a virtual address, so the
//! engine reads the header and the tensors through the same weight memory.

use std::io;

use chord_core::gguf::ByteSource;
use chord_core::weights::WeightMemory;

use crate::memory::{self, WasmWeights};
use crate::wasm_chord::llm::types::Error;

/// The packed header, read out of shard 0. Reads stop at the header's end, so a
/// corrupt header is a parse error rather than a copy into an unmapped range.
pub struct PackedHeader {
    weights: WasmWeights,
    len: u64,
}

impl ByteSource for PackedHeader {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        offset
            .checked_add(buf.len() as u64)
            .filter(|&end| end <= self.len)
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "read beyond the packed header",
                )
            })?;
        let mut scratch = Vec::new();
        buf.copy_from_slice(self.weights.bytes(offset, buf.len(), &mut scratch));
        Ok(())
    }
}

/// The built-in model: only the default name ("") exists.
pub fn open_model(name: &str) -> Result<(PackedHeader, WasmWeights), Error> {
    if !name.is_empty() {
        return Err(Error::ModelNotFound);
    }
    let weights = memory::packed_weights();
    let header = PackedHeader {
        weights: weights.clone(),
        len: memory::header_len(),
    };
    Ok((header, weights))
}
