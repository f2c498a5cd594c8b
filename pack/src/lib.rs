//! `chord pack`: builds a *packed component*, the engine with a GGUF model built in.
//!
//! The weights become the data segments of K shard modules, each defining one
//! 32-bit memory (at most ~1 GiB, the per-module limit inside a component) with
//! one active data segment, so that Wasmtime maps them copy-on-write at every
//! instantiation instead of copying. The engine module (the guest built with the
//! `packed` feature) imports the K memories; a weight address is virtual,
//! `shard << 32 | offset`. Shard 0 starts with the model's GGUF header whose tensor
//! offsets are patched to virtual addresses, so the guest needs no host import.
//! A model that fits in one shard is *resident*: its shard module's memory is the
//! engine's memory 0 (the weights above the engine's own initial memory), so the
//! kernels read the weights in place instead of copying them out of a shard.
//!
//! Steps: plan the shards ([`plan`]), patch the header ([`header`]), rewrite the
//! engine's intrinsics for K shards ([`rewrite`]), componentize (wit-component),
//! link the shards in ([`surgery`]), and stream the result out with the
//! [`layout`] as a custom section.

mod header;
pub mod layout;
pub mod plan;
mod rewrite;
mod surgery;

use std::io::{self, Write};

use chord_core::gguf::{Gguf, GgufError};
use thiserror::Error;

pub use layout::{is_wasm, read_layout, Layout, ShardInfo, TensorInfo, LAYOUT_SECTION};
pub use plan::{plan_shards, PlanError, ShardPlan, TensorSpan, DEFAULT_SHARD_BYTES};

#[derive(Debug, Error)]
pub enum PackError {
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error("reading the model: {0}")]
    Gguf(#[from] GgufError),
    #[error("packed header: {0}")]
    Header(String),
    #[error("packed engine: {0}")]
    Engine(String),
    #[error("building the component: {0}")]
    Component(String),
    #[error("not a packed component: {0}")]
    NotPacked(String),
    #[error("writing the component: {0}")]
    Io(#[from] io::Error),
}

const PAGE: u64 = 65536;

/// Packs the GGUF file `model` (its bytes, typically memory-mapped) with the
/// packed engine module `engine` into a component written to `out`.
pub fn pack(
    model: &[u8],
    engine: &[u8],
    shard_size: u64,
    out: &mut impl Write,
) -> Result<Layout, PackError> {
    let g = Gguf::read(model)?;
    let spans: Vec<TensorSpan> = g
        .tensors
        .iter()
        .map(|t| TensorSpan {
            name: t.name.clone(),
            size: t.size_bytes,
        })
        .collect();
    let plan = plan_shards(&spans, g.data_offset, g.alignment, shard_size)?;
    let addresses: Vec<u64> = plan
        .placements
        .iter()
        .map(|p| p.virtual_address())
        .collect();
    let header = header::packed_header(&model[..g.data_offset as usize], &g, &addresses)?;

    let pages: Vec<u64> = plan
        .shard_lens
        .iter()
        .map(|&len| len.div_ceil(PAGE).max(1))
        .collect();
    // A model that fits in one shard goes into memory 0, where the kernels read it in
    // place instead of copying each range out of a shard memory.
    let resident = plan.shard_lens.len() == 1;
    let engine = rewrite::rewrite_packed(
        engine,
        &rewrite::ShardMemories {
            pages: &pages,
            virtual_len: plan.virtual_len(),
            header_len: g.data_offset,
            resident,
        },
    )?;
    let component = wit_component::ComponentEncoder::default()
        .module(&engine.module)
        .and_then(|e| e.validate(true).encode())
        .map_err(|e| PackError::Component(format!("wit-component: {e:#}")))?;
    let shards = plan.shard_lens.len() as u32;
    let linked = surgery::link_shards(&component, shards, resident)?;

    // Stream: preamble, the engine's modules, shard modules, their instances, the
    // rest of the engine, the layout.
    let mut w = CountingWriter { inner: out, n: 0 };
    w.write_all(&layout::COMPONENT_PREAMBLE)?;
    w.write_all(&linked.before)?;
    let mut shard_infos = Vec::with_capacity(shards as usize);
    for (k, (&len, &pages)) in plan.shard_lens.iter().zip(&pages).enumerate() {
        // A resident shard is memory 0: growable, the data above the engine's own.
        let memory = match engine.resident_base {
            Some(base) => ShardMemory {
                base,
                initial: base / PAGE + pages,
                maximum: None,
            },
            None => ShardMemory {
                base: 0,
                initial: pages,
                maximum: Some(pages),
            },
        };
        let file_offset = write_shard_module(&mut w, len, memory, |w| {
            let mut at = 0u64;
            if k == 0 {
                w.write_all(&header)?;
                at = header.len() as u64;
            }
            for (t, p) in g.tensors.iter().zip(&plan.placements) {
                if p.shard as usize != k {
                    continue;
                }
                write_zeros(w, p.offset - at)?;
                w.write_all(&model[t.offset as usize..(t.offset + t.size_bytes) as usize])?;
                at = p.offset + t.size_bytes;
            }
            write_zeros(w, len - at)
        })?;
        shard_infos.push(ShardInfo {
            len,
            pages,
            file_offset,
        });
    }
    // Core instance section: instantiate shard k's module (no imports) as instance k.
    let mut instances = Vec::new();
    leb(&mut instances, u64::from(shards));
    for k in 0..shards {
        instances.push(0x00);
        leb(&mut instances, u64::from(linked.first_shard + k));
        leb(&mut instances, 0);
    }
    write_section(&mut w, 2, &instances)?;
    w.write_all(&linked.after)?;

    let placements = plan.placements.iter().zip(&g.tensors);
    let layout = Layout {
        format: layout::LAYOUT_FORMAT,
        model: g.metadata.get_str("general.name").unwrap_or("").to_string(),
        architecture: g.architecture().unwrap_or("").to_string(),
        header_len: g.data_offset,
        virtual_len: plan.virtual_len(),
        shards: shard_infos,
        resident_base: engine.resident_base,
        tensors: placements
            .map(|(p, t)| TensorInfo {
                name: t.name.clone(),
                shard: p.shard,
                offset: p.offset,
                size: t.size_bytes,
            })
            .collect(),
    };
    let json = serde_json::to_vec(&layout).map_err(|e| PackError::Component(e.to_string()))?;
    let mut custom = Vec::new();
    leb(&mut custom, LAYOUT_SECTION.len() as u64);
    custom.extend_from_slice(LAYOUT_SECTION.as_bytes());
    custom.extend_from_slice(&json);
    write_section(&mut w, 0, &custom)?;
    w.flush()?;
    Ok(layout)
}

struct CountingWriter<'a, W: Write> {
    inner: &'a mut W,
    n: u64,
}

