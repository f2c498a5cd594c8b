//! BERT sentence encoders (all-MiniLM-L6-v2, bge-small, e5-small and their family):
//! token + position + token-type embeddings → LayerNorm → per layer [Q/K/V (+bias) →
//! bidirectional attention over the sequence (with an attention mask) → output
//! projection → residual → LayerNorm → up (+bias) → GELU → down (+bias) → residual →
//! LayerNorm] (post-LayerNorm blocks). The final hidden states are pooled by
//! [`crate::pooling`].
//!
//! Two ways in, one forward pass: a GGUF file with llama.cpp's `bert` tensor and key
//! names ([`BertModel::load_gguf`]), or a Hugging Face directory (`config.json`,
//! `model.safetensors`, `tokenizer.json`; [`BertModel::load_safetensors`]). Either way the
//! matrices are read through [`WeightMemory`] and the quantized matmul of [`crate::ops`]:
//! safetensors F32/F16/BF16 data is already ggml's row layout, so the file's bytes serve
//! as the weight memory without conversion.
//!
//! Batches: the sequences of a call are concatenated (no padding) and every matrix
//! product runs once over all their tokens; attention stays within each sequence.
//! Explicitly padded inputs are supported through [`SeqInput::attention_mask`].

mod convert;
pub mod math;

use std::collections::HashMap;
use std::path::Path;

pub use convert::{convert_hf_to_gguf, ConvertError, ConvertReport};
pub use math::{erf, gelu_erf, gelu_tanh, layer_norm};

use crate::gguf::{Gguf, Metadata};
use crate::model::ModelError;
use crate::ops::{self, MatmulScratch, WeightMatrix};
use crate::pooling::{EmbedError, Embedder, Pooling, PoolingConfig};
use crate::quant::{self, GgmlType};
use crate::safetensors::SafeTensors;
use crate::tokenizer::Tokenizer;
use crate::weights::{SliceWeights, WeightMemory};

/// Tokens per forward group: bounds activation memory for big batches (a group holds
/// whole sequences, so one sequence of up to `context_length` tokens may exceed it).
const GROUP_TOKENS: usize = 2048;

/// The feed-forward activation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// Hugging Face `"gelu"`: exact, with erf.
    GeluErf,
    /// `"gelu_new"` / `"gelu_pytorch_tanh"`: the tanh approximation.
    GeluTanh,
}

#[derive(Clone, Debug, PartialEq)]
pub struct BertConfig {
    pub n_vocab: usize,
    pub n_embd: usize,
    pub n_layer: usize,
    pub n_head: usize,
    pub n_ff: usize,
    /// Position embeddings (`max_position_embeddings`, GGUF `bert.context_length`).
    pub n_ctx_train: usize,
    /// Rows of the token-type table (0 when the model has none).
    pub n_token_types: usize,
    pub eps: f32,
    pub activation: Activation,
    /// `pooling_type` from GGUF metadata, if any.
    pub pooling: Option<Pooling>,
}

