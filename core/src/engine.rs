//! The engine facade that every surface (the component, the CLI, the HTTP handler)
//! drives: load a GGUF model, tokenize, generate (streaming), evaluate logits.

use crate::eval::{self, EvalResult};
use crate::gguf::{ByteSource, Gguf, GgufError};
use crate::model::{DecoderModel, Logits, ModelError, Session};
use crate::pooling::{Pooling, PoolingConfig};
use crate::sampler::{Sampler, SamplerError, SamplingParams};
use crate::tokenizer::{Tokenizer, TokenizerError};
use crate::weights::WeightMemory;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("invalid model file: {0}")]
    Gguf(#[from] GgufError),
    #[error("unsupported or invalid model: {0}")]
    Model(ModelError),
    #[error("tokenizer: {0}")]
    Tokenizer(#[from] TokenizerError),
    #[error("invalid sampling parameters: {0}")]
    Sampler(#[from] SamplerError),
    #[error("context overflow: {needed} tokens needed, the context holds {n_ctx}")]
    ContextOverflow { needed: usize, n_ctx: usize },
    #[error("invalid input: {0}")]
    InvalidInput(String),
    #[error("invalid model metadata: {0}")]
    Metadata(String),
}

impl From<ModelError> for EngineError {
    fn from(e: ModelError) -> Self {
        match e {
            ModelError::ContextOverflow { needed, n_ctx } => {
                Self::ContextOverflow { needed, n_ctx }
            }
            ModelError::InvalidToken { .. } | ModelError::EmptyInput => {
                Self::InvalidInput(e.to_string())
            }
            ModelError::Gguf(g) => Self::Gguf(g),
            other => Self::Model(other),
        }
    }
}

/// What a model is, for `model-info` and `/v1/models`.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelInfo {
    pub name: Option<String>,
    pub architecture: String,
    pub context_length: u32,
    pub vocab_size: u32,
    pub embedding_length: u32,
    pub layer_count: u32,
    /// llama.cpp's name for `general.file_type` (e.g. `Q4_K_M`), else the commonest tensor type.
    pub quantization: String,
    pub parameter_count: u64,
    /// Bytes of tensor data.
    pub weights_bytes: u64,
}

/// Why a generation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinishReason {
    /// An end-of-generation token (eos, eot, ...).
    Stop,
    /// `max_tokens` reached, or the context is full.
    Length,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
}

pub struct Engine {
    model: DecoderModel,
    tokenizer: Tokenizer,
    info: ModelInfo,
    /// How [`crate::pooling::Embedder`] pools hidden states by default: the GGUF's
    /// `<arch>.pooling_type`, else mean, as llama.cpp's `--embeddings`.
    pooling: PoolingConfig,
}

impl Engine {
    /// Parses the GGUF header from `header` and builds the model over `weights`, which
    /// holds the file's bytes at their file offsets.
    pub fn load(
        header: &dyn ByteSource,
        weights: Box<dyn WeightMemory>,
    ) -> Result<Self, EngineError> {
        Self::from_gguf(&Gguf::read_header(header)?, weights)
    }

    /// Builds the model from an already parsed header.
    pub fn from_gguf(g: &Gguf, weights: Box<dyn WeightMemory>) -> Result<Self, EngineError> {
        let model = DecoderModel::load(g, weights)?;
        let tokenizer = Tokenizer::from_gguf(g)?;
        let cfg = &model.cfg;
        let info = ModelInfo::describe(
            g,
            cfg.arch.name(),
            cfg.n_ctx_train,
            cfg.vocab_size,
            cfg.n_embd,
            cfg.n_layer,
        );
        let pooling = PoolingConfig::from_gguf(g, Pooling::Mean, false)
            .map_err(|e| EngineError::Metadata(e.to_string()))?;
        Ok(Self {
            model,
            tokenizer,
            info,
            pooling,
        })
    }

    /// The default pooling for embeddings.
    pub fn pooling(&self) -> PoolingConfig {
        self.pooling
    }

    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    pub fn model(&self) -> &DecoderModel {
        &self.model
    }

