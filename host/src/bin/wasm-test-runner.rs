//! Runs a WASI preview 2 command component (e.g. a test or bench binary built for
//! `wasm32-wasip2`) in Wasmtime, as cargo's `target.wasm32-wasip2.runner`:
//!
//! ```text
//! wasm-test-runner PROGRAM.wasm [ARGS...]
//! ```
//!
//! The guest gets this process's stdio, arguments (`PROGRAM.wasm ARGS...`) and
//! environment, and read-write preopens of the current directory (as `.`) and, under
//! their absolute paths (so `CARGO_MANIFEST_DIR` paths work), of the
//! workspace this runner was built from, of every directory listed in
//! `WASM_RUNNER_DIRS` (`:`-separated) and of the current directory, except those
//! inside another. SIMD, relaxed SIMD, memory64, multi-memory and epoch interruption (as
//! in the component hosts) are enabled. The
//! process exits with the guest's exit code (1 if `run` fails, 1 with a message on a
//! trap; under `cargo test`, pass `-- --nocapture` to see a failed assertion's
//! message, since a panic aborts the guest before the harness prints it).
//!
//! For looking at the generated code: `WASM_RUNNER_SAVE_CWASM=FILE` also writes the
//! compiled component (an ELF object: `objdump -d FILE`), `WASM_RUNNER_PERFMAP=1`
//! writes `/tmp/perf-PID.map` for `perf record`.
//!
//! Setup (see `.cargo/config.toml` and `scripts/wasm-runner.sh`):
//!
//! ```text
//! cargo build -p chord --bin wasm-test-runner
//! RUSTFLAGS="-C target-feature=+simd128,+relaxed-simd" \
//!   cargo test -p wasm-chord-core --target wasm32-wasip2 --test quant_simd
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::error::Context;
use wasmtime::{bail, format_err, Config, Engine, Result, Store};
use wasmtime_wasi::p2::bindings::sync::Command;
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtx, WasiCtxView, WasiView};

struct State {
    wasi: WasiCtx,
    table: ResourceTable,
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// The directories the guest can see: `(host path, guest path)`.
///
/// The guest's libc resolves an absolute path through the preopen with the longest
/// matching prefix, without normalizing `..`: `/repo/core/../fixtures` through a
/// `/repo/core` preopen would escape it and fail. So directories inside another
/// preopened one are not preopened again (the current directory, typically a crate of
/// the workspace, is reached through the workspace root).
fn preopens() -> Result<Vec<(PathBuf, String)>> {
    let cwd = std::env::current_dir().context("reading the current directory")?;
    let mut absolute = Vec::new();
    // The workspace root (parent of this crate's directory), where fixtures live.
    let root = chord::repo_root();
    if root.is_dir() {
        absolute.push(root);
    }
    if let Ok(extra) = std::env::var("WASM_RUNNER_DIRS") {
        absolute.extend(
            extra
                .split(':')
                .filter(|s| !s.is_empty())
                .map(PathBuf::from),
        );
    }
    absolute.push(cwd.clone());
    let mut canonical = Vec::new();
    for dir in absolute {
        let dir = dir
            .canonicalize()
            .with_context(|| format!("preopen {}", dir.display()))?;
        dir.to_str()
            .with_context(|| format!("non-UTF-8 path {}", dir.display()))?;
        canonical.push(dir);
    }
    let mut dirs = vec![(cwd, ".".to_owned())];
    for (i, dir) in canonical.iter().enumerate() {
        let covered = canonical
            .iter()
            .enumerate()
            .any(|(j, other)| j != i && dir.starts_with(other) && (dir != other || j < i));
        if !covered {
            dirs.push((dir.clone(), dir.to_string_lossy().into_owned()));
        }
    }
    Ok(dirs)
}

fn run() -> Result<u8> {
    let mut args = std::env::args_os().skip(1);
    let Some(program) = args.next() else {
        bail!("usage: wasm-test-runner PROGRAM.wasm [ARGS...]");
    };
    let program = PathBuf::from(program);
    let guest_args: Vec<String> = std::iter::once(program.clone().into_os_string())
        .chain(args)
        .map(|a| {
            a.into_string()
                .map_err(|a| format_err!("non-UTF-8 argument {a:?}"))
        })
        .collect::<Result<_>>()?;

    let mut config = Config::new();
    config.wasm_component_model(true);
    config.wasm_simd(true);
    config.wasm_relaxed_simd(true);
    config.wasm_memory64(true);
    config.wasm_multi_memory(true);
    // As the component hosts (`chord`, Spin) compile: with an epoch check at every loop
    // header, which shapes register allocation (the kernel benchmarks must see it).
    config.epoch_interruption(true);
    // `perf record` can name the compiled functions (`/tmp/perf-PID.map`).
    if std::env::var_os("WASM_RUNNER_PERFMAP").is_some() {
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    let engine = Engine::new(&config).context("creating the Wasmtime engine")?;
    let component = Component::from_file(&engine, &program)
        .with_context(|| format!("loading {}", program.display()))?;
    // For looking at the generated machine code (`objdump -d`).
    if let Some(out) = std::env::var_os("WASM_RUNNER_SAVE_CWASM") {
        std::fs::write(&out, component.serialize()?)
            .with_context(|| format!("writing {}", PathBuf::from(&out).display()))?;
    }

    let mut linker = Linker::<State>::new(&engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker).context("adding WASI to the linker")?;

    let mut wasi = WasiCtx::builder();
    wasi.inherit_stdio().inherit_env().args(&guest_args);
    for (host, guest) in preopens()? {
        wasi.preopened_dir(&host, &guest, FsPerms::ReadWrite)
            .with_context(|| format!("preopening {}", host.display()))?;
    }
    let mut store = Store::new(
        &engine,
        State {
            wasi: wasi.build(),
            table: ResourceTable::new(),
        },
    );
    // Nothing advances the epoch: the deadline is never reached.
    store.set_epoch_deadline(1);
    let command = Command::instantiate(&mut store, &component, &linker)
        .with_context(|| format!("instantiating {}", program.display()))?;
    match command.wasi_cli_run().call_run(&mut store) {
        Ok(Ok(())) => Ok(0),
        Ok(Err(())) => Ok(1),
        Err(e) => match e.downcast_ref::<I32Exit>() {
            // Exit statuses are 8 bits: keep a non-zero code non-zero.
            Some(&I32Exit(code)) => Ok(if code != 0 && code & 0xff == 0 {
                1
            } else {
                code as u8
            }),
            None => Err(e.context(format!("running {}", program.display()))),
        },
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("wasm-test-runner: {e:#}");
            ExitCode::from(1)
        }
    }
}