impl BertConfig {
    /// From a Hugging Face `config.json` of a `BertModel`.
    pub fn from_hf_json(json: &str) -> Result<Self, ModelError> {
        let bad = |m: String| ModelError::BadConfig(format!("config.json: {m}"));
        let v: serde_json::Value = serde_json::from_str(json).map_err(|e| bad(e.to_string()))?;
        let get = |k: &str| -> Result<usize, ModelError> {
            v.get(k)
                .and_then(|x| x.as_u64())
                .map(|x| x as usize)
                .ok_or_else(|| bad(format!("'{k}' is missing or not a non-negative integer")))
        };
        match v.get("model_type").and_then(|m| m.as_str()) {
            Some("bert") | None => {}
            Some(other) => return Err(ModelError::UnsupportedArchitecture(other.to_string())),
        }
        match v.get("position_embedding_type").and_then(|m| m.as_str()) {
            Some("absolute") | None => {}
            Some(other) => {
                return Err(bad(format!(
                    "position_embedding_type '{other}' is not supported"
                )))
            }
        }
        let activation = match v
            .get("hidden_act")
            .and_then(|m| m.as_str())
            .unwrap_or("gelu")
        {
            "gelu" => Activation::GeluErf,
            "gelu_new" | "gelu_pytorch_tanh" => Activation::GeluTanh,
            other => return Err(bad(format!("hidden_act '{other}' is not supported"))),
        };
        let eps = v
            .get("layer_norm_eps")
            .and_then(|x| x.as_f64())
            .unwrap_or(1e-12) as f32;
        let cfg = Self {
            n_vocab: get("vocab_size")?,
            n_embd: get("hidden_size")?,
            n_layer: get("num_hidden_layers")?,
            n_head: get("num_attention_heads")?,
            n_ff: get("intermediate_size")?,
            n_ctx_train: get("max_position_embeddings")?,
            n_token_types: v
                .get("type_vocab_size")
                .and_then(|x| x.as_u64())
                .unwrap_or(2) as usize,
            eps,
            activation,
            pooling: None,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// From GGUF metadata (`bert.*`) and the shapes of the embedding tables.
    pub fn from_gguf(g: &Gguf) -> Result<Self, ModelError> {
        let md = &g.metadata;
        let arch = g.architecture()?;
        if arch != "bert" {
            return Err(ModelError::UnsupportedArchitecture(arch.to_string()));
        }
        let u = |k: &str| -> Result<usize, ModelError> {
            Ok(md.get_u32(&format!("bert.{k}"))? as usize)
        };
        if md.get_bool_opt("bert.attention.causal")? == Some(true) {
            return Err(ModelError::BadConfig(
                "bert.attention.causal = true is not supported".into(),
            ));
        }
        let pooling = match md.get_u32_opt("bert.pooling_type")? {
            None => None,
            Some(id) => Some(Pooling::from_llama_id(id).ok_or_else(|| {
                ModelError::BadConfig(format!(
                    "bert.pooling_type {id} is not an embedding pooling"
                ))
            })?),
        };
        let rows = |name: &str| {
            g.tensor(name)
                .and_then(|t| t.dims.get(1).copied())
                .map(|r| r as usize)
        };
        let n_vocab = match rows("token_embd.weight") {
            Some(n) => n,
            None => md.get_array("tokenizer.ggml.tokens")?.len(),
        };
        let cfg = Self {
            n_vocab,
            n_embd: u("embedding_length")?,
            n_layer: u("block_count")?,
            n_head: u("attention.head_count")?,
            n_ff: u("feed_forward_length")?,
            n_ctx_train: u("context_length")?,
            n_token_types: rows("token_types.weight").unwrap_or(0),
            eps: md.get_f32("bert.attention.layer_norm_epsilon")?,
            activation: Activation::GeluErf,
            pooling,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), ModelError> {
        let bad = |m: String| Err(ModelError::BadConfig(m));
        if self.n_layer == 0 || self.n_layer > 1024 {
            return bad(format!("block_count {} out of range", self.n_layer));
        }
        if self.n_embd == 0 || self.n_embd > 1 << 16 || self.n_ff == 0 || self.n_ff > 1 << 18 {
            return bad(format!(
                "embedding_length {} / feed_forward_length {}",
                self.n_embd, self.n_ff
            ));
        }
        if self.n_head == 0 || !self.n_embd.is_multiple_of(self.n_head) {
            return bad(format!(
                "{} heads do not divide embedding_length {}",
                self.n_head, self.n_embd
            ));
        }
        if self.n_ctx_train == 0
            || self.n_ctx_train > 1 << 20
            || self.n_vocab == 0
            || self.n_token_types > 1 << 16
        {
            return bad("zero or absurd context length / vocabulary".into());
        }
        if !(self.eps.is_finite() && self.eps >= 0.0) {
            return bad(format!("layer_norm_epsilon {}", self.eps));
        }
        Ok(())
    }

    pub fn head_dim(&self) -> usize {
        self.n_embd / self.n_head
    }
}

/// Where a Hugging Face tensor goes in llama.cpp's `bert` naming.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HfTensor {
    /// Used, under this GGUF name.
    Mapped(String),
    /// Not needed for embeddings (`position_ids`, the pooler head).
    Ignored,
    /// Not part of a BertModel.
    Unknown,
}

/// Maps a `BertModel` safetensors name (with or without the `bert.` prefix, with
/// `LayerNorm.weight/bias` or the older `gamma/beta`) to its GGUF name.
pub fn map_hf_tensor(name: &str) -> HfTensor {
    let n = name.strip_prefix("bert.").unwrap_or(name);
    let (base, kind) = match n.rsplit_once('.') {
        Some((b, "weight" | "gamma")) => (b, "weight"),
        Some((b, "bias" | "beta")) => (b, "bias"),
        _ => {
            return match n {
                "embeddings.position_ids" => HfTensor::Ignored,
                _ => HfTensor::Unknown,
            }
        }
    };
    if base.starts_with("pooler.") || base.starts_with("cls.") {
        return HfTensor::Ignored;
    }
    let top = match base {
        "embeddings.word_embeddings" => Some("token_embd"),
        "embeddings.position_embeddings" => Some("position_embd"),
        "embeddings.token_type_embeddings" => Some("token_types"),
        "embeddings.LayerNorm" => Some("token_embd_norm"),
        _ => None,
    };
    if let Some(t) = top {
        return HfTensor::Mapped(format!("{t}.{kind}"));
    }
    let Some(rest) = base.strip_prefix("encoder.layer.") else {
        return HfTensor::Unknown;
    };
    let Some((idx, sub)) = rest.split_once('.') else {
        return HfTensor::Unknown;
    };
    let Ok(i) = idx.parse::<usize>() else {
        return HfTensor::Unknown;
    };
    let t = match sub {
        "attention.self.query" => "attn_q",
        "attention.self.key" => "attn_k",
        "attention.self.value" => "attn_v",
        "attention.output.dense" => "attn_output",
        "attention.output.LayerNorm" => "attn_output_norm",
        "intermediate.dense" => "ffn_up",
        "output.dense" => "ffn_down",
        "output.LayerNorm" => "layer_output_norm",
        _ => return HfTensor::Unknown,
    };
    HfTensor::Mapped(format!("blk.{i}.{t}.{kind}"))
}

/// One tensor in a weight memory, in ggml terms.
#[derive(Clone, Debug)]
struct TensorRef {
    dims: Vec<u64>,
    ty: GgmlType,
    offset: u64,
    size: u64,
}

struct Loader<'a> {
    table: HashMap<String, TensorRef>,
    mem: &'a dyn WeightMemory,
}

impl Loader<'_> {
    fn info(&self, name: &str, dims: &[usize]) -> Result<&TensorRef, ModelError> {
        let t = self
            .table
            .get(name)
            .ok_or_else(|| ModelError::MissingTensor(name.to_string()))?;
        let want: Vec<u64> = dims.iter().map(|&d| d as u64).collect();
        if t.dims != want {
            return Err(ModelError::BadShape {
                name: name.into(),
                expected: want,
                found: t.dims.clone(),
            });
        }
        let end = t.offset.saturating_add(t.size);
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
        let t = self.info(name, &[cols, rows])?;
        if matches!(t.ty, GgmlType::Q8_1 | GgmlType::Q8K) || !cols.is_multiple_of(t.ty.block_size())
        {
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

    /// A whole tensor dequantized to f32 (norms, biases, position and type tables).
    fn floats(&self, name: &str, dims: &[usize]) -> Result<Vec<f32>, ModelError> {
        let t = self.info(name, dims)?;
        let n: usize = dims.iter().product();
        let mut scratch = Vec::new();
        let bytes = self.mem.bytes(t.offset, t.size as usize, &mut scratch);
        let mut out = vec![0.0; n];
        quant::dequantize_row(t.ty, bytes, &mut out)?;
        Ok(out)
    }
}

struct Layer {
    wq: WeightMatrix,
    wk: WeightMatrix,
    wv: WeightMatrix,
    bq: Vec<f32>,
    bk: Vec<f32>,
    bv: Vec<f32>,
    wo: WeightMatrix,
    bo: Vec<f32>,
    attn_norm_w: Vec<f32>,
    attn_norm_b: Vec<f32>,
    up: WeightMatrix,
    b_up: Vec<f32>,
    down: WeightMatrix,
    b_down: Vec<f32>,
    out_norm_w: Vec<f32>,
    out_norm_b: Vec<f32>,
}

/// One input sequence of a forward pass.
#[derive(Clone, Copy, Debug, Default)]
pub struct SeqInput<'a> {
    pub ids: &'a [u32],
    /// Segment ids (all 0 when `None`).
    pub type_ids: Option<&'a [u32]>,
    /// 1 = real token, 0 = padding (excluded as an attention key). All 1 when `None`.
    pub attention_mask: Option<&'a [u8]>,
}

pub struct BertModel {
    pub cfg: BertConfig,
    weights: Box<dyn WeightMemory>,
    token_embd: WeightMatrix,
    /// `n_ctx_train * n_embd`.
    pos_embd: Vec<f32>,
    /// `n_token_types * n_embd` (empty without a type table).
    type_embd: Vec<f32>,
    embd_norm_w: Vec<f32>,
    embd_norm_b: Vec<f32>,
    layers: Vec<Layer>,
}

impl BertModel {
    /// From a GGUF header and the memory holding the file's bytes (at file offsets).
    pub fn load_gguf(g: &Gguf, weights: Box<dyn WeightMemory>) -> Result<Self, ModelError> {
        let cfg = BertConfig::from_gguf(g)?;
        let table = g
            .tensors
            .iter()
            .map(|t| {
                let r = TensorRef {
                    dims: t.dims.clone(),
                    ty: t.ty,
                    offset: t.offset,
                    size: t.size_bytes,
                };
                (t.name.clone(), r)
            })
            .collect();
        Self::load(cfg, table, weights)
    }

