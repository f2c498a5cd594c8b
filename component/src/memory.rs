//! The 64-bit weights memory (memory index 1), reached through intrinsics that
//! `cargo xtask build` rewrites into `memory.copy` / `memory.grow` / `memory.size`.

use chord_core::weights::WeightMemory;

use crate::Error;

/// Wasm page size.
pub const PAGE: u64 = 65536;

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

/// Current size of the weights memory in bytes.
pub fn weights_memory_bytes() -> u64 {
    unsafe { wsize() * PAGE }
}

/// Grows the weights memory to hold at least `bytes` bytes (it never shrinks).
pub fn ensure_weights_capacity(bytes: u64) -> Result<(), Error> {
    let want = bytes.div_ceil(PAGE);
    let have = unsafe { wsize() };
    if want > have && unsafe { wgrow(want - have) } < 0 {
        return Err(Error::OutOfMemory(format!(
            "cannot grow the weights memory to {bytes} bytes ({} MiB): the host refused",
            bytes >> 20
        )));
    }
    Ok(())
}

/// Writes `data` at `offset` of the weights memory (which must be large enough).
pub fn store(offset: u64, data: &[u8]) {
    assert!(
        offset + data.len() as u64 <= weights_memory_bytes(),
        "weights store out of range"
    );
    unsafe { wstore(offset, data.as_ptr(), data.len()) }
}

/// The first `len` bytes of the weights memory: the model file, offset for offset.
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
