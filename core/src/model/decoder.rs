//! The llama-family decoder (llama, qwen2, gemma3), read top to bottom:
//! embed → per layer [RMSNorm → Q/K/V (+bias) → RoPE → causal GQA attention → output
//! projection → residual → RMSNorm → SwiGLU feed-forward → residual] → RMSNorm → logits.
//!
//! Gemma 3 on the same path: embeddings scaled by `sqrt(n_embd)`, queries and keys
//! RMS-normed per head before RoPE and the queries scaled before `K·q`, sliding-window
//! attention (and its own RoPE base) in five layers of six, the attention and the
//! feed-forward outputs RMS-normed before their residuals, and a GELU-gated
//! feed-forward.

use super::{Architecture, DecoderConfig, KvCache, ModelError};
use crate::gguf::{Gguf, TensorInfo};
use crate::ops::{self, AttnKernel, AttnScratch, AttnShape, MatmulScratch, Rope, WeightMatrix};
use crate::quant::{self, GgmlType};
use crate::weights::WeightMemory;

/// Prompt tokens processed per forward chunk: bounds activation memory for long prompts.
/// It divides [`LLAMA_UBATCH`], so every chunk lies inside one of llama.cpp's micro-batches.
const PREFILL_CHUNK: usize = 256;

/// llama.cpp's default micro-batch (`n_ubatch`). Its CPU backend picks some kernels by
/// the number of tokens in the micro-batch (see [`AttnKernel`]); we pick the same ones,
/// so that our float summation order, hence our logits, follow llama.cpp's.
const LLAMA_UBATCH: usize = 512;

/// The attention kernel llama.cpp would use for the chunk of `tokens` starting at token
/// `start`: it depends on the size of the micro-batch that holds the chunk.
fn chunk_kernel(tokens: usize, start: usize) -> AttnKernel {
    let ubatch_start = start - start % LLAMA_UBATCH;
    AttnKernel::for_batch((tokens - ubatch_start).min(LLAMA_UBATCH))
}

struct Layer {
    attn_norm: Vec<f32>,
    wq: WeightMatrix,
    wk: WeightMatrix,
    wv: WeightMatrix,
    bq: Option<Vec<f32>>,
    bk: Option<Vec<f32>>,
    bv: Option<Vec<f32>>,
    wo: WeightMatrix,
    ffn_norm: Vec<f32>,
    gate: WeightMatrix,
    up: WeightMatrix,
    down: WeightMatrix,
    /// Gemma 3's extra norms.
    gemma: Option<GemmaNorms>,
}

/// Gemma 3's per-head query and key norms (`head_dim`) and the norms of the attention
/// and feed-forward outputs (`n_embd`).
struct GemmaNorms {
    q: Vec<f32>,
    k: Vec<f32>,
    post_attn: Vec<f32>,
    post_ffn: Vec<f32>,
}

pub struct DecoderModel {
    pub cfg: DecoderConfig,
    weights: Box<dyn WeightMemory>,
    token_embd: WeightMatrix,
    output_norm: Vec<f32>,
    /// `output.weight`, or the token embeddings when the model ties them.
    output: WeightMatrix,
    layers: Vec<Layer>,
    rope: Rope,
    /// The sliding-window layers' RoPE (its own base).
    rope_swa: Option<Rope>,
}

/// Which logits a forward pass returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Logits {
    /// Only after the last token (generation).
    Last,
    /// After every token (evaluation, perplexity).
    All,
}

/// Per-sequence state: the KV cache and reusable buffers.
#[derive(Clone)]
pub struct Session {
    pub kv: KvCache,
    scratch: MatmulScratch,
    attn: AttnScratch,
}

impl Session {
    /// Tokens processed so far.
    pub fn pos(&self) -> usize {
        self.kv.len()
    }

    pub fn n_ctx(&self) -> usize {
        self.kv.capacity()
    }
}

