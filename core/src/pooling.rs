//! Sentence embeddings: pooling of per-token hidden states, L2 normalisation, and the
//! [`Embedder`] interface that both encoder models ([`crate::bert::BertEmbedder`]) and
//! decoder models ([`Engine`], mean/last over the final normed hidden state)
//! implement, so that every surface (CLI, component, HTTP) embeds the same way.
//!
//! Defaults come from the model (GGUF `<arch>.pooling_type`, or sentence-transformers'
//! `1_Pooling/config.json` and `modules.json`) and can be overridden per call
//! ([`EmbedOptions`]). Inputs longer than the model's positions are an error unless
//! [`EmbedOptions::truncate`] is set; an input with no tokens (the empty text for a
//! decoder without BOS) is an error, never a zero vector.

use crate::engine::{Engine, EngineError};
use crate::gguf::{ByteSource, Gguf, GgufError};
use crate::model::{Architecture, ModelError};
use crate::safetensors::SafetensorsError;
use crate::tokenizer::{Tokenizer, TokenizerError};
use crate::weights::WeightMemory;

/// How per-token states become one vector (llama.cpp's `llama_pooling_type`, minus rank).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pooling {
    /// No pooling: one vector per token.
    None,
    /// Mean over the tokens (over the attention mask).
    Mean,
    /// The first token's state (`[CLS]`).
    Cls,
    /// The last token's state.
    Last,
}

impl Pooling {
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name.to_ascii_lowercase().as_str() {
            "none" => Self::None,
            "mean" => Self::Mean,
            "cls" => Self::Cls,
            "last" => Self::Last,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Mean => "mean",
            Self::Cls => "cls",
            Self::Last => "last",
        }
    }

    /// From llama.cpp's `pooling_type` metadata value (0 none, 1 mean, 2 cls, 3 last;
    /// 4 = rank, a reranker head, is not an embedding).
    pub fn from_llama_id(id: u32) -> Option<Self> {
        Some(match id {
            0 => Self::None,
            1 => Self::Mean,
            2 => Self::Cls,
            3 => Self::Last,
            _ => return None,
        })
    }

    pub fn llama_id(self) -> u32 {
        match self {
            Self::None => 0,
            Self::Mean => 1,
            Self::Cls => 2,
            Self::Last => 3,
        }
    }
}

impl std::fmt::Display for Pooling {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A model's pooling and normalisation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolingConfig {
    pub pooling: Pooling,
    /// L2-normalise each output vector.
    pub normalize: bool,
}

/// GGUF key (ours) recording that the source model L2-normalises its embeddings
/// (sentence-transformers' `Normalize` module). llama.cpp has no such key.
pub const KEY_NORMALIZE: &str = "wasm_chord.embedding.normalize";

impl PoolingConfig {
    /// From sentence-transformers' `1_Pooling/config.json` and (optional) `modules.json`:
    /// exactly one of the CLS / mean / last-token modes must be on; max, mean-sqrt-len
    /// and weighted-mean pooling are refused rather than approximated.
    pub fn from_sentence_transformers(
        pooling_json: &str,
        modules_json: Option<&str>,
    ) -> Result<Self, EmbedError> {
        let bad = |m: String| EmbedError::Config(format!("1_Pooling/config.json: {m}"));
        let v: serde_json::Value =
            serde_json::from_str(pooling_json).map_err(|e| bad(e.to_string()))?;
        let on = |k: &str| v.get(k).and_then(|x| x.as_bool()).unwrap_or(false);
        for k in [
            "pooling_mode_max_tokens",
            "pooling_mode_mean_sqrt_len_tokens",
            "pooling_mode_weightedmean_tokens",
        ] {
            if on(k) {
                return Err(bad(format!("{k} is not supported")));
            }
        }
        let modes: Vec<Pooling> = [
            ("pooling_mode_cls_token", Pooling::Cls),
            ("pooling_mode_mean_tokens", Pooling::Mean),
            ("pooling_mode_lasttoken", Pooling::Last),
        ]
        .into_iter()
        .filter(|(k, _)| on(k))
        .map(|(_, p)| p)
        .collect();
        let pooling = match modes.as_slice() {
            [p] => *p,
            [] => return Err(bad("no supported pooling mode is enabled".into())),
            _ => {
                return Err(bad(
                    "several pooling modes (concatenated) are not supported".into(),
                ))
            }
        };
        let normalize = match modules_json {
            None => false,
            Some(m) => modules_normalize(m)?,
        };
        Ok(Self { pooling, normalize })
    }

