//! The layout of a packed component, stored in it as the custom section
//! [`LAYOUT_SECTION`] (JSON) so that `chord info` can describe a packed file
//! without instantiating it.

use serde::{Deserialize, Serialize};

use crate::PackError;

/// Name of the component-level custom section holding the [`Layout`].
pub const LAYOUT_SECTION: &str = "wasm-chord:pack";

/// Version of the layout format.
pub const LAYOUT_FORMAT: u32 = 1;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Layout {
    pub format: u32,
    /// `general.name` of the model (empty if none).
    pub model: String,
    pub architecture: String,
    /// Bytes of the packed GGUF header at the start of shard 0.
    pub header_len: u64,
    /// End of the virtual address space (`last shard << 32 | its length`).
    pub virtual_len: u64,
    pub shards: Vec<ShardInfo>,
    /// Resident model: the memory-0 address of shard 0 (whose memory is memory 0).
    #[serde(default)]
    pub resident_base: Option<u64>,
    /// In GGUF order.
    pub tensors: Vec<TensorInfo>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShardInfo {
    /// Bytes of data (the data segment).
    pub len: u64,
    /// Pages of the shard's data (64 KiB each; a separate shard memory has exactly
    /// these, a resident one these above the engine's own).
    pub pages: u64,
    /// Where the data segment's bytes start in the component file.
    pub file_offset: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TensorInfo {
    pub name: String,
    pub shard: u32,
    /// Offset inside the shard memory.
    pub offset: u64,
    pub size: u64,
}

impl Layout {
    /// The tensors of shard `k`, in address order.
    pub fn shard_tensors(&self, k: u32) -> impl Iterator<Item = &TensorInfo> {
        self.tensors.iter().filter(move |t| t.shard == k)
    }
}

/// The component preamble (magic and component-model version/layer).
pub const COMPONENT_PREAMBLE: [u8; 8] = [0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00];

/// Whether `bytes` starts like a wasm binary (module or component).
pub fn is_wasm(bytes: &[u8]) -> bool {
    bytes.starts_with(b"\0asm")
}

fn leb_u32(bytes: &[u8], at: &mut usize) -> Option<u32> {
    let mut result: u64 = 0;
    for shift in (0..35).step_by(7) {
        let b = *bytes.get(*at)?;
        *at += 1;
        result |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return u32::try_from(result).ok();
        }
    }
    None
}

/// Reads the layout of a packed component by walking its top-level sections (no
/// validation, no parsing of the shards: cheap on multi-GiB files).
pub fn read_layout(component: &[u8]) -> Result<Layout, PackError> {
    let not_packed = |why: &str| PackError::NotPacked(why.into());
    if !component.starts_with(&COMPONENT_PREAMBLE) {
        return Err(not_packed("not a WebAssembly component"));
    }
    let mut at = COMPONENT_PREAMBLE.len();
    while at < component.len() {
        let id = component[at];
        at += 1;
        let size =
            leb_u32(component, &mut at).ok_or_else(|| not_packed("bad section size"))? as usize;
        let body = component
            .get(at..at + size)
            .ok_or_else(|| not_packed("truncated section"))?;
        at += size;
        if id != 0 {
            continue;
        }
        let mut p = 0;
        let name_len =
            leb_u32(body, &mut p).ok_or_else(|| not_packed("bad custom section"))? as usize;
        let name = body
            .get(p..p + name_len)
            .ok_or_else(|| not_packed("bad custom section"))?;
        if name == LAYOUT_SECTION.as_bytes() {
            let layout: Layout = serde_json::from_slice(&body[p + name_len..])
                .map_err(|e| not_packed(&format!("bad layout section: {e}")))?;
            if layout.format != LAYOUT_FORMAT {
                return Err(not_packed(&format!(
                    "layout format {} (this build reads {LAYOUT_FORMAT})",
                    layout.format
                )));
            }
            return Ok(layout);
        }
    }
    Err(not_packed(&format!(
        "a component without a `{LAYOUT_SECTION}` section (not made by `chord pack`)"
    )))
}
