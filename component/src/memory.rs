//! Where the model's bytes live, and the intrinsics (rewritten after linking) that
//! reach the memories Rust cannot address.
//!
//! Runtime-loaded build: a model up to [`WHOLE_MAX`] is read into memory 0 and used
//! in place. A larger one goes to a 64-bit memory (index 1) that `cargo xtask build`
//! adds, rewriting `wcopy`/`wstore`/`wgrow`/`wsize` into `memory.copy`/`grow`/`size`
//! on it, where the kernels get copies of the ranges they read; except its tensors
//! read for every token, which go to memory 0 up to [`RESIDENT_MAX`] bytes (a 7B
//! Q4_K_M: 3 of its 4.4 GiB), read in place.
//!
//! Packed build (feature `packed`): `chord pack` rewrites `resident-base` into the
//! memory-0 address of the model when it fits in one shard (the shard's memory is
//! then imported as memory 0, see `pack/src/surgery.rs`). Otherwise the weights are
//! K read-only 32-bit shard memories: a weight address is virtual, `shard << 32 |
//! offset`, `copy` becomes a dispatch on `src >> 32` to `memory.copy 0 shard`, and
//! `len`/`header-len` the constants of the packed model.

use std::borrow::Cow;
use std::rc::Rc;

#[cfg(not(feature = "packed"))]
use chord_core::gguf::{Gguf, TensorInfo};
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
        u64::MAX => WasmWeights::Separate {
            len,
            resident: Rc::default(),
        },
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

/// Models up to this size are read whole into memory 0 and the kernels read them in
/// place (one allocation, well under the 2 GiB a Rust slice may span on wasm32).
#[cfg(not(feature = "packed"))]
pub const WHOLE_MAX: u64 = 1 << 30;

/// Bytes of a larger model's weights that go to memory 0 (the tensors read for every
/// token, in file order, until this is reached); the rest goes to the 64-bit weights
/// memory, whose ranges are copied into scratch. In place is faster (decode +17% on
/// SmolLM2: the copy is a pass over the weights that the kernels cannot overlap with
/// their arithmetic); the bound leaves memory 0, which is 32-bit, 1 GiB for
/// everything else (the KV cache of a 7B takes 112 KiB per position).
#[cfg(not(feature = "packed"))]
pub const RESIDENT_MAX: u64 = 3 << 30;

/// Tensors the forward pass reads whole for every token: all but the token
/// embeddings, of which it reads one row per token (unless the output projection
/// is tied to them).
#[cfg(not(feature = "packed"))]
fn read_per_token(header: &Gguf, tensor: &TensorInfo) -> bool {
    tensor.name != "token_embd.weight" || header.tensor("output.weight").is_none()
}