    /// From GGUF metadata: `<arch>.pooling_type` (default `fallback`) and
    /// [`KEY_NORMALIZE`] (default `normalize_default`).
    pub fn from_gguf(
        g: &Gguf,
        fallback: Pooling,
        normalize_default: bool,
    ) -> Result<Self, EmbedError> {
        let arch = g.architecture()?;
        let pooling = match g.metadata.get_u32_opt(&format!("{arch}.pooling_type"))? {
            None => fallback,
            Some(id) => Pooling::from_llama_id(id).ok_or_else(|| {
                EmbedError::Config(format!(
                    "{arch}.pooling_type {id} is not an embedding pooling"
                ))
            })?,
        };
        let normalize = g
            .metadata
            .get_bool_opt(KEY_NORMALIZE)?
            .unwrap_or(normalize_default);
        Ok(Self { pooling, normalize })
    }
}

/// Whether sentence-transformers' `modules.json` lists a `Normalize` module.
pub fn modules_normalize(modules_json: &str) -> Result<bool, EmbedError> {
    let v: serde_json::Value = serde_json::from_str(modules_json)
        .map_err(|e| EmbedError::Config(format!("modules.json: {e}")))?;
    let list = v
        .as_array()
        .ok_or_else(|| EmbedError::Config("modules.json is not an array".into()))?;
    Ok(list.iter().any(|m| {
        m.get("type")
            .and_then(|t| t.as_str())
            .is_some_and(|t| t.rsplit('.').next() == Some("Normalize"))
    }))
}

/// Per-call overrides.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EmbedOptions {
    /// `None`: the model's default.
    pub pooling: Option<Pooling>,
    /// `None`: the model's default.
    pub normalize: Option<bool>,
    /// Cut inputs longer than the model's positions (keeping the special tokens the
    /// tokenizer adds at both ends) instead of failing.
    pub truncate: bool,
}

/// The embedding of one input.
#[derive(Clone, Debug, PartialEq)]
pub struct Embedding {
    /// The token ids the model saw (after any truncation).
    pub ids: Vec<u32>,
    pub dim: usize,
    /// One vector (pooled) or one per token ([`Pooling::None`]), `dim` floats each.
    pub values: Vec<f32>,
    /// Whether the input was truncated.
    pub truncated: bool,
}

impl Embedding {
    pub fn n_vectors(&self) -> usize {
        self.values.len() / self.dim.max(1)
    }

