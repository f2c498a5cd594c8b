//! Build tasks. `cargo xtask build [--release]` produces `target/wasm-chord.wasm`:
//!
//! 1. `cargo build -p wasm-chord-component --target wasm32-wasip2` with simd128 +
//!    relaxed-simd and `--skip-wit-component` (the linked core module, which keeps
//!    its `component-type` custom sections);
//! 2. rewrite the `wasm-chord:intrinsics` imports into instructions on a 64-bit
//!    weights memory (memory index 1) that the module defines (walrus);
//! 3. componentize (`wit_component::ComponentEncoder`);
//! 4. validate the component (wasmparser, all features) and write it.
//!
//! It also builds the guest with the `packed` feature and writes that linked core
//! module, intrinsics still imported, to `target/wasm-chord-packed-engine.wasm`:
//! `chord pack` rewrites and componentizes it around a model's shard memories.
//! And it builds the guest's `http` feature into `target/wasm-chord-http.wasm`, the
//! `wasi:http/proxy` variant (`chord serve`, `wasmtime serve`, Spin), and the
//! example application `examples/spin-llm-app` into `target/spin-llm-app.wasm`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, ensure, Context, Result};

mod rewrite;

const GUEST_PACKAGE: &str = "wasm-chord-component";
const GUEST_ARTIFACT: &str = "wasm_chord_component.wasm";
const TARGET: &str = "wasm32-wasip2";

fn main() {
    if let Err(e) = run() {
        eprintln!("xtask: error: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("build") => {
            let mut release = false;
            let mut out = None;
            let mut it = args[1..].iter();
            while let Some(a) = it.next() {
                match a.as_str() {
                    "--release" => release = true,
                    "-o" | "--out" => {
                        out = Some(PathBuf::from(it.next().context("--out needs a path")?))
                    }
                    other => bail!("unknown option to `build`: {other}\n{USAGE}"),
                }
            }
            build(release, out)
        }
        Some("rewrite") => {
            // Debugging aid: rewrite + componentize an already linked core module.
            ensure!(
                args.len() == 3,
                "usage: cargo xtask rewrite IN.wasm OUT.wasm"
            );
            let core = std::fs::read(&args[1]).with_context(|| format!("reading {}", args[1]))?;
            let component = finish(&core)?;
            std::fs::write(&args[2], component)?;
            Ok(())
        }
        _ => {
            eprintln!("{USAGE}");
            std::process::exit(2);
        }
    }
}

const USAGE: &str = "usage: cargo xtask build [--release] [--out PATH]\n\
    builds the wasm-chord component into target/wasm-chord.wasm (or PATH), and the\n\
    packed-mode engine module (input of `chord pack`) next to it as wasm-chord-packed-engine.wasm,\n\
    and the HTTP variant as wasm-chord-http.wasm";

/// The repository root. `cargo xtask` sets `CARGO_MANIFEST_DIR` at run time, which
/// follows the checkout; the compile-time value could name another clone that
/// shares the target directory (cargo does not rebuild a moved workspace).
fn workspace_root() -> PathBuf {
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    manifest_dir.parent().unwrap().to_path_buf()
}

fn target_dir(root: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) => {
            let d = PathBuf::from(d);
            if d.is_absolute() {
                d
            } else {
                root.join(d)
            }
        }
        None => root.join("target"),
    }
}

/// Installs the wasm32-wasip2 standard library with rustup when it is missing, so a
/// fresh machine needs no separate setup step (without rustup, the build error says
/// what to install).
fn ensure_target_installed() {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l.trim() == TARGET)
        });
    if matches!(installed, Ok(false)) {
        eprintln!("xtask: installing the {TARGET} target (rustup target add {TARGET})");
        let _ = Command::new("rustup")
            .args(["target", "add", TARGET])
            .status();
    }
}

fn build(release: bool, out: Option<PathBuf>) -> Result<()> {
    let root = workspace_root();
    let target_dir = target_dir(&root);
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());

    ensure_target_installed();

    // The engine component (runtime-loaded weights).
    let out = out.unwrap_or_else(|| root.join("target").join("wasm-chord.wasm"));
    let core = build_guest(&root, &target_dir, &cargo, release, None)?;
    write_component(&finish(&core)?, &out)?;

    // The HTTP variant (wasi:http/proxy; weights read from its filesystem).
    let core = build_guest(&root, &target_dir, &cargo, release, Some("http"))?;
    write_component(&finish(&core)?, &out.with_file_name(HTTP_COMPONENT))?;

    // The packed-mode engine: validated here, rewritten and componentized by `chord pack`.
    let packed = build_guest(&root, &target_dir, &cargo, release, Some("packed"))?;
    validate(&packed, false).context("the packed engine module does not validate")?;
    let packed_out = out.with_file_name(PACKED_ENGINE);
    let tmp = packed_out.with_extension("wasm.tmp");
    std::fs::write(&tmp, &packed).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &packed_out)
        .with_context(|| format!("writing {}", packed_out.display()))?;
    eprintln!("xtask: packed engine written ({} KiB)", packed.len() / 1024);
    println!("{}", packed_out.display());

    // The Spin-style example application (examples/spin-llm-app): a `wasi:cli`
    // command that imports only WASI and `fermyon:spin/llm`; the engine is plugged
    // into it with `wac plug` (and by the `spin_llm` test).
    let app = build_app(&root, &target_dir, &cargo, release)?;
    let app_out = out.with_file_name(SPIN_LLM_APP);
    write_component(&app, &app_out)?;
    Ok(())
}

