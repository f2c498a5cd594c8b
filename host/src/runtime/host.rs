//! The host side of the component's imports: the `weights` resource over a
//! memory-mapped GGUF file, WASI, and the per-store resource limiter.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use wasmtime::component::{Resource, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::wasm_chord::llm::weights;
use super::MemoryReport;

/// Largest single `read` the guest may ask for. Wasmtime 48 caps the data passed
/// across one host call ("hostcall fuel", 128 MiB by default).
pub const MAX_READ: u32 = 64 << 20;

/// A model file, memory-mapped read-only and shared by all requests.
pub struct ModelFile {
    path: PathBuf,
    map: Option<memmap2::Mmap>,
}

impl ModelFile {
    pub fn open(path: &Path) -> Result<Self> {
        let file =
            File::open(path).with_context(|| format!("opening the model {}", path.display()))?;
        let len = file.metadata()?.len();
        // An empty file cannot be mapped; it is served as zero bytes.
        let map = if len == 0 {
            None
        } else {
            // SAFETY: read-only private mapping; the model file must not be modified
            // while in use (as with any mmap-based loader).
            Some(
                unsafe { memmap2::Mmap::map(&file) }
                    .with_context(|| format!("mapping {}", path.display()))?,
            )
        };
        Ok(Self {
            path: path.to_path_buf(),
            map,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn bytes(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }

    pub fn len(&self) -> u64 {
        self.bytes().len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A `blob` resource handed to the guest: a shared model file.
pub struct BlobHandle(pub Arc<ModelFile>);

/// The guest's environment variable that lowers its memory-0 bound for models
/// ([`super::Limits::resident_max_bytes`]).
pub const RESIDENT_MAX_ENV: &str = "WASM_CHORD_RESIDENT_MAX";

/// Per-store state.
pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    models: HashMap<String, Arc<ModelFile>>,
    pub limiter: Limiter,
}

impl HostState {
    pub fn new(models: HashMap<String, Arc<ModelFile>>, limits: &super::Limits) -> Self {
        let mut b = WasiCtx::builder();
        b.inherit_stderr();
        // `WASM_CHORD_TRACE=1` makes the guest print its load timings.
        if let Ok(v) = std::env::var("WASM_CHORD_TRACE") {
            b.env("WASM_CHORD_TRACE", v);
        }
        if let Some(bytes) = limits.resident_max_bytes {
            b.env(RESIDENT_MAX_ENV, bytes.to_string());
        }
        Self::with_wasi(models, limits.max_memory_bytes, b.build())
    }

    /// A store state with the caller's WASI context (arguments, captured output...).
    pub fn with_wasi(
        models: HashMap<String, Arc<ModelFile>>,
        max_memory_bytes: u64,
        wasi: WasiCtx,
    ) -> Self {
        Self {
            wasi,
            table: ResourceTable::new(),
            models,
            limiter: Limiter {
                max_memory_bytes,
                grows: Vec::new(),
            },
        }
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl super::bindings::wasm_chord::llm::types::Host for HostState {}

impl weights::Host for HostState {
    fn open(&mut self, name: String) -> wasmtime::Result<Option<Resource<BlobHandle>>> {
        let Some(model) = self.models.get(&name).cloned() else {
            return Ok(None);
        };
        Ok(Some(self.table.push(BlobHandle(model))?))
    }
}

impl weights::HostBlob for HostState {
    fn size(&mut self, blob: Resource<BlobHandle>) -> wasmtime::Result<u64> {
        let h = self.table.get(&blob)?;
        Ok(h.0.len())
    }

    fn read(
        &mut self,
        blob: Resource<BlobHandle>,
        offset: u64,
        len: u32,
    ) -> wasmtime::Result<Result<Vec<u8>, String>> {
        let h = self.table.get(&blob)?;
        if len > MAX_READ {
            return Ok(Err(format!(
                "read of {len} bytes exceeds the {MAX_READ}-byte limit"
            )));
        }
        let bytes = h.0.bytes();
        let end = offset.checked_add(len as u64);
        match end {
            Some(end) if end <= bytes.len() as u64 => {
                Ok(Ok(bytes[offset as usize..end as usize].to_vec()))
            }
            _ => Ok(Err(format!(
                "read of {len} bytes at {offset} is beyond the end of {} ({} bytes)",
                h.0.path().display(),
                bytes.len()
            ))),
        }
    }

    fn drop(&mut self, blob: Resource<BlobHandle>) -> wasmtime::Result<()> {
        self.table.delete(blob)?;
        Ok(())
    }
}

/// Caps each memory of an instance and records its growth.
pub struct Limiter {
    max_memory_bytes: u64,
    grows: Vec<(u64, u64)>,
}

impl Limiter {
    pub fn report(&self) -> MemoryReport {
        MemoryReport {
            largest_memory: self.grows.iter().map(|&(_, to)| to).max().unwrap_or(0),
            grows: self.grows.clone(),
        }
    }
}

impl wasmtime::ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired as u64 > self.max_memory_bytes {
            return Ok(false);
        }
        // A growth the machine cannot back would end in an OOM kill while the guest
        // fills it: refuse it now, so the guest reports out-of-memory instead.
        let growth = (desired - current) as u64;
        if growth >= super::fit::CHECKED_GROWTH
            && super::fit::refusal(growth, self.max_memory_bytes).is_some()
        {
            return Ok(false);
        }
        self.grows.push((current as u64, desired as u64));
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}