    pub fn vectors(&self) -> std::slice::ChunksExact<'_, f32> {
        self.values.chunks_exact(self.dim.max(1))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error("invalid model file: {0}")]
    Gguf(#[from] GgufError),
    #[error("invalid safetensors file: {0}")]
    Safetensors(#[from] SafetensorsError),
    #[error("unsupported or invalid model: {0}")]
    Model(#[from] ModelError),
    #[error("tokenizer: {0}")]
    Tokenizer(#[from] TokenizerError),
    #[error("model configuration: {0}")]
    Config(String),
    #[error("input {index} has no tokens")]
    EmptyInput { index: usize },
    #[error("input {index} has {n_tokens} tokens, the model takes at most {max} (enable truncation to cut it)")]
    TooLong {
        index: usize,
        n_tokens: usize,
        max: usize,
    },
    #[error("invalid input: {0}")]
    InvalidInput(String),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("architecture '{0}' cannot embed (supported: bert, llama, qwen2, gemma3)")]
    UnsupportedArchitecture(String),
}

/// A model that turns texts into vectors.
pub trait Embedder {
    /// Width of each vector.
    fn dim(&self) -> usize;

    /// Most tokens one input may have (the position limit).
    fn max_tokens(&self) -> usize;

    /// The model's default pooling and normalisation.
    fn default_pooling(&self) -> PoolingConfig;

    fn tokenizer(&self) -> &Tokenizer;

    /// The final hidden states of each token sequence (`len * dim` floats each). The
    /// sequences are already validated (non-empty, within [`Embedder::max_tokens`]).
    fn token_states(&self, seqs: &[Vec<u32>]) -> Result<Vec<Vec<f32>>, EmbedError>;

    /// Tokenizes as llama.cpp's embedding path does (special tokens added and parsed).
    /// Returns the ids and whether they were truncated.
    fn tokenize(&self, text: &str, truncate: bool) -> Result<(Vec<u32>, bool), EmbedError> {
        let tok = self.tokenizer();
        let ids = tok.encode(text, true, true)?;
        let max = self.max_tokens();
        if !truncate || ids.len() <= max {
            return Ok((ids, false));
        }
        // Keep what the tokenizer wraps every input in (e.g. [CLS] ... [SEP]).
        let wrap = tok.encode("", true, true)?;
        let mut prefix = ids.iter().zip(&wrap).take_while(|(a, b)| a == b).count();
        let mut suffix = wrap.len() - prefix;
        if suffix > 0 && !ids.ends_with(&wrap[prefix..]) {
            suffix = 0;
            prefix = 0;
        }
        if prefix + suffix >= max {
            return Err(EmbedError::InvalidInput(format!(
                "cannot truncate to {max} tokens: the special tokens alone take {}",
                prefix + suffix
            )));
        }
        let mut out = ids[..max - suffix].to_vec();
        out.extend_from_slice(&ids[ids.len() - suffix..]);
        Ok((out, true))
    }

    /// Embeds a batch of texts.
    fn embed(&self, texts: &[&str], opts: &EmbedOptions) -> Result<Vec<Embedding>, EmbedError> {
        let mut seqs = Vec::with_capacity(texts.len());
        let mut truncated = Vec::with_capacity(texts.len());
        for t in texts {
            let (ids, cut) = self.tokenize(t, opts.truncate)?;
            seqs.push(ids);
            truncated.push(cut);
        }
        let mut out = self.embed_tokens(seqs, opts)?;
        for (e, cut) in out.iter_mut().zip(truncated) {
            e.truncated = cut;
        }
        Ok(out)
    }

    /// Embeds token sequences (no truncation here: too long is an error).
    fn embed_tokens(
        &self,
        seqs: Vec<Vec<u32>>,
        opts: &EmbedOptions,
    ) -> Result<Vec<Embedding>, EmbedError> {
        let max = self.max_tokens();
        for (index, s) in seqs.iter().enumerate() {
            if s.is_empty() {
                return Err(EmbedError::EmptyInput { index });
            }
            if s.len() > max {
                return Err(EmbedError::TooLong {
                    index,
                    n_tokens: s.len(),
                    max,
                });
            }
        }
        let def = self.default_pooling();
        let pooling = opts.pooling.unwrap_or(def.pooling);
        let normalize = opts.normalize.unwrap_or(def.normalize);
        let dim = self.dim();
        let states = self.token_states(&seqs)?;
        Ok(seqs
            .into_iter()
            .zip(states)
            .map(|(ids, h)| {
                let mut values = pool(&h, dim, None, pooling);
                if normalize {
                    values.chunks_exact_mut(dim).for_each(l2_normalize);
                }
                Embedding {
                    ids,
                    dim,
                    values,
                    truncated: false,
                }
            })
            .collect())
    }
}

/// Pools `states` (`n * dim` floats) over the tokens whose `mask` is set (all when
/// `None`). CLS takes the first token and Last the last unmasked one; None returns
/// every token's state. Means are summed in f64.
pub fn pool(states: &[f32], dim: usize, mask: Option<&[bool]>, pooling: Pooling) -> Vec<f32> {
    let n = states.len() / dim.max(1);
    let on = |i: usize| mask.is_none_or(|m| m.get(i).copied().unwrap_or(false));
    let row = |i: usize| &states[i * dim..(i + 1) * dim];
    match pooling {
        Pooling::None => states.to_vec(),
        Pooling::Cls => states.get(..dim).map(<[f32]>::to_vec).unwrap_or_default(),
        Pooling::Last => (0..n)
            .rev()
            .find(|&i| on(i))
            .map(|i| row(i).to_vec())
            .unwrap_or_default(),
        Pooling::Mean => {
            let mut sum = vec![0f64; dim];
            let mut count = 0usize;
            for i in (0..n).filter(|&i| on(i)) {
                for (s, &v) in sum.iter_mut().zip(row(i)) {
                    *s += v as f64;
                }
                count += 1;
            }
            let c = count.max(1) as f64;
            sum.into_iter().map(|s| (s / c) as f32).collect()
        }
    }
}

/// Divides `v` by its Euclidean norm (by at least 1e-12, as `torch.nn.functional.normalize`).
pub fn l2_normalize(v: &mut [f32]) {
    let norm = v
        .iter()
        .map(|&x| (x as f64) * (x as f64))
        .sum::<f64>()
        .sqrt()
        .max(1e-12);
    for x in v {
        *x = (*x as f64 / norm) as f32;
    }
}

/// Cosine similarity (in f64).
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let (mut ab, mut aa, mut bb) = (0f64, 0f64, 0f64);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (x as f64, y as f64);
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    ab / (aa.sqrt() * bb.sqrt()).max(f64::MIN_POSITIVE)
}

/// Decoders (llama, qwen2, gemma3) embed too: the pooled final normed hidden state, as
/// llama.cpp computes with `--embeddings --pooling mean|last`.
impl Embedder for Engine {
    fn dim(&self) -> usize {
        self.model().cfg.n_embd
    }

    fn max_tokens(&self) -> usize {
        self.model().cfg.n_ctx_train
    }

    fn default_pooling(&self) -> PoolingConfig {
        self.pooling()
    }

    fn tokenizer(&self) -> &Tokenizer {
        Engine::tokenizer(self)
    }

    fn token_states(&self, seqs: &[Vec<u32>]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let model = self.model();
        seqs.iter()
            .map(|ids| {
                let mut s = model.new_session(ids.len());
                Ok(model.hidden_states(&mut s, ids)?)
            })
            .collect()
    }
}

/// Loads any embedding-capable GGUF model: `bert` as an encoder, every decoder
/// architecture ([`Architecture`]) as a pooled decoder. `header` holds the GGUF header; `weights` the file's bytes.
pub fn load_gguf_embedder<S: ByteSource + ?Sized>(
    header: &S,
    weights: Box<dyn WeightMemory>,
) -> Result<Box<dyn Embedder>, EmbedError> {
    let g = Gguf::read_header(header)?;
    match g.architecture()? {
        "bert" => Ok(Box::new(crate::bert::BertEmbedder::from_gguf(&g, weights)?)),
        a if Architecture::from_name(a).is_some() => Ok(Box::new(Engine::from_gguf(&g, weights)?)),
        other => Err(EmbedError::UnsupportedArchitecture(other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooling_modes() {
        let h = [1.0f32, 2.0, 3.0, 4.0, 5.0, 9.0];
        assert_eq!(pool(&h, 2, None, Pooling::Mean), [3.0, 5.0]);
        assert_eq!(pool(&h, 2, None, Pooling::Cls), [1.0, 2.0]);
        assert_eq!(pool(&h, 2, None, Pooling::Last), [5.0, 9.0]);
        assert_eq!(pool(&h, 2, None, Pooling::None), h);
        let m = [true, true, false];
        assert_eq!(pool(&h, 2, Some(&m), Pooling::Mean), [2.0, 3.0]);
        assert_eq!(pool(&h, 2, Some(&m), Pooling::Last), [3.0, 4.0]);
        let mut v = [3.0f32, 4.0];
        l2_normalize(&mut v);
        assert_eq!(v, [0.6, 0.8]);
        assert!((cosine(&[1.0, 0.0], &[1.0, 1.0]) - std::f64::consts::FRAC_1_SQRT_2).abs() < 1e-12);
    }

    #[test]
    fn sentence_transformers_config() {
        let mean = r#"{"word_embedding_dimension": 384, "pooling_mode_cls_token": false,
            "pooling_mode_mean_tokens": true, "pooling_mode_max_tokens": false,
            "pooling_mode_mean_sqrt_len_tokens": false}"#;
        let modules = r#"[{"idx":0,"name":"0","path":"","type":"sentence_transformers.models.Transformer"},
            {"idx":2,"name":"2","path":"2_Normalize","type":"sentence_transformers.models.Normalize"}]"#;
        let c = PoolingConfig::from_sentence_transformers(mean, Some(modules)).unwrap();
        assert_eq!(
            c,
            PoolingConfig {
                pooling: Pooling::Mean,
                normalize: true
            }
        );
        let c =
            PoolingConfig::from_sentence_transformers(r#"{"pooling_mode_cls_token": true}"#, None)
                .unwrap();
        assert_eq!(
            c,
            PoolingConfig {
                pooling: Pooling::Cls,
                normalize: false
            }
        );
        assert!(PoolingConfig::from_sentence_transformers(
            r#"{"pooling_mode_max_tokens": true}"#,
            None
        )
        .is_err());
        assert!(PoolingConfig::from_sentence_transformers(
            r#"{"pooling_mode_cls_token": true, "pooling_mode_mean_tokens": true}"#,
            None
        )
        .is_err());
        assert!(PoolingConfig::from_sentence_transformers("{", None).is_err());
    }
}