/// Reads model tensors out of the GGUF table, checking shape, type and range.
struct TensorLoader<'a> {
    g: &'a Gguf,
    mem: &'a dyn WeightMemory,
}

impl TensorLoader<'_> {
    fn info(&self, name: &str, dims: &[u64]) -> Result<&TensorInfo, ModelError> {
        let t = self
            .g
            .tensor(name)
            .ok_or_else(|| ModelError::MissingTensor(name.to_string()))?;
        if t.dims != dims {
            return Err(ModelError::BadShape {
                name: name.into(),
                expected: dims.to_vec(),
                found: t.dims.clone(),
            });
        }
        let end = t.offset + t.size_bytes;
        if end > self.mem.len() {
            return Err(ModelError::WeightsOutOfRange {
                name: name.into(),
                end,
                len: self.mem.len(),
            });
        }
        Ok(t)
    }

    fn matrix(&self, name: &str, cols: usize, rows: usize) -> Result<WeightMatrix, ModelError> {
        let t = self.info(name, &[cols as u64, rows as u64])?;
        if matches!(t.ty, GgmlType::Q8_1 | GgmlType::Q8K) {
            return Err(ModelError::BadType {
                name: name.into(),
                ty: t.ty,
            });
        }
        Ok(WeightMatrix {
            name: name.into(),
            offset: t.offset,
            ty: t.ty,
            cols,
            rows,
        })
    }

    /// A 1-D tensor (norm weight or bias), dequantized to f32 once at load.
    fn vector(&self, name: &str, n: usize) -> Result<Vec<f32>, ModelError> {
        let t = self.info(name, &[n as u64])?;
        let mut scratch = Vec::new();
        let bytes = self
            .mem
            .bytes(t.offset, t.size_bytes as usize, &mut scratch);
        let mut out = vec![0.0; n];
        quant::dequantize_row(t.ty, bytes, &mut out)?;
        Ok(out)
    }

    fn optional_vector(&self, name: &str, n: usize) -> Result<Option<Vec<f32>>, ModelError> {
        match self.g.tensor(name) {
            None => Ok(None),
            Some(_) => self.vector(name, n).map(Some),
        }
    }
}

/// RMS-norms each `width`-float row of `x` in place with `weight`.
fn norm_rows(x: &mut [f32], width: usize, weight: &[f32], eps: f32) {
    for r in x.chunks_exact_mut(width) {
        ops::rms_norm_in_place(r, weight, eps);
    }
}