    /// From a safetensors header and the memory holding that file's bytes. Matrices must
    /// be F32, F16 or BF16 (they are used in place).
    pub fn load_safetensors(
        cfg: BertConfig,
        st: &SafeTensors,
        weights: Box<dyn WeightMemory>,
    ) -> Result<Self, ModelError> {
        let mut table = HashMap::new();
        for t in &st.tensors {
            let HfTensor::Mapped(name) = map_hf_tensor(&t.name) else {
                continue;
            };
            let ty = t.dtype.ggml_type().ok_or_else(|| {
                ModelError::BadConfig(format!(
                    "tensor '{}' has dtype {}, expected F32, F16 or BF16",
                    t.name, t.dtype
                ))
            })?;
            let r = TensorRef {
                dims: t.ggml_dims(),
                ty,
                offset: t.offset,
                size: t.size_bytes,
            };
            table.insert(name, r);
        }
        Self::load(cfg, table, weights)
    }

    fn load(
        cfg: BertConfig,
        table: HashMap<String, TensorRef>,
        weights: Box<dyn WeightMemory>,
    ) -> Result<Self, ModelError> {
        let ld = Loader {
            table,
            mem: weights.as_ref(),
        };
        let (d, ff) = (cfg.n_embd, cfg.n_ff);
        let token_embd = ld.matrix("token_embd.weight", d, cfg.n_vocab)?;
        let pos_embd = ld.floats("position_embd.weight", &[d, cfg.n_ctx_train])?;
        let type_embd = if cfg.n_token_types > 0 {
            ld.floats("token_types.weight", &[d, cfg.n_token_types])?
        } else {
            Vec::new()
        };
        let embd_norm_w = ld.floats("token_embd_norm.weight", &[d])?;
        let embd_norm_b = ld.floats("token_embd_norm.bias", &[d])?;
        let mut layers = Vec::with_capacity(cfg.n_layer);
        for i in 0..cfg.n_layer {
            let n = |s: &str| format!("blk.{i}.{s}");
            layers.push(Layer {
                wq: ld.matrix(&n("attn_q.weight"), d, d)?,
                wk: ld.matrix(&n("attn_k.weight"), d, d)?,
                wv: ld.matrix(&n("attn_v.weight"), d, d)?,
                bq: ld.floats(&n("attn_q.bias"), &[d])?,
                bk: ld.floats(&n("attn_k.bias"), &[d])?,
                bv: ld.floats(&n("attn_v.bias"), &[d])?,
                wo: ld.matrix(&n("attn_output.weight"), d, d)?,
                bo: ld.floats(&n("attn_output.bias"), &[d])?,
                attn_norm_w: ld.floats(&n("attn_output_norm.weight"), &[d])?,
                attn_norm_b: ld.floats(&n("attn_output_norm.bias"), &[d])?,
                up: ld.matrix(&n("ffn_up.weight"), d, ff)?,
                b_up: ld.floats(&n("ffn_up.bias"), &[ff])?,
                down: ld.matrix(&n("ffn_down.weight"), ff, d)?,
                b_down: ld.floats(&n("ffn_down.bias"), &[d])?,
                out_norm_w: ld.floats(&n("layer_output_norm.weight"), &[d])?,
                out_norm_b: ld.floats(&n("layer_output_norm.bias"), &[d])?,
            });
        }
        Ok(Self {
            cfg,
            weights,
            token_embd,
            pos_embd,
            type_embd,
            embd_norm_w,
            embd_norm_b,
            layers,
        })
    }

