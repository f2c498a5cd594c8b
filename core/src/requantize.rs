//! Re-encode a GGUF model's matrices in another block format (`chord quantize`).
//!
//! Every tensor is first dequantized to f32 exactly, then each 2-D (or higher) tensor is
//! quantized into the target format while 1-D tensors (norms, biases) stay f32, as
//! `llama-quantize --allow-requantize` does. Metadata is copied with
//! `general.file_type` updated.

use std::io::Write;

use crate::gguf::{ByteSource, Gguf, GgufError, GgufWriter, Value};
use crate::quant::{self, GgmlType, QuantError};

#[derive(Debug, thiserror::Error)]
pub enum RequantizeError {
    #[error(transparent)]
    Gguf(#[from] GgufError),
    #[error(transparent)]
    Quant(#[from] QuantError),
    #[error("reading tensor '{name}': {source}")]
    Read {
        name: String,
        source: std::io::Error,
    },
    #[error("quantizing to {0} is not supported (choose f32, f16, bf16, q4_0, q4_1, q5_0, q5_1, q8_0, q2_K, q3_K, q4_K, q5_K, q6_K)")]
    UnsupportedTarget(GgmlType),
}

/// What happened to each tensor.
#[derive(Debug, Default)]
pub struct RequantizeReport {
    pub quantized: usize,
    pub kept_f32: usize,
    /// Tensors whose rows are not a multiple of the target block size, written in
    /// the fallback type instead (name, type used).
    pub fallbacks: Vec<(String, GgmlType)>,
}

/// `general.file_type` (llama.cpp's `llama_ftype`) for an all-`ty` model.
fn file_type(ty: GgmlType) -> Option<u32> {
    Some(match ty {
        GgmlType::F32 => 0,
        GgmlType::F16 => 1,
        GgmlType::Q4_0 => 2,
        GgmlType::Q4_1 => 3,
        GgmlType::Q8_0 => 7,
        GgmlType::Q5_0 => 8,
        GgmlType::Q5_1 => 9,
        GgmlType::Q2K => 10,
        GgmlType::Q3K => 11,
        GgmlType::Q4K => 14,
        GgmlType::Q5K => 16,
        GgmlType::Q6K => 18,
        GgmlType::BF16 => 32,
        GgmlType::Q8_1 | GgmlType::Q8K => return None,
    })
}

/// Writes `g` (whose bytes are in `src`) to `out` with its matrices in `target`.
/// `progress(i, n, name)` is called before each tensor.
pub fn requantize(
    src: &dyn ByteSource,
    g: &Gguf,
    target: GgmlType,
    out: &mut impl Write,
    mut progress: impl FnMut(usize, usize, &str),
) -> Result<RequantizeReport, RequantizeError> {
    let ftype = file_type(target).ok_or(RequantizeError::UnsupportedTarget(target))?;
    let mut md = g.metadata.clone();
    md.insert("general.file_type", Value::U32(ftype));
    let mut report = RequantizeReport::default();
    let mut plan = Vec::with_capacity(g.tensors.len());
    let mut w = GgufWriter::new(md);
    for t in &g.tensors {
        let ty = if t.dims.len() < 2 {
            report.kept_f32 += 1;
            GgmlType::F32
        } else if t.dims[0] % target.block_size() as u64 == 0 {
            report.quantized += 1;
            target
        } else {
            // K-quants need rows of 256: fall back to a 32-block format, like llama.cpp.
            let fb = if t.dims[0] % 32 == 0 {
                GgmlType::Q8_0
            } else {
                GgmlType::F16
            };
            report.fallbacks.push((t.name.clone(), fb));
            fb
        };
        w.add_tensor(&t.name, &t.dims, ty)?;
        plan.push(ty);
    }
    let n = g.tensors.len();
    let mut failure = None;
    w.write(out, |i, o| {
        let t = &g.tensors[i];
        progress(i, n, &t.name);
        let row = t.dims[0] as usize;
        let rows = (t.n_elements() / t.dims[0]) as usize;
        let src_row = t.size_bytes as usize / rows;
        let mut raw = vec![0u8; src_row];
        let mut f = vec![0f32; row];
        let mut q = vec![0u8; plan[i].row_size(row).unwrap_or(0)];
        for r in 0..rows {
            src.read_at(t.offset + (r * src_row) as u64, &mut raw)?;
            let step = quant::dequantize_row(t.ty, &raw, &mut f)
                .and_then(|_| quant::quantize_row(plan[i], &f, &mut q));
            if let Err(e) = step {
                failure = Some(e);
                return Err(std::io::Error::other("quantization failed"));
            }
            o.write_all(&q)?;
        }
        Ok(())
    })
    .map_err(|e| match failure.take() {
        Some(q) => RequantizeError::Quant(q),
        None => RequantizeError::Gguf(e),
    })?;
    Ok(report)
}
