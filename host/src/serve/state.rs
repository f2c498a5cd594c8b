//! Per-request store state: WASI (the model directory preopened read-only),
//! wasi:http, and the memory cap.

use std::path::Path;

use anyhow::Result;
use wasmtime::component::ResourceTable;
use wasmtime::{StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

pub struct State {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    pub limits: StoreLimits,
}

impl State {
    pub fn new(
        model_dir: &Path,
        guest_dir: &str,
        guest_model_path: &str,
        max_memory_bytes: u64,
    ) -> Result<Self> {
        let mut b = WasiCtx::builder();
        b.inherit_stderr();
        b.env("WASM_CHORD_MODEL", guest_model_path);
        b.preopened_dir(model_dir, guest_dir, FsPerms::ReadOnly)
            .map_err(anyhow::Error::from)?;
        Ok(Self {
            wasi: b.build(),
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            limits: StoreLimitsBuilder::new()
                .memory_size(usize::try_from(max_memory_bytes).unwrap_or(usize::MAX))
                .build(),
        })
    }
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for State {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: Default::default(),
        }
    }
}