impl<W: Write> Write for CountingWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.n += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn leb(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// Signed LEB128 (`i32.const` immediates).
fn sleb(out: &mut Vec<u8>, mut v: i64) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if (v == 0 && byte & 0x40 == 0) || (v == -1 && byte & 0x40 != 0) {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn leb_len(v: u64) -> u64 {
    let mut buf = Vec::new();
    leb(&mut buf, v);
    buf.len() as u64
}

fn write_section(w: &mut impl Write, id: u8, body: &[u8]) -> io::Result<()> {
    let mut head = vec![id];
    leb(&mut head, body.len() as u64);
    w.write_all(&head)?;
    w.write_all(body)
}

fn write_zeros(w: &mut dyn Write, mut n: u64) -> io::Result<()> {
    let zeros = [0u8; 4096];
    while n > 0 {
        let k = n.min(zeros.len() as u64) as usize;
        w.write_all(&zeros[..k])?;
        n -= k as u64;
    }
    Ok(())
}

/// A shard module's memory: its size in pages, and where the shard's bytes start.
struct ShardMemory {
    base: u64,
    initial: u64,
    maximum: Option<u64>,
}

/// Writes a component core-module section holding a shard module: one memory with
/// `memory`'s limits, exported as `memory`, with one active data segment at
/// `memory.base` of `len` bytes produced by `data`. The data is streamed: a shard
/// never sits in memory. Returns the file offset of the segment's first byte.
fn write_shard_module<W: Write>(
    w: &mut CountingWriter<'_, W>,
    len: u64,
    memory: ShardMemory,
    data: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> Result<u64, PackError> {
    let base = i32::try_from(memory.base)
        .map_err(|_| PackError::Component("shard base beyond 2 GiB".into()))?;
    // One memory: the limits' flag (has a maximum), the minimum, the maximum.
    let mut memory_section = vec![0x01, u8::from(memory.maximum.is_some())];
    leb(&mut memory_section, memory.initial);
    if let Some(max) = memory.maximum {
        leb(&mut memory_section, max);
    }
    let mut export = vec![0x01];
    leb(&mut export, 6);
    export.extend_from_slice(b"memory");
    export.extend_from_slice(&[0x02, 0x00]);
    // count, flags (active, memory 0), `i32.const base; end`, then the byte vector.
    let mut data_head = vec![0x01, 0x00, 0x41];
    sleb(&mut data_head, i64::from(base));
    data_head.push(0x0b);
    leb(&mut data_head, len);
    let data_body = data_head.len() as u64 + len;

    let section_len = |body: u64| 1 + leb_len(body) + body;
    let module_len = 8
        + section_len(memory_section.len() as u64)
        + section_len(export.len() as u64)
        + section_len(data_body);
    if module_len > 1 << 30 {
        return Err(PackError::Component(format!(
            "shard module of {module_len} bytes exceeds the 1 GiB module limit"
        )));
    }
    let mut head = vec![0x01];
    leb(&mut head, module_len);
    head.extend_from_slice(b"\0asm");
    head.extend_from_slice(&[0x01, 0x00, 0x00, 0x00]);
    w.write_all(&head)?;
    write_section(w, 5, &memory_section)?;
    write_section(w, 7, &export)?;
    let mut data_section = vec![0x0b];
    leb(&mut data_section, data_body);
    data_section.extend_from_slice(&data_head);
    w.write_all(&data_section)?;
    let start = w.n;
    let mut counted = CountingWriter { inner: w, n: 0 };
    data(&mut counted)?;
    if counted.n != len {
        return Err(PackError::Component(format!(
            "shard data is {} bytes, planned {len}",
            counted.n
        )));
    }
    Ok(start)
}

/// Validates a (packed) component with every feature Wasmtime 48 enables.
pub fn validate_component(bytes: &[u8]) -> Result<(), PackError> {
    let mut v = wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all());
    v.validate_all(bytes)
        .map(|_| ())
        .map_err(|e| PackError::Component(e.to_string()))
}