/// File name (under `target/`) of the example Spin LLM application.
const SPIN_LLM_APP: &str = "spin-llm-app.wasm";

/// `cargo build` of examples/spin-llm-app: the Rust toolchain links it into a
/// component itself (no post-link step: it has one memory and nothing to rewrite).
fn build_app(root: &Path, target_dir: &Path, cargo: &str, release: bool) -> Result<Vec<u8>> {
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root)
        .args(["build", "-p", "spin-llm-app", "--target", TARGET])
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS");
    if release {
        cmd.arg("--release");
    }
    eprintln!("xtask: building examples/spin-llm-app");
    let status = cmd.status().with_context(|| format!("running {cargo}"))?;
    if !status.success() {
        bail!("cargo build of examples/spin-llm-app failed ({status})");
    }
    let profile = if release { "release" } else { "debug" };
    let path = target_dir
        .join(TARGET)
        .join(profile)
        .join("spin-llm-app.wasm");
    std::fs::read(&path).with_context(|| format!("reading {}", path.display()))
}

/// File name (under `target/`) of the packed-mode engine module.
const PACKED_ENGINE: &str = "wasm-chord-packed-engine.wasm";

/// File name (next to the engine component) of the HTTP variant.
const HTTP_COMPONENT: &str = "wasm-chord-http.wasm";

fn write_component(component: &[u8], out: &Path) -> Result<()> {
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let tmp = out.with_extension("wasm.tmp");
    std::fs::write(&tmp, component).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, out).with_context(|| format!("writing {}", out.display()))?;
    eprintln!("xtask: component written ({} KiB)", component.len() / 1024);
    println!("{}", out.display());
    Ok(())
}

/// `cargo build` of the guest with `feature` (`packed`, `http`, or none): the linked
/// core module.
fn build_guest(
    root: &Path,
    target_dir: &Path,
    cargo: &str,
    release: bool,
    feature: Option<&str>,
) -> Result<Vec<u8>> {
    let t0 = std::time::Instant::now();
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root)
        .args(["build", "-p", GUEST_PACKAGE, "--target", TARGET])
        .env(
            "CARGO_ENCODED_RUSTFLAGS",
            [
                "-Ctarget-feature=+simd128,+relaxed-simd",
                "-Clink-arg=--skip-wit-component",
            ]
            .join("\x1f"),
        )
        .env_remove("RUSTFLAGS");
    if release {
        cmd.arg("--release");
    }
    if let Some(f) = feature {
        cmd.args(["--features", f]);
    }
    eprintln!(
        "xtask: building the guest ({}, features: {})",
        if release { "release" } else { "dev" },
        feature.unwrap_or("none")
    );
    let status = cmd.status().with_context(|| format!("running {cargo}"))?;
    if !status.success() {
        bail!(
            "cargo build of the guest failed ({status}); is the target installed? \
             `rustup target add {TARGET}`"
        );
    }
    let profile = if release { "release" } else { "debug" };
    let core_path = target_dir.join(TARGET).join(profile).join(GUEST_ARTIFACT);
    let core = std::fs::read(&core_path)
        .with_context(|| format!("reading the guest module {}", core_path.display()))?;
    eprintln!(
        "xtask: guest module {} ({} KiB, {:.1?})",
        core_path.display(),
        core.len() / 1024,
        t0.elapsed()
    );
    Ok(core)
}

/// Steps 2-4: rewrite, componentize, validate.
fn finish(core: &[u8]) -> Result<Vec<u8>> {
    let rewritten =
        rewrite::rewrite_intrinsics(core).context("rewriting the weight-memory intrinsics")?;
    validate(&rewritten, false).context("the rewritten core module does not validate")?;

    let component = wit_component::ComponentEncoder::default()
        .module(&rewritten)
        .context("wit-component: reading the core module")?
        .validate(true)
        .encode()
        .context("wit-component: componentizing")?;
    validate(&component, true).context("the component does not validate")?;
    Ok(component)
}

fn validate(bytes: &[u8], component: bool) -> Result<()> {
    let mut v = wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all());
    v.validate_all(bytes)?;
    let is_component = wasmparser::Parser::is_component(bytes);
    ensure!(
        is_component == component,
        "expected a {}",
        if component {
            "component"
        } else {
            "core module"
        }
    );
    Ok(())
}