    pub fn tokenize(
        &self,
        text: &str,
        add_special: bool,
        parse_special: bool,
    ) -> Result<Vec<u32>, EngineError> {
        Ok(self.tokenizer.encode(text, add_special, parse_special)?)
    }

    pub fn detokenize(&self, ids: &[u32]) -> Result<String, EngineError> {
        Ok(self.tokenizer.decode(ids, false)?)
    }

    /// Tokenizes `prompt` (special tokens added and parsed) and runs the prompt through
    /// the model. Text then comes from [`Generation::next_chunk`].
    pub fn start_generation(
        &self,
        prompt: &str,
        params: &SamplingParams,
    ) -> Result<Generation, EngineError> {
        let ids = self.tokenize(prompt, true, true)?;
        self.start_generation_ids(&ids, params)
    }

    /// Like [`Engine::start_generation`], from token ids.
    pub fn start_generation_ids(
        &self,
        ids: &[u32],
        params: &SamplingParams,
    ) -> Result<Generation, EngineError> {
        params.validate()?;
        if ids.is_empty() {
            return Err(EngineError::InvalidInput("the prompt has no tokens".into()));
        }
        let n_ctx_train = self.model.cfg.n_ctx_train;
        if ids.len() >= n_ctx_train {
            return Err(EngineError::ContextOverflow {
                needed: ids.len() + 1,
                n_ctx: n_ctx_train,
            });
        }
        let mut session = self
            .model
            .new_session(ids.len() + params.max_tokens as usize);
        let logits = self.model.forward(&mut session, ids, Logits::Last)?;
        let mut sampler = Sampler::new(params)?;
        for &t in ids {
            sampler.accept(t);
        }
        Ok(Generation {
            session,
            sampler,
            logits,
            max_tokens: params.max_tokens,
            usage: Usage {
                prompt_tokens: ids.len() as u32,
                completion_tokens: 0,
            },
            pending: Vec::new(),
            finish: None,
            tokens: Vec::new(),
        })
    }

    /// Runs a whole generation and returns its text.
    pub fn generate(
        &self,
        prompt: &str,
        params: &SamplingParams,
    ) -> Result<(String, FinishReason, Usage), EngineError> {
        let mut g = self.start_generation(prompt, params)?;
        let mut text = String::new();
        while let Some(chunk) = g.next_chunk(self)? {
            text.push_str(&chunk);
        }
        Ok((
            text,
            g.finish_reason().unwrap_or(FinishReason::Length),
            g.usage(),
        ))
    }

    /// Prompt logits and a greedy continuation, summarised as top-k (see [`eval`]).
    pub fn eval_logits(
        &self,
        ids: &[u32],
        greedy_steps: usize,
        top_k: usize,
    ) -> Result<EvalResult, EngineError> {
        if ids.is_empty() {
            return Err(EngineError::InvalidInput("no prompt tokens".into()));
        }
        Ok(eval::evaluate(&self.model, ids, greedy_steps, top_k)?)
    }
}

/// A generation in progress. It owns its state (KV cache, sampler), so a host can keep
/// it between calls; each step borrows the engine.
pub struct Generation {
    session: Session,
    sampler: Sampler,
    /// Logits for the next token.
    logits: Vec<f32>,
    max_tokens: u32,
    usage: Usage,
    /// Bytes of an incomplete UTF-8 sequence, held back until the next token completes it.
    pending: Vec<u8>,
    finish: Option<FinishReason>,
    tokens: Vec<u32>,
}