/// Reads a model of `len` bytes (the file `header` describes) into memory 0 and the
/// weights memory, `CHUNK` bytes per call of `read(offset, buf)`: whole into memory
/// 0 up to [`WHOLE_MAX`], otherwise the tensors read per token into memory 0 up to
/// [`RESIDENT_MAX`] and the rest into the weights memory. The environment variable
/// `WASM_CHORD_RESIDENT_MAX` may lower both bounds (0: all in the weights memory).
#[cfg(not(feature = "packed"))]
pub fn load(
    len: u64,
    header: &Gguf,
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
    if len <= resident_max.min(WHOLE_MAX) {
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

    // Memory 0 takes what the budget and the host allow; a refused allocation only
    // ends the placement there (the rest is read from the weights memory).
    let mut tensors: Vec<&TensorInfo> = header
        .tensors
        .iter()
        .filter(|t| t.offset.checked_add(t.size_bytes).is_some_and(|e| e <= len))
        .collect();
    tensors.sort_by_key(|t| t.offset);
    let mut resident: Vec<ResidentRange> = Vec::new();
    let mut budget = resident_max;
    for t in tensors {
        let overlaps = resident.last().is_some_and(|r| t.offset < r.end());
        if !read_per_token(header, t) || t.size_bytes > budget || overlaps {
            continue;
        }
        let mut bytes = Vec::new();
        if bytes.try_reserve_exact(t.size_bytes as usize).is_err() {
            break;
        }
        bytes.resize(t.size_bytes as usize, 0);
        for at in (0..t.size_bytes).step_by(CHUNK as usize) {
            let end = (at + CHUNK).min(t.size_bytes);
            read(t.offset + at, &mut bytes[at as usize..end as usize])?;
        }
        budget -= t.size_bytes;
        resident.push(ResidentRange {
            start: t.offset,
            bytes,
        });
    }

    // The weights memory spans the whole file, but only the ranges not in memory 0
    // are written: the pages under the others are never touched, so take no RAM.
    let want = len.div_ceil(PAGE);
    let have = unsafe { wsize() };
    if want > have && unsafe { wgrow(want - have) } < 0 {
        return Err(refused("the weights memory"));
    }
    let mut buf = vec![0u8; CHUNK.min(len) as usize];
    let mut at = 0;
    let gaps = resident.iter().map(|r| (r.start, r.end()));
    for (gap_end, next) in gaps.chain([(len, len)]) {
        while at < gap_end {
            let n = (gap_end - at).min(CHUNK) as usize;
            read(at, &mut buf[..n])?;
            // SAFETY: `at + n <= len`, within the weights memory grown above.
            unsafe { wstore(at, buf.as_ptr(), n) };
            at += n as u64;
        }
        at = next;
    }
    Ok(WasmWeights::Separate {
        len,
        resident: Rc::new(resident),
    })
}

/// The model's bytes, offset for offset the file (packed: the virtual address space,
/// whose tensor offsets the packed header gives).
#[derive(Clone, Debug)]
pub enum WasmWeights {
    /// In memory 0: ranges are borrowed in place.
    Resident(Rc<Cow<'static, [u8]>>),
    /// The first `len` bytes of the weights memory (packed: of the shard memories'
    /// virtual address space), whose ranges are copied into scratch, except those
    /// in `resident`: tensors read into memory 0 (sorted, disjoint), borrowed there.
    Separate {
        len: u64,
        resident: Rc<Vec<ResidentRange>>,
    },
}

/// A tensor's bytes held in memory 0.
#[derive(Debug)]
pub struct ResidentRange {
    /// Offset in the file.
    start: u64,
    bytes: Vec<u8>,
}

impl ResidentRange {
    pub fn len(&self) -> u64 {
        self.bytes.len() as u64
    }

    fn end(&self) -> u64 {
        self.start + self.len()
    }
}

impl WasmWeights {
    /// The range of memory 0 holding `offset..end`, if one does.
    fn in_memory_0(resident: &[ResidentRange], offset: u64, end: u64) -> Option<&[u8]> {
        let r = &resident[resident
            .partition_point(|r| r.start <= offset)
            .checked_sub(1)?];
        (end <= r.end()).then(|| &r.bytes[(offset - r.start) as usize..(end - r.start) as usize])
    }
}

impl WeightMemory for WasmWeights {
    fn len(&self) -> u64 {
        match self {
            Self::Resident(b) => b.len() as u64,
            Self::Separate { len, .. } => *len,
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
        let resident = match self {
            Self::Resident(b) => return &b[offset as usize..end as usize],
            Self::Separate { resident, .. } => resident,
        };
        if let Some(bytes) = Self::in_memory_0(resident, offset, end) {
            return bytes;
        }
        if scratch.len() < len {
            scratch.resize(len, 0);
        }
        // Piece by piece: the ranges in memory 0 from there, the gaps between them
        // from the weights memory.
        let mut at = offset;
        while at < end {
            let next = resident.partition_point(|r| r.start <= at);
            let dst = &mut scratch[(at - offset) as usize..len];
            let piece_end = match next.checked_sub(1).map(|i| &resident[i]) {
                Some(r) if at < r.end() => {
                    let piece_end = r.end().min(end);
                    let src = &r.bytes[(at - r.start) as usize..(piece_end - r.start) as usize];
                    dst[..src.len()].copy_from_slice(src);
                    piece_end
                }
                _ => {
                    let piece_end = resident.get(next).map_or(end, |r| r.start.min(end));
                    // SAFETY: `dst` holds at least `piece_end - at` bytes; the source
                    // range was checked against the weights, which the weights memory
                    // holds.
                    unsafe { wcopy(dst.as_mut_ptr(), at, (piece_end - at) as usize) };
                    piece_end
                }
            };
            at = piece_end;
        }
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
