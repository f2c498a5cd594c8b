//! Quantized matrix products: weights stay in their block format and are read through
//! the [`WeightMemory`] API; activations are quantized once per token into the
//! format the weight type's dot product wants (as ggml does).

use crate::quant::{self, GgmlType};
use crate::weights::WeightMemory;

/// A 2-D weight tensor in a weight memory: `rows` rows of `cols` elements.
#[derive(Clone, Debug)]
pub struct WeightMatrix {
    pub name: String,
    pub offset: u64,
    pub ty: GgmlType,
    pub cols: usize,
    pub rows: usize,
}

impl WeightMatrix {
    pub fn row_bytes(&self) -> usize {
        self.cols / self.ty.block_size() * self.ty.type_size()
    }
}

/// Buffers reused across products so that decoding allocates nothing per token.
#[derive(Clone, Default)]
pub struct MatmulScratch {
    acts: Vec<u8>,
    weights: Vec<u8>,
}

/// `out[t * rows + r] = dot(W[r], x[t])` for `n_tokens` activation rows of `w.cols`
/// elements. Each fetched chunk of weight rows is reused for every token (prefill is a
/// matrix-matrix product, not a loop of matrix-vector ones).
pub fn matmul(
    mem: &dyn WeightMemory,
    w: &WeightMatrix,
    x: &[f32],
    n_tokens: usize,
    out: &mut [f32],
    scratch: &mut MatmulScratch,
) -> Result<(), quant::QuantError> {
    debug_assert_eq!(x.len(), n_tokens * w.cols);
    debug_assert_eq!(out.len(), n_tokens * w.rows);
    let act_ty = quant::vec_dot_type(w.ty);
    let act_row = quant::row_bytes(act_ty, w.cols)?;
    scratch.acts.resize(act_row * n_tokens, 0);
    for (xt, at) in x
        .chunks_exact(w.cols)
        .zip(scratch.acts.chunks_exact_mut(act_row))
    {
        quant::quantize_activations(act_ty, xt, at)?;
    }

    let row_bytes = w.row_bytes();
    let rows_per_chunk = (mem.chunk_bytes() / row_bytes).max(1);
    let mut r0 = 0;
    while r0 < w.rows {
        let n = rows_per_chunk.min(w.rows - r0);
        let chunk = mem.bytes(
            w.offset + (r0 * row_bytes) as u64,
            n * row_bytes,
            &mut scratch.weights,
        );
        if w.ty == GgmlType::F16 {
            // llama.cpp sums F16 rows in a different order for batches (tinyBLAS)
            // than for one token (ggml_vec_dot_f16): follow it for parity.
            let dot = if n_tokens == 1 {
                super::ggml_order::vec_dot_f16
            } else {
                super::ggml_order::tinyblas_dot_f16
            };
            for (t, at) in scratch.acts.chunks_exact(act_row).enumerate() {
                let o = t * w.rows + r0;
                for (o, wrow) in out[o..o + n].iter_mut().zip(chunk.chunks_exact(row_bytes)) {
                    *o = dot(wrow, at, w.cols);
                }
            }
        } else {
            // All tokens against the chunk, which stays in cache: the kernels share
            // each activation block between rows and (prefill) each weight block
            // between tokens.
            quant::simd128::vec_dot_tokens(
                w.ty,
                chunk,
                n,
                &scratch.acts,
                w.cols,
                &mut out[r0..],
                w.rows,
            )?;
        }
        r0 += n;
    }
    Ok(())
}

/// Dequantizes row `row` of `w` into `out` (token embedding lookup, ggml's `get_rows`).
pub fn embedding_row(
    mem: &dyn WeightMemory,
    w: &WeightMatrix,
    row: usize,
    out: &mut [f32],
    scratch: &mut MatmulScratch,
) -> Result<(), quant::QuantError> {
    let rb = w.row_bytes();
    let bytes = mem.bytes(w.offset + (row * rb) as u64, rb, &mut scratch.weights);
    quant::dequantize_row(w.ty, bytes, out)
}
