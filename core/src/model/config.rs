//! Hyper-parameters of decoder-only transformers, read from GGUF metadata.

use super::ModelError;
use crate::gguf::{Gguf, Metadata};

/// Which decoder family: decides RoPE pairing, biases and other small differences.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Architecture {
    Llama,
    Qwen2,
    /// Gemma 3: scaled embeddings, RMS-normed queries and keys, norms after the
    /// attention and the feed-forward blocks too, GELU-gated feed-forward, and sliding
    /// window attention in five layers of six.
    Gemma3,
}

impl Architecture {
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "llama" => Some(Self::Llama),
            "qwen2" => Some(Self::Qwen2),
            "gemma3" => Some(Self::Gemma3),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Llama => "llama",
            Self::Qwen2 => "qwen2",
            Self::Gemma3 => "gemma3",
        }
    }

    /// How RoPE pairs dimensions, as llama.cpp's `llama_model_rope_type` decides it.
    pub fn rope_style(self) -> RopeStyle {
        match self {
            Self::Llama => RopeStyle::Normal,
            Self::Qwen2 | Self::Gemma3 => RopeStyle::Neox,
        }
    }
}

/// RoPE pairing: `Normal` rotates (x[2i], x[2i+1]); `Neox` rotates (x[i], x[i + d/2]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RopeStyle {
    Normal,
    Neox,
}

/// Sliding-window attention (Gemma 3): every layer but the last of each group of
/// `pattern` sees only the `window` latest positions, and rotates with its own RoPE base.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SlidingWindow {
    pub window: usize,
    pub pattern: usize,
    pub rope_freq_base: f32,
}

impl SlidingWindow {
    /// Whether layer `il` uses the window (llama.cpp's `set_swa_pattern`).
    pub fn applies_to(&self, il: usize) -> bool {
        il % self.pattern < self.pattern - 1
    }
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
    /// Sliding-window attention: the window (`attention.sliding_window`, keys closer
    /// than it to the query are seen) and which layers use it, with their RoPE base.
    pub sliding_window: Option<SlidingWindow>,
    /// What the queries are multiplied by before `K·q`: `1/sqrt(head_dim)` (Gemma 3
    /// scales the queries themselves, as llama.cpp's graph does).
    pub attn_scale: f32,
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
        let n_layer = usize_key("block_count")?;
        let sliding_window = match (arch, md.get_u32_opt(&key("attention.sliding_window"))?) {
            (Architecture::Gemma3, Some(w)) if w > 0 => Some(SlidingWindow {
                window: w as usize,
                pattern: md
                    .get_u32_opt(&key("attention.sliding_window_pattern"))?
                    .map_or(6, |p| p as usize),
                rope_freq_base: md
                    .get_f32_opt(&key("rope.freq_base_swa"))?
                    .unwrap_or(10_000.0),
            }),
            _ => None,
        };
        // Gemma 3 27B (62 layers) scales by the width per head, the others by the key
        // length (llama.cpp's `f_attention_scale`).
        let attn_scale = match arch {
            Architecture::Gemma3 if n_layer == 62 && n_head > 0 => {
                1.0 / ((n_embd / n_head) as f32).sqrt()
            }
            _ => 1.0 / (head_dim as f32).sqrt(),
        };
        let cfg = Self {
            arch,
            n_layer,
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
            sliding_window,
            attn_scale,
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
        // Gemma's heads are wider than embedding_length / head_count; Llama's and
        // Qwen2's are exactly that.
        let q_dim = self.head_dim.saturating_mul(self.n_head);
        let q_dim_ok = match self.arch {
            Architecture::Gemma3 => q_dim <= 1 << 16,
            _ => q_dim == self.n_embd,
        };
        if self.head_dim == 0 || !q_dim_ok {
            return bad(format!(
                "head dimension {} x {} heads for embedding_length {}",
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
        if let Some(w) = self.sliding_window {
            if w.pattern == 0 || !(w.rope_freq_base.is_finite() && w.rope_freq_base > 0.0) {
                return bad(format!(
                    "sliding window pattern {} / rope.freq_base_swa {}",
                    w.pattern, w.rope_freq_base
                ));
            }
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

    /// Width of the queries and of the attention output: `head_dim * n_head`.
    pub fn q_dim(&self) -> usize {
        self.head_dim * self.n_head
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
