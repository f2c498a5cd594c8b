//! Whether a model fits, checked before the guest allocates its copy: a model larger
//! than the host's memory limit, or than the RAM the machine has available, fails
//! with an error that says so instead of being OOM-killed halfway through the copy.

use std::path::Path;

use anyhow::{bail, Result};

/// Growths of at least this size are checked against the available RAM (the weights
/// memory grows once by the model size; memory 0 grows in small steps, which are not
/// worth reading `/proc/meminfo` for).
pub const CHECKED_GROWTH: u64 = 64 << 20;

/// RAM the kernel can hand out without swapping (Linux `MemAvailable`: free memory
/// plus reclaimable caches, including the page cache of mapped model files). `None`
/// where unknown.
pub fn available_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Why `bytes` more bytes of guest memory cannot be granted, if they cannot.
pub fn refusal(bytes: u64, limit: u64) -> Option<String> {
    if bytes > limit {
        return Some(format!(
            "{} exceed the host's memory limit of {}",
            gib(bytes),
            gib(limit)
        ));
    }
    match available_memory() {
        Some(free) if bytes >= CHECKED_GROWTH && bytes > free => Some(format!(
            "{} exceed the {} of RAM available on this machine",
            gib(bytes),
            gib(free)
        )),
        _ => None,
    }
}

/// Fails if the model at `path` (`bytes` long, all of which the guest copies into
/// memory 0 or its weights memory) cannot fit.
pub fn check_model(path: &Path, bytes: u64, limit: u64) -> Result<()> {
    if let Some(why) = refusal(bytes, limit) {
        bail!(
            "model {} does not fit: the guest's copy of it would need {why}",
            path.display()
        );
    }
    Ok(())
}

fn gib(bytes: u64) -> String {
    format!("{:.2} GiB", bytes as f64 / (1u64 << 30) as f64)
}
