//! Where the model's bytes live, and the intrinsics (rewritten after linking) that
//! reach the memories Rust cannot address.
//!
//! Runtime-loaded build: a model up to [`RESIDENT_MAX`] is read into memory 0 and
//! used in place. A larger one goes to a 64-bit memory (index 1) that `cargo xtask
//! build` adds, rewriting `wcopy`/`wstore`/`wgrow`/`wsize` into
//! `memory.copy`/`grow`/`size` on it; the kernels get copies of the ranges they read.
//!
//! Packed build (feature `packed`): `chord pack` rewrites `resident-base` into the
//! memory-0 address of the model when it fits in one shard (the shard's memory is
//! then imported as memory 0, see `pack/src/surgery.rs`). Otherwise the weights are
//! K read-only 32-bit shard memories: a weight address is virtual, `shard << 32 |
//! offset`, `copy` becomes a dispatch on `src >> 32` to `memory.copy 0 shard`, and
//! `len`/`header-len` the constants of the packed model.

use std::borrow::Cow;
use std::rc::Rc;

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
    /// Address in memory 0 of virtual address 0 when the model is there, else `u64::MAX`.
    #[link_name = "resident-base"]
    fn wresident_base() -> u64;
}

/// Bytes of the packed GGUF header (metadata and tensor table with virtual offsets).
#[cfg(feature = "packed")]
pub fn header_len() -> u64 {
    unsafe { wheader_len() }
}

/// The built-in model: in memory 0, or the shard memories' virtual address space.
#[cfg(feature = "packed")]
pub fn packed_weights() -> WasmWeights {
    let len = unsafe { wlen() };
    match unsafe { wresident_base() } {
        u64::MAX => WasmWeights::Separate { len },
        base => {
            // SAFETY: `chord pack` put the model's `len` bytes at `base` of memory 0, above
            // everything the linker and the allocator use, and nothing writes there.
            let bytes =
                unsafe { core::slice::from_raw_parts(base as usize as *const u8, len as usize) };
            WasmWeights::Resident(Rc::new(Cow::Borrowed(bytes)))
        }
    }
}

/// Bytes of the shard memories' address space (0 when the model is in memory 0).
#[cfg(feature = "packed")]
pub fn weights_memory_bytes() -> u64 {
    match unsafe { wresident_base() } {
        u64::MAX => unsafe { wlen() },
        _ => 0,
    }
}

/// Current size of the 64-bit weights memory in bytes (0 when the model is in memory 0).
#[cfg(not(any(feature = "packed", feature = "http")))]
pub fn weights_memory_bytes() -> u64 {
    unsafe { wsize() * PAGE }
}

/// Models up to this size are read into memory 0 and the kernels read them in place;
/// larger ones go to the 64-bit weights memory, whose ranges are copied into scratch.
/// In place is faster (decode +17% on SmolLM2: the copy costs a pass over the weights
/// that the kernels cannot overlap with their arithmetic); the bound leaves memory 0,
/// which is 32-bit, 3 GiB for everything else.
#[cfg(not(feature = "packed"))]
pub const RESIDENT_MAX: u64 = 1 << 30;

/// Reads a model of `len` bytes into memory 0 (up to [`RESIDENT_MAX`], or the lower
/// bound in the environment variable `WASM_CHORD_RESIDENT_MAX`) or the weights memory,
/// `CHUNK` bytes per call of `read(offset, buf)`.
#[cfg(not(feature = "packed"))]
pub fn load(
    len: u64,
    mut read: impl FnMut(u64, &mut [u8]) -> Result<(), Error>,
) -> Result<WasmWeights, Error> {
    const CHUNK: u64 = 16 << 20;
    let refused = |what: &str| {
        Error::OutOfMemory(format!(
            "the model does not fit: cannot grow {what} to {len} bytes ({} MiB), the host \
             refused (over its memory limit or its available RAM)",
            len >> 20
        ))
    };
    // The host may lower the bound (`Limits::resident_max_bytes` in chord's host).
    let resident_max = std::env::var("WASM_CHORD_RESIDENT_MAX")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(RESIDENT_MAX, |v| v.min(RESIDENT_MAX));
    if len <= resident_max {
        let mut bytes = Vec::new();
        bytes
            .try_reserve_exact(len as usize)
            .map_err(|_| refused("memory 0"))?;
        bytes.resize(len as usize, 0);
        for at in (0..len).step_by(CHUNK as usize) {
            let end = (at + CHUNK).min(len);
            read(at, &mut bytes[at as usize..end as usize])?;
        }
        return Ok(WasmWeights::Resident(Rc::new(Cow::Owned(bytes))));
    }
    let want = len.div_ceil(PAGE);
    let have = unsafe { wsize() };
    if want > have && unsafe { wgrow(want - have) } < 0 {
        return Err(refused("the weights memory"));
    }
    let mut buf = vec![0u8; CHUNK.min(len) as usize];
    for at in (0..len).step_by(CHUNK as usize) {
        let n = (len - at).min(CHUNK) as usize;
        read(at, &mut buf[..n])?;
        // SAFETY: `at + n <= len`, within the weights memory grown above.
        unsafe { wstore(at, buf.as_ptr(), n) };
    }
    Ok(WasmWeights::Separate { len })
}

/// The model's bytes, offset for offset the file (packed: the virtual address space,
/// whose tensor offsets the packed header gives).
#[derive(Clone, Debug)]
pub enum WasmWeights {
    /// In memory 0: ranges are borrowed in place.
    Resident(Rc<Cow<'static, [u8]>>),
    /// The first `len` bytes of the weights memory (packed: of the shard memories'
    /// virtual address space): ranges are copied into scratch.
    Separate { len: u64 },
}

impl WeightMemory for WasmWeights {
    fn len(&self) -> u64 {
        match self {
            Self::Resident(b) => b.len() as u64,
            Self::Separate { len } => *len,
        }
    }

    /// Copies of 16 KiB (scratch that stays in L1 while the kernels read it) decode
    /// the synthetic 7B 8% faster than 128 KiB ones (1.40 against 1.30 tok/s; 8 and
    /// 32 KiB in between); its prefill is the same with both. In-place weights keep
    /// the default: small requests cost SmolLM2 (resident) 4-13% in per-call set-up.
    fn chunk_bytes(&self) -> usize {
        match self {
            Self::Resident(_) => chord_core::weights::DEFAULT_CHUNK_BYTES,
            Self::Separate { .. } => 16 * 1024,
        }
    }

    fn bytes<'a>(&'a self, offset: u64, len: usize, scratch: &'a mut Vec<u8>) -> &'a [u8] {
        let end = offset
            .checked_add(len as u64)
            .expect("weights range overflows");
        assert!(
            end <= self.len(),
            "weights range {offset}..{end} beyond {}",
            self.len()
        );
        match self {
            Self::Resident(b) => &b[offset as usize..end as usize],
            Self::Separate { .. } => {
                if scratch.len() < len {
                    scratch.resize(len, 0);
                }
                // SAFETY: `scratch` holds at least `len` bytes; the source range was
                // checked against the weights, which the weights memory holds.
                unsafe { wcopy(scratch.as_mut_ptr(), offset, len) };
                &scratch[..len]
            }
        }
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