    /// The type of the matrices (of `blk.0.attn_q.weight`).
    pub fn weight_type(&self) -> GgmlType {
        self.layers[0].wq.ty
    }

    /// The final hidden states of each sequence (`len * n_embd` floats each). Sequences
    /// are run together in groups of about [`GROUP_TOKENS`] tokens.
    pub fn forward(&self, seqs: &[SeqInput]) -> Result<Vec<Vec<f32>>, EmbedError> {
        for (i, s) in seqs.iter().enumerate() {
            self.check(i, s)?;
        }
        let d = self.cfg.n_embd;
        let mut out = Vec::with_capacity(seqs.len());
        let mut scratch = MatmulScratch::default();
        let mut start = 0;
        while start < seqs.len() {
            let mut end = start + 1;
            let mut n = seqs[start].ids.len();
            while end < seqs.len() && n + seqs[end].ids.len() <= GROUP_TOKENS {
                n += seqs[end].ids.len();
                end += 1;
            }
            let x = self.forward_group(&seqs[start..end], &mut scratch)?;
            let mut off = 0;
            for s in &seqs[start..end] {
                let len = s.ids.len() * d;
                out.push(x[off..off + len].to_vec());
                off += len;
            }
            start = end;
        }
        Ok(out)
    }

    fn check(&self, index: usize, s: &SeqInput) -> Result<(), EmbedError> {
        let n = s.ids.len();
        if n == 0 {
            return Err(EmbedError::EmptyInput { index });
        }
        if n > self.cfg.n_ctx_train {
            return Err(EmbedError::TooLong {
                index,
                n_tokens: n,
                max: self.cfg.n_ctx_train,
            });
        }
        let bad = |m: String| Err(EmbedError::InvalidInput(format!("input {index}: {m}")));
        if let Some(&t) = s.ids.iter().find(|&&t| t as usize >= self.cfg.n_vocab) {
            return bad(format!(
                "token id {t} is outside the vocabulary ({} tokens)",
                self.cfg.n_vocab
            ));
        }
        if let Some(types) = s.type_ids {
            if types.len() != n {
                return bad(format!("{} type ids for {n} tokens", types.len()));
            }
            if let Some(&t) = types
                .iter()
                .find(|&&t| t as usize >= self.cfg.n_token_types.max(1))
            {
                return bad(format!(
                    "token type {t} (the model has {})",
                    self.cfg.n_token_types
                ));
            }
        }
        if let Some(mask) = s.attention_mask {
            if mask.len() != n {
                return bad(format!("attention mask of {} for {n} tokens", mask.len()));
            }
            if mask.iter().all(|&m| m == 0) {
                return bad("the attention mask excludes every token".into());
            }
        }
        Ok(())
    }

