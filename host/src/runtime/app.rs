//! Running an *application* component: a `wasi:cli` command that was composed onto
//! the engine (e.g. an app written against Spin's `fermyon:spin/llm`, with the engine
//! plugged into its import by `wac plug`). The composition still imports the
//! engine's `weights` interface, which this host serves from GGUF files as it does
//! for the engine itself; everything else is WASI.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use wasmtime::component::Linker;
use wasmtime::Store;
use wasmtime_wasi::p2::bindings::sync::Command;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::WasiCtx;

use super::host::{HostState, ModelFile};
use super::{bindings, cache, fit, wasmtime_config, Limits, WtContext};

/// What a command printed, and whether it exited successfully.
pub struct AppOutput {
    pub success: bool,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// Most output kept from each of stdout and stderr.
const MAX_OUTPUT: usize = 16 << 20;

/// Runs the command component at `app` with `args` (argv[1..]); `models` are the
/// (name, GGUF path) pairs its `weights` import can open ("" is the default model).
pub fn run_app(app: &Path, models: &[(String, PathBuf)], args: &[String]) -> Result<AppOutput> {
    let limits = Limits::default();
    let mut files = HashMap::new();
    for (name, path) in models {
        let file = ModelFile::open(path)?;
        fit::check_model(file.path(), file.len(), limits.max_memory_bytes)?;
        files.insert(name.clone(), Arc::new(file));
    }

    let engine = wasmtime::Engine::new(&wasmtime_config()).ctx("creating the engine")?;
    let (component, _, _) = cache::load_component(&engine, app)?;
    let mut linker = Linker::<HostState>::new(&engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker).ctx("adding WASI to the linker")?;
    // Only the `weights` import of the engine world; unused if the app has none.
    bindings::Engine::add_to_linker::<_, wasmtime::component::HasSelf<_>>(&mut linker, |s| s)
        .ctx("adding the weights interface to the linker")?;

    let stdout = MemoryOutputPipe::new(MAX_OUTPUT);
    let stderr = MemoryOutputPipe::new(MAX_OUTPUT);
    let name = app
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let wasi = WasiCtx::builder()
        .arg(name)
        .args(args)
        .stdout(stdout.clone())
        .stderr(stderr.clone())
        .build();
    let mut store = Store::new(
        &engine,
        HostState::with_wasi(files, limits.max_memory_bytes, wasi),
    );
    store.limiter(|s| &mut s.limiter);
    // The shared config enables epoch interruption (request deadlines); nothing
    // advances the epoch here, so any deadline above the current epoch never fires.
    store.set_epoch_deadline(1);
    let command = Command::instantiate(&mut store, &component, &linker)
        .map_err(anyhow::Error::from)
        .with_context(|| {
            format!(
                "instantiating {} (a wasi:cli command importing only WASI and wasm-chord:llm/weights)",
                app.display()
            )
        })?;
    // A non-zero exit status arrives as an `I32Exit` error rather than `Err(())`.
    let success = match command.wasi_cli_run().call_run(&mut store) {
        Ok(status) => status.is_ok(),
        Err(e) => match e.downcast_ref::<wasmtime_wasi::I32Exit>() {
            Some(exit) => exit.0 == 0,
            None => return Err(anyhow::Error::from(e).context("running the command")),
        },
    };
    drop(store);
    Ok(AppOutput {
        success,
        stdout: stdout.contents().to_vec(),
        stderr: stderr.contents().to_vec(),
    })
}
