//! The weights memory, reached through intrinsics that a post-link pass rewrites.
//!
//! Runtime-loaded build: one 64-bit memory (index 1) that `cargo xtask build`
//! rewrites `wcopy`/`wstore`/`wgrow`/`wsize` into `memory.copy`/`grow`/`size` on.
//!
//! Packed build (feature `packed`): the weights are K read-only 32-bit shard
//! memories. A weight address is virtual, `shard << 32 | offset`; `chord pack`
//! rewrites `copy` into a dispatch on `src >> 32` to `memory.copy 0 shard`, and
//! `len`/`header-len` into the constants of the packed model.

use chord_core::weights::WeightMemory;

#[cfg(not(feature = "packed"))]
use crate::Error;

/// Wasm page size.
pub const PAGE: u64 = 65536;

#[cfg(not(feature = "packed"))]
#[link(wasm_import_module = "wasm-chord:intrinsics")]
unsafe extern "C" {
    /// `memory.copy 0 1`: weights[src..src+len] -> memory0[dst..dst+len].
    fn wcopy(dst: *mut u8, src: u64, len: usize);
    /// `memory.copy 1 0`: memory0[src..src+len] -> weights[dst..dst+len].
    fn wstore(dst: u64, src: *const u8, len: usize);
    /// `memory.grow 1`: old size in pages, or -1.
    fn wgrow(delta_pages: u64) -> i64;
    /// `memory.size 1`, in pages.
    fn wsize() -> u64;
}

#[cfg(feature = "packed")]
#[link(wasm_import_module = "wasm-chord:packed")]
unsafe extern "C" {
    /// `memory.copy 0 (src >> 32)`: shard[src & 0xffff_ffff..+len] -> memory0[dst..].
    #[link_name = "copy"]
    fn wcopy(dst: *mut u8, src: u64, len: usize);
    /// End of the virtual weight address space (last shard's end).
    #[link_name = "len"]
    fn wlen() -> u64;
    /// Bytes of the GGUF header at virtual address 0 (start of shard 0).
    #[link_name = "header-len"]
    fn wheader_len() -> u64;
}

/// Bytes of the packed GGUF header (metadata and tensor table with virtual offsets).
#[cfg(feature = "packed")]
pub fn header_len() -> u64 {
    unsafe { wheader_len() }
}

/// Size of the weight address space in bytes.
#[cfg(feature = "packed")]
pub fn weights_memory_bytes() -> u64 {
    unsafe { wlen() }
}

/// Current size of the weights memory in bytes.
#[cfg(not(feature = "packed"))]
pub fn weights_memory_bytes() -> u64 {
    unsafe { wsize() * PAGE }
}

/// Grows the weights memory to hold at least `bytes` bytes (it never shrinks).
#[cfg(not(feature = "packed"))]
pub fn ensure_weights_capacity(bytes: u64) -> Result<(), Error> {
    let want = bytes.div_ceil(PAGE);
    let have = unsafe { wsize() };
    if want > have && unsafe { wgrow(want - have) } < 0 {
        return Err(Error::OutOfMemory(format!(
            "the model does not fit: cannot grow the weights memory to {bytes} bytes ({} MiB), \
             the host refused (over its memory limit or its available RAM)",
            bytes >> 20
        )));
    }
    Ok(())
}

/// Writes `data` at `offset` of the weights memory (which must be large enough).
#[cfg(not(feature = "packed"))]
pub fn store(offset: u64, data: &[u8]) {
    assert!(
        offset + data.len() as u64 <= weights_memory_bytes(),
        "weights store out of range"
    );
    unsafe { wstore(offset, data.as_ptr(), data.len()) }
}

/// The first `len` bytes of the weights memory: the model file, offset for offset
/// (packed: the virtual address space, whose tensor offsets the packed header gives).
#[derive(Clone, Copy, Debug)]
pub struct WasmWeights {
    len: u64,
}

impl WasmWeights {
    pub fn new(len: u64) -> Self {
        assert!(len <= weights_memory_bytes());
        Self { len }
    }
}

impl WeightMemory for WasmWeights {
    fn len(&self) -> u64 {
        self.len
    }

    fn bytes<'a>(&'a self, offset: u64, len: usize, scratch: &'a mut Vec<u8>) -> &'a [u8] {
        let end = offset
            .checked_add(len as u64)
            .expect("weights range overflows");
        assert!(
            end <= self.len,
            "weights range {offset}..{end} beyond {}",
            self.len
        );
        if scratch.len() < len {
            scratch.resize(len, 0);
        }
        // SAFETY: `scratch` holds at least `len` bytes; the source range was checked
        // against the weights memory (which only grows).
        unsafe { wcopy(scratch.as_mut_ptr(), offset, len) };
        &scratch[..len]
    }
}

/// FNV-1a 64 of weights[offset..offset+len] (the engine world's diagnostics).
#[cfg(not(feature = "http"))]
pub fn checksum(weights: &WasmWeights, offset: u64, len: u64) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    let mut scratch = Vec::new();
    let mut at = offset;
    let end = offset + len;
    while at < end {
        let n = (end - at).min(1 << 20) as usize;
        for &b in weights.bytes(at, n, &mut scratch) {
            h ^= b as u64;
            h = h.wrapping_mul(0x100000001b3);
        }
        at += n as u64;
    }
    h
}