    /// One forward pass over the concatenated tokens of `seqs` (validated).
    fn forward_group(
        &self,
        seqs: &[SeqInput],
        sc: &mut MatmulScratch,
    ) -> Result<Vec<f32>, EmbedError> {
        let cfg = &self.cfg;
        let (d, ff) = (cfg.n_embd, cfg.n_ff);
        let n: usize = seqs.iter().map(|s| s.ids.len()).sum();
        let mem = self.weights.as_ref();

        let mut x = vec![0.0f32; n * d];
        let mut keys_on = Vec::with_capacity(n);
        let mut spans = Vec::with_capacity(seqs.len());
        let mut t = 0;
        for s in seqs {
            spans.push((t, s.ids.len()));
            for (p, &id) in s.ids.iter().enumerate() {
                let row = &mut x[t * d..(t + 1) * d];
                ops::embedding_row(mem, &self.token_embd, id as usize, row, sc)
                    .map_err(ModelError::from)?;
                ops::add_assign(row, &self.pos_embd[p * d..(p + 1) * d]);
                if !self.type_embd.is_empty() {
                    let ty = s.type_ids.map_or(0, |ts| ts[p] as usize);
                    ops::add_assign(row, &self.type_embd[ty * d..(ty + 1) * d]);
                }
                math::layer_norm_inplace(row, &self.embd_norm_w, &self.embd_norm_b, cfg.eps);
                keys_on.push(s.attention_mask.is_none_or(|m| m[p] != 0));
                t += 1;
            }
        }

        let (mut q, mut k, mut v) = (
            vec![0.0f32; n * d],
            vec![0.0f32; n * d],
            vec![0.0f32; n * d],
        );
        let mut attn = vec![0.0f32; n * d];
        let mut proj = vec![0.0f32; n * d];
        let mut hidden = vec![0.0f32; n * ff];
        let mut scores = Vec::new();
        let act = match cfg.activation {
            Activation::GeluErf => math::gelu_erf,
            Activation::GeluTanh => math::gelu_tanh,
        };
        let mm = |w: &WeightMatrix,
                  input: &[f32],
                  out: &mut [f32],
                  bias: &[f32],
                  sc: &mut MatmulScratch| {
            ops::matmul(mem, w, input, n, out, sc).map_err(ModelError::from)?;
            out.chunks_exact_mut(w.rows)
                .for_each(|r| ops::add_assign(r, bias));
            Ok::<(), ModelError>(())
        };
        for l in &self.layers {
            mm(&l.wq, &x, &mut q, &l.bq, sc)?;
            mm(&l.wk, &x, &mut k, &l.bk, sc)?;
            mm(&l.wv, &x, &mut v, &l.bv, sc)?;
            attend(
                &q,
                &k,
                &v,
                &spans,
                &keys_on,
                cfg.n_head,
                cfg.head_dim(),
                &mut attn,
                &mut scores,
            );
            mm(&l.wo, &attn, &mut proj, &l.bo, sc)?;
            ops::add_assign(&mut x, &proj);
            x.chunks_exact_mut(d)
                .for_each(|r| math::layer_norm_inplace(r, &l.attn_norm_w, &l.attn_norm_b, cfg.eps));
            mm(&l.up, &x, &mut hidden, &l.b_up, sc)?;
            hidden.iter_mut().for_each(|h| *h = act(*h));
            mm(&l.down, &hidden, &mut proj, &l.b_down, sc)?;
            ops::add_assign(&mut x, &proj);
            x.chunks_exact_mut(d)
                .for_each(|r| math::layer_norm_inplace(r, &l.out_norm_w, &l.out_norm_b, cfg.eps));
        }
        Ok(x)
    }
}

/// Bidirectional multi-head attention within each span `(first token, length)`; keys
/// whose `keys_on` is false (padding) get no weight. Softmax as ggml: exponentials in
/// f32, their sum in f64.
#[allow(clippy::too_many_arguments)]
fn attend(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    spans: &[(usize, usize)],
    keys_on: &[bool],
    n_head: usize,
    hd: usize,
    out: &mut [f32],
    scores: &mut Vec<f32>,
) {
    let d = n_head * hd;
    let scale = 1.0 / (hd as f32).sqrt();
    for &(o, len) in spans {
        scores.resize(len, 0.0);
        for h in 0..n_head {
            let col = h * hd;
            for i in 0..len {
                let qi = &q[(o + i) * d + col..(o + i) * d + col + hd];
                let mut max = f32::NEG_INFINITY;
                for (j, s) in scores.iter_mut().enumerate() {
                    if !keys_on[o + j] {
                        *s = f32::NEG_INFINITY;
                        continue;
                    }
                    let kj = &k[(o + j) * d + col..(o + j) * d + col + hd];
                    let dot: f32 = qi.iter().zip(kj).map(|(a, b)| a * b).sum();
                    *s = dot * scale;
                    max = max.max(*s);
                }
                let mut sum = 0.0f64;
                for s in scores.iter_mut() {
                    *s = if *s == f32::NEG_INFINITY {
                        0.0
                    } else {
                        (*s - max).exp()
                    };
                    sum += *s as f64;
                }
                let inv = (1.0 / sum) as f32;
                let oi = &mut out[(o + i) * d + col..(o + i) * d + col + hd];
                oi.fill(0.0);
                for (j, &s) in scores.iter().enumerate() {
                    if s == 0.0 {
                        continue;
                    }
                    let w = s * inv;
                    let vj = &v[(o + j) * d + col..(o + j) * d + col + hd];
                    for (a, &b) in oi.iter_mut().zip(vj) {
                        *a += w * b;
                    }
                }
            }
        }
    }
}

/// The text files of a Hugging Face / sentence-transformers model directory.
#[derive(Clone, Debug, Default)]
pub struct HfFiles {
    pub config_json: String,
    pub tokenizer_json: String,
    /// `1_Pooling/config.json`, if present.
    pub pooling_json: Option<String>,
    /// `modules.json`, if present.
    pub modules_json: Option<String>,
}

impl HfFiles {
    pub fn read_dir(dir: &Path) -> Result<Self, EmbedError> {
        let read = |rel: &str| {
            std::fs::read_to_string(dir.join(rel)).map_err(|e| {
                EmbedError::Config(format!("reading {}: {e}", dir.join(rel).display()))
            })
        };
        let optional = |rel: &str| dir.join(rel).is_file().then(|| read(rel)).transpose();
        Ok(Self {
            config_json: read("config.json")?,
            tokenizer_json: read("tokenizer.json")?,
            pooling_json: optional("1_Pooling/config.json")?,
            modules_json: optional("modules.json")?,
        })
    }

