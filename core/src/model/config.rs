//! Hyper-parameters of decoder-only transformers, read from GGUF metadata.

use super::ModelError;
use crate::gguf::{Gguf, Metadata};

/// Which decoder family: decides RoPE pairing, biases and other small differences.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Architecture {
    Llama,
    Qwen2,
}

impl Architecture {
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "llama" => Some(Self::Llama),
            "qwen2" => Some(Self::Qwen2),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Llama => "llama",
            Self::Qwen2 => "qwen2",
        }
    }

    /// How RoPE pairs dimensions, as llama.cpp's `llama_model_rope_type` decides it.
    pub fn rope_style(self) -> RopeStyle {
        match self {
            Self::Llama => RopeStyle::Normal,
            Self::Qwen2 => RopeStyle::Neox,
        }
    }
}

/// RoPE pairing: `Normal` rotates (x[2i], x[2i+1]); `Neox` rotates (x[i], x[i + d/2]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RopeStyle {
    Normal,
    Neox,
}

#[derive(Clone, Debug)]
pub struct DecoderConfig {
    pub arch: Architecture,
    pub n_layer: usize,
    pub n_embd: usize,
    pub n_ff: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
    /// Dimensions of each head that RoPE rotates (`rope.dimension_count`, default head_dim).
    pub n_rot: usize,
    pub rope_freq_base: f32,
    /// 1 / `rope.scaling.factor` for linear scaling, 1 otherwise.
    pub rope_freq_scale: f32,
    pub rms_eps: f32,
    /// The context the model was trained for (`context_length`).
    pub n_ctx_train: usize,
    pub vocab_size: usize,
}

impl DecoderConfig {
    pub fn from_gguf(g: &Gguf) -> Result<Self, ModelError> {
        let md = &g.metadata;
        let arch_name = g.architecture()?;
        let arch = Architecture::from_name(arch_name)
            .ok_or_else(|| ModelError::UnsupportedArchitecture(arch_name.to_string()))?;
        let key = |k: &str| format!("{arch_name}.{k}");
        let usize_key =
            |k: &str| -> Result<usize, ModelError> { Ok(md.get_u32(&key(k))? as usize) };

        let n_embd = usize_key("embedding_length")?;
        let n_head = usize_key("attention.head_count")?;
        let n_head_kv = match md.get_u32_opt(&key("attention.head_count_kv"))? {
            Some(n) => n as usize,
            None => n_head,
        };
        let head_dim = match md.get_u32_opt(&key("attention.key_length"))? {
            Some(n) => n as usize,
            None if n_head > 0 => n_embd / n_head,
            None => 0,
        };
        let n_rot = match md.get_u32_opt(&key("rope.dimension_count"))? {
            Some(n) => n as usize,
            None => head_dim,
        };
        let rope_freq_scale = rope_freq_scale(md, arch_name)?;
        let vocab_size = match md.get_u32_opt(&key("vocab_size"))? {
            Some(n) => n as usize,
            None => md.get_array("tokenizer.ggml.tokens")?.len(),
        };
        let cfg = Self {
            arch,
            n_layer: usize_key("block_count")?,
            n_embd,
            n_ff: usize_key("feed_forward_length")?,
            n_head,
            n_head_kv,
            head_dim,
            n_rot,
            rope_freq_base: md.get_f32_opt(&key("rope.freq_base"))?.unwrap_or(10_000.0),
            rope_freq_scale,
            rms_eps: md
                .get_f32_opt(&key("attention.layer_norm_rms_epsilon"))?
                .unwrap_or(1e-5),
            n_ctx_train: usize_key("context_length")?,
            vocab_size,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Rejects shapes the forward pass cannot run (and absurd ones that would allocate wildly).
    fn validate(&self) -> Result<(), ModelError> {
        let bad = |what: String| Err(ModelError::BadConfig(what));
        if self.n_layer == 0 || self.n_layer > 1024 {
            return bad(format!("block_count {} out of range", self.n_layer));
        }
        if self.n_embd == 0 || self.n_embd > 1 << 16 || self.n_ff == 0 || self.n_ff > 1 << 18 {
            return bad(format!(
                "embedding_length {} / feed_forward_length {}",
                self.n_embd, self.n_ff
            ));
        }
        if self.n_head == 0 || self.n_head_kv == 0 || !self.n_head.is_multiple_of(self.n_head_kv) {
            return bad(format!(
                "head_count {} is not a multiple of head_count_kv {}",
                self.n_head, self.n_head_kv
            ));
        }
        if self.head_dim == 0 || self.head_dim * self.n_head != self.n_embd {
            return bad(format!(
                "head dimension {} x {} heads != embedding_length {}",
                self.head_dim, self.n_head, self.n_embd
            ));
        }
        if self.n_rot == 0 || self.n_rot > self.head_dim || !self.n_rot.is_multiple_of(2) {
            return bad(format!(
                "rope.dimension_count {} for head dimension {}",
                self.n_rot, self.head_dim
            ));
        }
        if !(self.rope_freq_base.is_finite() && self.rope_freq_base > 0.0) {
            return bad(format!("rope.freq_base {}", self.rope_freq_base));
        }
        if !(self.rms_eps.is_finite() && self.rms_eps >= 0.0) {
            return bad(format!("layer_norm_rms_epsilon {}", self.rms_eps));
        }
        if self.n_ctx_train == 0 || self.vocab_size == 0 {
            return bad("zero context length or vocabulary".into());
        }
        Ok(())
    }

    pub fn kv_dim(&self) -> usize {
        self.head_dim * self.n_head_kv
    }
}

/// Linear RoPE scaling is applied as llama.cpp does (`freq_scale = 1 / factor`);
/// other scaling types are refused rather than silently ignored.
fn rope_freq_scale(md: &Metadata, arch: &str) -> Result<f32, ModelError> {
    let scaling_type = md.get_str_opt(&format!("{arch}.rope.scaling.type"))?;
    let factor = md.get_f32_opt(&format!("{arch}.rope.scaling.factor"))?;
    match (scaling_type, factor) {
        (None | Some("none"), _) | (_, None) => Ok(1.0),
        (Some("linear"), Some(f)) if f > 0.0 && f.is_finite() => Ok(1.0 / f),
        (Some(t), Some(f)) => Err(ModelError::BadConfig(format!(
            "rope scaling '{t}' with factor {f} is not supported"
        ))),
    }
}