impl DecoderModel {
    /// Builds the model from a parsed header and the memory that holds the file's bytes
    /// (tensor offsets in `weights` are the file offsets).
    pub fn load(g: &Gguf, weights: Box<dyn WeightMemory>) -> Result<Self, ModelError> {
        let cfg = DecoderConfig::from_gguf(g)?;
        let ld = TensorLoader {
            g,
            mem: weights.as_ref(),
        };
        if let Some(cap) = g
            .metadata
            .get_f32_opt(&format!("{}.final_logit_softcapping", cfg.arch.name()))?
            .filter(|&c| c != 0.0)
        {
            return Err(ModelError::BadConfig(format!(
                "final logit soft-capping ({cap}) is not supported"
            )));
        }
        let (d, qd, kv, ff, hd) = (
            cfg.n_embd,
            cfg.q_dim(),
            cfg.kv_dim(),
            cfg.n_ff,
            cfg.head_dim,
        );
        let token_embd = ld.matrix("token_embd.weight", d, cfg.vocab_size)?;
        let output = match g.tensor("output.weight") {
            Some(_) => ld.matrix("output.weight", d, cfg.vocab_size)?,
            None => token_embd.clone(),
        };
        let mut layers = Vec::with_capacity(cfg.n_layer);
        for i in 0..cfg.n_layer {
            let n = |s: &str| format!("blk.{i}.{s}");
            layers.push(Layer {
                attn_norm: ld.vector(&n("attn_norm.weight"), d)?,
                wq: ld.matrix(&n("attn_q.weight"), d, qd)?,
                wk: ld.matrix(&n("attn_k.weight"), d, kv)?,
                wv: ld.matrix(&n("attn_v.weight"), d, kv)?,
                bq: ld.optional_vector(&n("attn_q.bias"), qd)?,
                bk: ld.optional_vector(&n("attn_k.bias"), kv)?,
                bv: ld.optional_vector(&n("attn_v.bias"), kv)?,
                wo: ld.matrix(&n("attn_output.weight"), qd, d)?,
                ffn_norm: ld.vector(&n("ffn_norm.weight"), d)?,
                gate: ld.matrix(&n("ffn_gate.weight"), d, ff)?,
                up: ld.matrix(&n("ffn_up.weight"), d, ff)?,
                down: ld.matrix(&n("ffn_down.weight"), ff, d)?,
                gemma: match cfg.arch {
                    Architecture::Gemma3 => Some(GemmaNorms {
                        q: ld.vector(&n("attn_q_norm.weight"), hd)?,
                        k: ld.vector(&n("attn_k_norm.weight"), hd)?,
                        post_attn: ld.vector(&n("post_attention_norm.weight"), d)?,
                        post_ffn: ld.vector(&n("post_ffw_norm.weight"), d)?,
                    }),
                    _ => None,
                },
            });
        }
        let output_norm = ld.vector("output_norm.weight", d)?;
        let rope = Rope::new(
            cfg.arch.rope_style(),
            cfg.n_rot,
            cfg.rope_freq_base,
            cfg.rope_freq_scale,
        );
        let rope_swa = cfg.sliding_window.map(|w| {
            Rope::new(
                cfg.arch.rope_style(),
                cfg.n_rot,
                w.rope_freq_base,
                cfg.rope_freq_scale,
            )
        });
        Ok(Self {
            cfg,
            weights,
            token_embd,
            output_norm,
            output,
            layers,
            rope,
            rope_swa,
        })
    }

    /// A new sequence with room for `n_ctx` tokens (capped at the trained context).
    pub fn new_session(&self, n_ctx: usize) -> Session {
        let n_ctx = n_ctx.clamp(1, self.cfg.n_ctx_train);
        Session {
            kv: KvCache::new(self.cfg.n_layer, self.cfg.kv_dim(), n_ctx),
            scratch: MatmulScratch::default(),
            attn: AttnScratch::default(),
        }
    }

    /// Runs `tokens` through the model after what `s` already holds, in chunks of
    /// [`PREFILL_CHUNK`]. Returns `vocab_size` logits per returned position: one
    /// (after the last token) or one per token.
    pub fn forward(
        &self,
        s: &mut Session,
        tokens: &[u32],
        which: Logits,
    ) -> Result<Vec<f32>, ModelError> {
        if tokens.is_empty() {
            return Err(ModelError::EmptyInput);
        }
        let needed = s.pos() + tokens.len();
        if needed > s.n_ctx() {
            return Err(ModelError::ContextOverflow {
                needed,
                n_ctx: s.n_ctx(),
            });
        }
        if let Some(&token) = tokens.iter().find(|&&t| t as usize >= self.cfg.vocab_size) {
            return Err(ModelError::InvalidToken {
                token,
                vocab: self.cfg.vocab_size,
            });
        }
        let mut logits = Vec::new();
        let n_chunks = tokens.len().div_ceil(PREFILL_CHUNK);
        for (i, chunk) in tokens.chunks(PREFILL_CHUNK).enumerate() {
            let kernel = chunk_kernel(tokens.len(), i * PREFILL_CHUNK);
            let hidden = self.forward_chunk(s, chunk, kernel)?;
            let rows = match which {
                Logits::All => 0..chunk.len(),
                Logits::Last if i + 1 == n_chunks => chunk.len() - 1..chunk.len(),
                Logits::Last => continue,
            };
            logits.extend(self.logits(s, &hidden, rows)?);
        }
        Ok(logits)
    }