    /// The sentence-transformers pooling, or mean without normalisation when the
    /// directory is a bare transformers model.
    pub fn pooling(&self) -> Result<PoolingConfig, EmbedError> {
        match &self.pooling_json {
            Some(p) => PoolingConfig::from_sentence_transformers(p, self.modules_json.as_deref()),
            None => Ok(PoolingConfig {
                pooling: Pooling::Mean,
                normalize: self
                    .modules_json
                    .as_deref()
                    .map(crate::pooling::modules_normalize)
                    .transpose()?
                    .unwrap_or(false),
            }),
        }
    }
}

/// A BERT model with its tokenizer and default pooling.
pub struct BertEmbedder {
    pub model: BertModel,
    pub tokenizer: Tokenizer,
    pub pooling: PoolingConfig,
}

impl BertEmbedder {
    /// From a GGUF file (tokenizer from its metadata). Default pooling: `bert.pooling_type`
    /// (mean if absent); normalisation: [`crate::pooling::KEY_NORMALIZE`] (on if absent,
    /// as llama.cpp's embedding tools normalise by default).
    pub fn from_gguf(g: &Gguf, weights: Box<dyn WeightMemory>) -> Result<Self, EmbedError> {
        let pooling = PoolingConfig::from_gguf(g, Pooling::Mean, true)?;
        let model = BertModel::load_gguf(g, weights)?;
        let tokenizer = Tokenizer::from_gguf(g)?;
        Ok(Self {
            model,
            tokenizer,
            pooling,
        })
    }

