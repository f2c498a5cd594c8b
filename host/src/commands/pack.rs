//! `chord pack`: a GGUF model and the packed engine into one component (see the
//! `wasm-chord-pack` crate), and `chord info` on such a component.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use chord_pack::Layout;

#[derive(clap::Args)]
pub struct Args {
    /// The GGUF model to build in.
    model: PathBuf,
    /// The packed component to write (`--precompile` also writes OUT with extension `.cwasm`).
    #[arg(short, long)]
    out: PathBuf,
    /// Largest shard, in bytes (each shard is one core module, at most ~1 GiB).
    #[arg(long, default_value_t = chord_pack::DEFAULT_SHARD_BYTES)]
    shard_size: u64,
    /// Also compile the component for this machine's Wasmtime (`.cwasm`), which
    /// `chord` loads without compiling, mapping the weights from the file.
    #[arg(long)]
    precompile: bool,
    /// The packed engine module (default: $WASM_CHORD_PACKED_ENGINE, else
    /// target/wasm-chord-packed-engine.wasm, built by `cargo xtask build --release`).
    #[arg(long)]
    engine: Option<PathBuf>,
}

fn engine_path(a: &Args) -> PathBuf {
    a.engine
        .clone()
        .or_else(|| std::env::var_os("WASM_CHORD_PACKED_ENGINE").map(PathBuf::from))
        .unwrap_or_else(|| chord::built_component("wasm-chord-packed-engine.wasm"))
}

fn map(path: &Path) -> Result<memmap2::Mmap> {
    let f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    // SAFETY: read-only mapping of a file that must not change while packing.
    unsafe { memmap2::Mmap::map(&f) }.with_context(|| format!("mapping {}", path.display()))
}

pub fn run(a: Args) -> Result<()> {
    let engine_path = engine_path(&a);
    if !engine_path.exists() {
        bail!(
            "packed engine {} not found: build it with `cargo xtask build --release` (or pass --engine)",
            engine_path.display()
        );
    }
    let engine = std::fs::read(&engine_path)
        .with_context(|| format!("reading {}", engine_path.display()))?;
    let model = map(&a.model)?;

    let t0 = Instant::now();
    let tmp = a.out.with_extension(format!("tmp{}", std::process::id()));
    let layout = {
        let file = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        let mut w = BufWriter::with_capacity(1 << 20, file);
        let layout = chord_pack::pack(&model, &engine, a.shard_size, &mut w)
            .with_context(|| format!("packing {}", a.model.display()));
        if layout.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        layout?
    };
    let written = map(&tmp)?;
    if let Err(e) = chord_pack::validate_component(&written) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).context("the packed component does not validate");
    }
    std::fs::rename(&tmp, &a.out).with_context(|| format!("writing {}", a.out.display()))?;
    eprintln!(
        "chord: packed {} into {} ({} MiB, {} shards) in {:.1?}",
        a.model.display(),
        a.out.display(),
        written.len() >> 20,
        layout.shards.len(),
        t0.elapsed()
    );

    // Wasmtime 48 keeps each module's data offset in the compiled artefact as a
    // u32 (wasmtime-environ module_artifacts.rs): compiling panics past 4 GiB of data.
    let data: u64 = layout.shards.iter().map(|s| s.len).sum();
    if data >= 1 << 32 {
        eprintln!(
            "chord: warning: {:.2} GiB of weights; Wasmtime 48 cannot compile a component \
             holding 4 GiB or more of data segments",
            data as f64 / (1u64 << 30) as f64
        );
        if a.precompile {
            bail!("not precompiling: Wasmtime 48 cannot compile more than 4 GiB of data");
        }
    }

    if a.precompile {
        let t0 = Instant::now();
        let engine = wasmtime::Engine::new(&chord::runtime::wasmtime_config())
            .map_err(anyhow::Error::from)?;
        let compiled = engine
            .precompile_component(&written)
            .map_err(anyhow::Error::from)
            .context("precompiling the packed component")?;
        let cwasm = a.out.with_extension("cwasm");
        std::fs::write(&cwasm, compiled).with_context(|| format!("writing {}", cwasm.display()))?;
        eprintln!(
            "chord: precompiled {} in {:.1?}",
            cwasm.display(),
            t0.elapsed()
        );
    }
    Ok(())
}

/// `chord info` on a packed component: the shards and which tensors each holds.
pub fn print_layout(path: &Path, tensors: bool) -> Result<()> {
    let bytes = map(path)?;
    let layout = match chord_pack::read_layout(&bytes) {
        Ok(l) => l,
        Err(e) if !chord_pack::is_wasm(&bytes) => {
            bail!(
                "{}: precompiled components carry no layout; run info on the .wasm ({e})",
                path.display()
            )
        }
        Err(e) => return Err(e.into()),
    };
    print!("{}", describe(path, &layout, tensors));
    Ok(())
}

fn describe(path: &Path, l: &Layout, tensors: bool) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(s, "file:         {} (packed component)", path.display());
    let _ = writeln!(s, "architecture: {}", l.architecture);
    let _ = writeln!(s, "name:         {}", l.model);
    let data: u64 = l.tensors.iter().map(|t| t.size).sum();
    let _ = writeln!(
        s,
        "tensor data:  {data} bytes ({:.1} MiB) in {} tensors, {} shards; header {} bytes in shard 0",
        data as f64 / 1048576.0,
        l.tensors.len(),
        l.shards.len(),
        l.header_len
    );
    for (k, shard) in l.shards.iter().enumerate() {
        let mut ts = l.shard_tensors(k as u32);
        let first = ts.next();
        let last = ts.last().or(first);
        let count = l.shard_tensors(k as u32).count();
        let _ = writeln!(
            s,
            "shard {k}: {}, {} bytes ({:.1} MiB, {} pages) at file offset {}, {count} tensors{}",
            match l.resident_base {
                Some(base) => format!("memory 0 at {base:#x} (resident)"),
                None => format!("memory wasm-chord:shard{k}"),
            },
            shard.len,
            shard.len as f64 / 1048576.0,
            shard.pages,
            shard.file_offset,
            match (first, last) {
                (Some(f), Some(l)) => format!(": {} .. {}", f.name, l.name),
                _ => String::new(),
            }
        );
        if tensors {
            for t in l.shard_tensors(k as u32) {
                let _ = writeln!(
                    s,
                    "  {:<40} {:>10} bytes @ shard {} + {:#x} (virtual {:#x})",
                    t.name,
                    t.size,
                    t.shard,
                    t.offset,
                    (u64::from(t.shard) << 32) | t.offset
                );
            }
        }
    }
    s
}