    /// The final hidden states (before the output norm) of `tokens`, appended to `s`;
    /// `kernel` is the attention order of llama.cpp's micro-batch holding them.
    fn forward_chunk(
        &self,
        s: &mut Session,
        tokens: &[u32],
        kernel: AttnKernel,
    ) -> Result<Vec<f32>, ModelError> {
        let cfg = &self.cfg;
        let (n, d, qd, kv, ff, hd) = (
            tokens.len(),
            cfg.n_embd,
            cfg.q_dim(),
            cfg.kv_dim(),
            cfg.n_ff,
            cfg.head_dim,
        );
        let pos0 = s.pos();
        let mem = self.weights.as_ref();
        let gemma = cfg.arch == Architecture::Gemma3;

        let angles = self.rope.angle_table(pos0, n);
        let angles_swa = self.rope_swa.as_ref().map(|r| r.angle_table(pos0, n));
        let mut x = vec![0.0f32; n * d];
        for (t, row) in tokens.iter().zip(x.chunks_exact_mut(d)) {
            ops::embedding_row(mem, &self.token_embd, *t as usize, row, &mut s.scratch)?;
        }
        if gemma {
            let scale = (d as f32).sqrt();
            x.iter_mut().for_each(|v| *v *= scale);
        }

        let mut xn = vec![0.0f32; n * d];
        let (mut q, mut k, mut v) = (
            vec![0.0f32; n * qd],
            vec![0.0f32; n * kv],
            vec![0.0f32; n * kv],
        );
        let mut attn = vec![0.0f32; n * qd];
        let mut proj = vec![0.0f32; n * d];
        let (mut gate, mut up) = (vec![0.0f32; n * ff], vec![0.0f32; n * ff]);

        for (li, l) in self.layers.iter().enumerate() {
            let window = cfg.sliding_window.filter(|w| w.applies_to(li));
            let (rope, angles) = match (window, &self.rope_swa, &angles_swa) {
                (Some(_), Some(r), Some(a)) => (r, a),
                _ => (&self.rope, &angles),
            };

            // Attention block.
            for (xr, or) in x.chunks_exact(d).zip(xn.chunks_exact_mut(d)) {
                ops::rms_norm(xr, &l.attn_norm, cfg.rms_eps, or);
            }
            ops::matmul(mem, &l.wq, &xn, n, &mut q, &mut s.scratch)?;
            ops::matmul(mem, &l.wk, &xn, n, &mut k, &mut s.scratch)?;
            ops::matmul(mem, &l.wv, &xn, n, &mut v, &mut s.scratch)?;
            for (buf, bias, width) in [
                (&mut q, &l.bq, qd),
                (&mut k, &l.bk, kv),
                (&mut v, &l.bv, kv),
            ] {
                if let Some(b) = bias {
                    buf.chunks_exact_mut(width)
                        .for_each(|r| ops::add_assign(r, b));
                }
            }
            if let Some(g) = &l.gemma {
                norm_rows(&mut q, hd, &g.q, cfg.rms_eps);
                norm_rows(&mut k, hd, &g.k, cfg.rms_eps);
            }
            for t in 0..n {
                rope.apply(&mut q[t * qd..(t + 1) * qd], hd, angles, t);
                rope.apply(&mut k[t * kv..(t + 1) * kv], hd, angles, t);
            }
            // Gemma scales the queries themselves, and the scores by 1.
            let kq_scale = if gemma {
                q.iter_mut().for_each(|v| *v *= cfg.attn_scale);
                1.0
            } else {
                cfg.attn_scale
            };
            s.kv.push(li, &k, &v);
            for t in 0..n {
                let mut shape =
                    AttnShape::causal(pos0 + t, cfg.n_head, cfg.n_head_kv, hd).scale(kq_scale);
                if let Some(w) = window {
                    shape = shape.window(w.window);
                }
                ops::attend(
                    &q[t * qd..(t + 1) * qd],
                    &s.kv.keys[li],
                    &s.kv.values[li],
                    shape,
                    &mut attn[t * qd..(t + 1) * qd],
                    &mut s.attn,
                    kernel,
                );
            }
            ops::matmul(mem, &l.wo, &attn, n, &mut proj, &mut s.scratch)?;
            if let Some(g) = &l.gemma {
                norm_rows(&mut proj, d, &g.post_attn, cfg.rms_eps);
            }
            ops::add_assign(&mut x, &proj);

            // Feed-forward block (SwiGLU; GELU-gated for Gemma).
            for (xr, or) in x.chunks_exact(d).zip(xn.chunks_exact_mut(d)) {
                ops::rms_norm(xr, &l.ffn_norm, cfg.rms_eps, or);
            }
            ops::matmul(mem, &l.gate, &xn, n, &mut gate, &mut s.scratch)?;
            ops::matmul(mem, &l.up, &xn, n, &mut up, &mut s.scratch)?;
            if gemma {
                ops::ggml_order::geglu(&mut gate, &up);
            } else {
                ops::ggml_order::swiglu(&mut gate, &up);
            }
            ops::matmul(mem, &l.down, &gate, n, &mut proj, &mut s.scratch)?;
            if let Some(g) = &l.gemma {
                norm_rows(&mut proj, d, &g.post_ffn, cfg.rms_eps);
            }
            ops::add_assign(&mut x, &proj);
        }
        s.kv.advance(n);
        Ok(x)
    }