    /// From a Hugging Face directory's text files, its safetensors header, and the
    /// memory holding `model.safetensors`.
    pub fn from_hf(
        files: &HfFiles,
        st: &SafeTensors,
        weights: Box<dyn WeightMemory>,
    ) -> Result<Self, EmbedError> {
        let cfg = BertConfig::from_hf_json(&files.config_json)?;
        let model = BertModel::load_safetensors(cfg, st, weights)?;
        let tokenizer = Tokenizer::from_hf_json(&files.tokenizer_json)?;
        if tokenizer.vocab_size() > model.cfg.n_vocab {
            return Err(EmbedError::Config(format!(
                "tokenizer.json has {} tokens, the model {}",
                tokenizer.vocab_size(),
                model.cfg.n_vocab
            )));
        }
        Ok(Self {
            model,
            tokenizer,
            pooling: files.pooling()?,
        })
    }

    /// Reads a Hugging Face directory (`model.safetensors` into memory).
    pub fn from_hf_dir(dir: &Path) -> Result<Self, EmbedError> {
        let files = HfFiles::read_dir(dir)?;
        let path = dir.join("model.safetensors");
        let bytes = std::fs::read(&path)
            .map_err(|e| EmbedError::Config(format!("reading {}: {e}", path.display())))?;
        let st = SafeTensors::read(bytes.as_slice())?;
        Self::from_hf(&files, &st, Box::new(SliceWeights(bytes)))
    }
}

impl Embedder for BertEmbedder {
    fn dim(&self) -> usize {
        self.model.cfg.n_embd
    }