impl Generation {
    /// The next piece of text, or `None` once finished. Never splits a UTF-8 character.
    pub fn next_chunk(&mut self, engine: &Engine) -> Result<Option<String>, EngineError> {
        loop {
            if self.finish.is_some() {
                return Ok(self.flush());
            }
            let token = self.sampler.sample_and_accept(&self.logits)?;
            if engine.tokenizer.is_eog(token) {
                self.finish = Some(FinishReason::Stop);
                continue;
            }
            self.usage.completion_tokens += 1;
            self.tokens.push(token);
            let piece = engine.tokenizer.token_to_piece(token, false)?;
            self.pending.extend_from_slice(&piece);
            if self.usage.completion_tokens >= self.max_tokens
                || self.session.pos() >= self.session.n_ctx()
            {
                self.finish = Some(FinishReason::Length);
            } else {
                self.logits = engine
                    .model
                    .forward(&mut self.session, &[token], Logits::Last)?;
            }
            if let Some(text) = self.take_complete_utf8() {
                return Ok(Some(text));
            }
        }
    }

    pub fn finish_reason(&self) -> Option<FinishReason> {
        self.finish
    }

    pub fn usage(&self) -> Usage {
        self.usage
    }

    /// The tokens generated so far.
    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }

    /// Removes and returns the longest complete UTF-8 prefix of `pending` (invalid
    /// sequences become U+FFFD), or `None` if there is none yet.
    fn take_complete_utf8(&mut self) -> Option<String> {
        let mut out = String::new();
        let mut rest = self.pending.as_slice();
        loop {
            match std::str::from_utf8(rest) {
                Ok(s) => {
                    out.push_str(s);
                    rest = &[];
                    break;
                }
                Err(e) => {
                    let (valid, tail) = rest.split_at(e.valid_up_to());
                    out.push_str(std::str::from_utf8(valid).unwrap_or_default());
                    match e.error_len() {
                        Some(n) => {
                            out.push('\u{FFFD}');
                            rest = &tail[n..];
                        }
                        None => {
                            rest = tail;
                            break;
                        }
                    }
                }
            }
        }
        self.pending = rest.to_vec();
        (!out.is_empty()).then_some(out)
    }

    /// At the end: whatever is left, an incomplete sequence as U+FFFD.
    fn flush(&mut self) -> Option<String> {
        if self.pending.is_empty() {
            return None;
        }
        let text = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        Some(text)
    }
}

impl ModelInfo {
    /// Name, quantization and sizes from the header; the shape from the model's
    /// parsed configuration (any architecture, decoder or encoder).
    pub fn describe(
        g: &Gguf,
        architecture: &str,
        context_length: usize,
        vocab_size: usize,
        embedding_length: usize,
        layer_count: usize,
    ) -> Self {
        let md = &g.metadata;
        let quantization = md
            .get_u32("general.file_type")
            .ok()
            .and_then(file_type_name)
            .map(str::to_string)
            .unwrap_or_else(|| commonest_type(g));
        ModelInfo {
            name: md.get_str("general.name").ok().map(str::to_string),
            architecture: architecture.to_string(),
            context_length: context_length as u32,
            vocab_size: vocab_size as u32,
            embedding_length: embedding_length as u32,
            layer_count: layer_count as u32,
            quantization,
            parameter_count: g.tensors.iter().map(|t| t.n_elements()).sum(),
            weights_bytes: g.tensors.iter().map(|t| t.size_bytes).sum(),
        }
    }
}

/// llama.cpp's `llama_ftype` names.
fn file_type_name(ftype: u32) -> Option<&'static str> {
    Some(match ftype {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        7 => "Q8_0",
        8 => "Q5_0",
        9 => "Q5_1",
        10 => "Q2_K",
        11 => "Q3_K_S",
        12 => "Q3_K_M",
        13 => "Q3_K_L",
        14 => "Q4_K_S",
        15 => "Q4_K_M",
        16 => "Q5_K_S",
        17 => "Q5_K_M",
        18 => "Q6_K",
        32 => "BF16",
        _ => return None,
    })
}

fn commonest_type(g: &Gguf) -> String {
    let mut bytes = std::collections::HashMap::new();
    for t in &g.tensors {
        *bytes.entry(t.ty).or_insert(0u64) += t.size_bytes;
    }
    bytes
        .into_iter()
        .max_by_key(|&(_, b)| b)
        .map_or_else(|| "unknown".into(), |(ty, _)| ty.name().to_uppercase())
}
