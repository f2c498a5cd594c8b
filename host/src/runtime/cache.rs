//! The compiled-component cache: compiling the component takes seconds, so the
//! compiled artefact is kept next to it as `NAME.KEY.cwasm`, where KEY hashes the
//! component bytes and the engine's compatibility settings (Wasmtime version,
//! target, configuration). A stale or corrupt cache entry is recompiled.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};
use wasmtime::component::Component;

pub fn cache_path(engine: &wasmtime::Engine, component_path: &Path, bytes: &[u8]) -> PathBuf {
    let mut sha = Sha256::new();
    sha.update(bytes);
    let mut h = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    sha.update(h.finish().to_le_bytes());
    let digest = sha.finalize();
    let key: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    let stem = component_path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("component");
    component_path.with_file_name(format!("{stem}.{key}.cwasm"))
}

/// The compiled component, whether it came from the cache, and the cache path.
pub fn load_component(
    engine: &wasmtime::Engine,
    path: &Path,
) -> Result<(Component, bool, Option<PathBuf>)> {
    // A `.cwasm` (`chord pack --precompile`) is loaded as is: mapping it lets the
    // weights' memory images come straight from the page cache.
    if wasmtime::Engine::detect_precompiled_file(path)
        .ok()
        .flatten()
        .is_some()
    {
        // SAFETY: the file is a Wasmtime artefact (checked above); Wasmtime checks
        // its header and refuses one compiled for another configuration.
        let c = unsafe { Component::deserialize_file(engine, path) }
            .map_err(anyhow::Error::from)
            .with_context(|| {
                format!(
                    "loading the precompiled component {} (precompiled by another chord build?)",
                    path.display()
                )
            })?;
        return Ok((c, true, Some(path.to_path_buf())));
    }
    let len = std::fs::metadata(path)
        .with_context(|| {
            format!(
                "reading the component {} (build it with `cargo xtask build --release`)",
                path.display()
            )
        })?
        .len();
    // Wasmtime 48 keeps the offsets of a compiled component's data segments as u32
    // (wasmtime-environ compile/module_artifacts.rs) and panics past 4 GiB, which
    // would take the whole host down: refuse first. Only packed components (weights
    // as data segments) get that large.
    if len >= 1 << 32 {
        bail!(
            "{} holds {:.2} GiB: Wasmtime 48 cannot compile a component with 4 GiB or more \
             of data segments; run the GGUF through the runtime-loaded component instead",
            path.display(),
            len as f64 / (1u64 << 30) as f64
        );
    }
    let bytes =
        std::fs::read(path).with_context(|| format!("reading the component {}", path.display()))?;
    let cached = cache_path(engine, path, &bytes);
    if cached.exists() {
        // SAFETY: the file was written by `Component::serialize` of an engine with
        // the same compatibility hash (it is in the file name); Wasmtime checks the
        // header again and we fall back to compiling on any error.
        match unsafe { Component::deserialize_file(engine, &cached) } {
            Ok(c) => return Ok((c, true, Some(cached))),
            Err(e) => eprintln!(
                "chord: ignoring the compiled cache {}: {e:?}",
                cached.display()
            ),
        }
    }
    let component = Component::new(engine, &bytes)
        .map_err(anyhow::Error::from)
        .with_context(|| format!("compiling {}", path.display()))?;
    let stored = match store(&component, &cached) {
        Ok(()) => {
            remove_stale(path, &cached);
            Some(cached)
        }
        // A read-only directory only costs the next run a recompilation.
        Err(_) => None,
    };
    Ok((component, false, stored))
}

fn store(component: &Component, cached: &Path) -> Result<()> {
    let data = component.serialize().map_err(anyhow::Error::from)?;
    let tmp = cached.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, data)?;
    std::fs::rename(&tmp, cached)?;
    Ok(())
}

/// Removes the cache files of earlier builds of the same component.
fn remove_stale(component_path: &Path, keep: &Path) {
    let (Some(dir), Some(stem)) = (
        component_path.parent(),
        component_path.file_stem().and_then(|s| s.to_str()),
    ) else {
        return;
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let p = entry.path();
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if p != keep && name.starts_with(&format!("{stem}.")) && name.ends_with(".cwasm") {
            let _ = std::fs::remove_file(&p);
        }
    }
}