    fn max_tokens(&self) -> usize {
        self.model.cfg.n_ctx_train
    }

    fn default_pooling(&self) -> PoolingConfig {
        self.pooling
    }

    fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    fn token_states(&self, seqs: &[Vec<u32>]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let inputs: Vec<SeqInput> = seqs
            .iter()
            .map(|ids| SeqInput {
                ids,
                ..Default::default()
            })
            .collect();
        self.model.forward(&inputs)
    }
}

/// GGUF metadata for a `bert` model (used by [`convert_hf_to_gguf`]).
pub(crate) fn bert_metadata(md: &mut Metadata, cfg: &BertConfig, pooling: PoolingConfig) {
    use crate::gguf::Value;
    md.insert("bert.context_length", Value::U32(cfg.n_ctx_train as u32));
    md.insert("bert.embedding_length", Value::U32(cfg.n_embd as u32));
    md.insert("bert.feed_forward_length", Value::U32(cfg.n_ff as u32));
    md.insert("bert.block_count", Value::U32(cfg.n_layer as u32));
    md.insert("bert.attention.head_count", Value::U32(cfg.n_head as u32));
    md.insert("bert.attention.layer_norm_epsilon", Value::F32(cfg.eps));
    md.insert("bert.attention.causal", Value::Bool(false));
    md.insert("bert.pooling_type", Value::U32(pooling.pooling.llama_id()));
    md.insert(
        crate::pooling::KEY_NORMALIZE,
        Value::Bool(pooling.normalize),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hf_names() {
        let m = |s: &str| map_hf_tensor(s);
        assert_eq!(
            m("embeddings.word_embeddings.weight"),
            HfTensor::Mapped("token_embd.weight".into())
        );
        assert_eq!(
            m("bert.embeddings.LayerNorm.gamma"),
            HfTensor::Mapped("token_embd_norm.weight".into())
        );
        assert_eq!(
            m("encoder.layer.5.attention.output.LayerNorm.bias"),
            HfTensor::Mapped("blk.5.attn_output_norm.bias".into())
        );
        assert_eq!(
            m("encoder.layer.0.output.dense.weight"),
            HfTensor::Mapped("blk.0.ffn_down.weight".into())
        );
        assert_eq!(
            m("encoder.layer.0.intermediate.dense.bias"),
            HfTensor::Mapped("blk.0.ffn_up.bias".into())
        );
        assert_eq!(m("embeddings.position_ids"), HfTensor::Ignored);
        assert_eq!(m("pooler.dense.weight"), HfTensor::Ignored);
        assert_eq!(m("encoder.layer.x.output.dense.weight"), HfTensor::Unknown);
        assert_eq!(m("lm_head.weight"), HfTensor::Unknown);
    }
}