    /// Output norm and vocabulary projection for the hidden rows `rows`.
    fn logits(
        &self,
        s: &mut Session,
        hidden: &[f32],
        rows: std::ops::Range<usize>,
    ) -> Result<Vec<f32>, ModelError> {
        let d = self.cfg.n_embd;
        let n = rows.len();
        let mut xn = vec![0.0f32; n * d];
        for (r, out) in rows.zip(xn.chunks_exact_mut(d)) {
            ops::rms_norm(
                &hidden[r * d..(r + 1) * d],
                &self.output_norm,
                self.cfg.rms_eps,
                out,
            );
        }
        let mut logits = vec![0.0f32; n * self.cfg.vocab_size];
        ops::matmul(
            self.weights.as_ref(),
            &self.output,
            &xn,
            n,
            &mut logits,
            &mut s.scratch,
        )?;
        Ok(logits)
    }

    /// The normed final hidden states of `tokens` (for decoder embeddings).
    pub fn hidden_states(&self, s: &mut Session, tokens: &[u32]) -> Result<Vec<f32>, ModelError> {
        let d = self.cfg.n_embd;
        let mut out = Vec::with_capacity(tokens.len() * d);
        for (i, chunk) in tokens.chunks(PREFILL_CHUNK).enumerate() {
            let kernel = chunk_kernel(tokens.len(), i * PREFILL_CHUNK);
            let hidden = self.forward_chunk(s, chunk, kernel)?;
            for row in hidden.chunks_exact(d) {
                let mut normed = vec![0.0f32; d];
                ops::rms_norm(row, &self.output_norm, self.cfg.rms_eps, &mut normed);
                out.extend_from_slice(&normed);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_take_the_kernel_of_llama_cpp_micro_batches() {
        assert_eq!(chunk_kernel(1, 0), AttnKernel::Single);
        assert_eq!(chunk_kernel(5, 0), AttnKernel::Batch);
        // 513 tokens: llama.cpp runs 512, then a micro-batch of 1.
        assert_eq!(chunk_kernel(513, 256), AttnKernel::Batch);
        assert_eq!(chunk_kernel(513, 512), AttnKernel::Single);
        assert_eq!(chunk_kernel(555, 512), AttnKernel::Batch);
    }
}
