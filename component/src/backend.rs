//! The model behind the WIT exports: loading (header, weights memory) and the calls
//! into `chord_core`'s engine.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};

use chord_core::engine::{self, Engine, EngineError};
use chord_core::eval::TopLogits;
use chord_core::gguf::ByteSource;
use chord_core::sampler;
use chord_core::weights::WeightMemory;

use crate::exports::wasm_chord::llm::parity::{EvalResult, GreedyStep, Position};
use crate::memory::{self, WasmWeights};
use crate::source::BlobSource;
use crate::wasm_chord::llm::types::{Error, FinishReason, ModelInfo, SamplingParams, Usage};
use crate::wasm_chord::llm::weights;

/// Distinguishes loads, so that a generation never runs on another model than the
/// one it started on (after `select-model`).
static LOADS: AtomicU64 = AtomicU64::new(0);

pub struct Loaded {
    engine: Engine,
    weights: WasmWeights,
    info: ModelInfo,
    id: u64,
}

/// Errors while loading: every engine error means the file is unusable.
fn load_error(e: EngineError) -> Error {
    Error::UnsupportedModel(e.to_string())
}

/// Errors while serving a request.
fn request_error(e: EngineError) -> Error {
    match e {
        EngineError::ContextOverflow { .. } => Error::ContextOverflow(e.to_string()),
        EngineError::InvalidInput(_) | EngineError::Sampler(_) | EngineError::Tokenizer(_) => {
            Error::InvalidInput(e.to_string())
        }
        EngineError::Gguf(_) | EngineError::Model(_) => Error::Runtime(e.to_string()),
    }
}

impl Loaded {
    /// Opens the model `name` through the `weights` import, checks its header,
    /// copies it into the weights memory and builds the engine.
    pub fn load(name: &str) -> Result<Self, Error> {
        let blob = weights::open(name).ok_or(Error::ModelNotFound)?;
        let src = BlobSource::new(blob);
        // Refuse what is not GGUF before growing the weights memory.
        let mut magic = [0u8; 4];
        if src.read_at(0, &mut magic).is_err() || &magic != b"GGUF" {
            return Err(Error::UnsupportedModel(format!(
                "not a GGUF file (magic {magic:02x?})"
            )));
        }
        let trace = std::env::var_os("WASM_CHORD_TRACE").is_some();
        let t0 = std::time::Instant::now();
        let weights = src.copy_into_weights_memory()?;
        let t_copy = t0.elapsed();
        // The header is parsed through the import (windowed reads); the tensors are
        // read from the weights memory.
        let engine = Engine::load(&src, Box::new(weights)).map_err(load_error)?;
        if trace {
            eprintln!(
                "[wasm-chord guest] model {name:?}: {} MiB copied into the weights memory in {t_copy:.2?}, \
                 engine built in {:.2?}",
                src.len() >> 20,
                t0.elapsed() - t_copy
            );
        }
        let info = to_wit_info(engine.info(), weights.len());
        let id = LOADS.fetch_add(1, Ordering::Relaxed) + 1;
        Ok(Self {
            engine,
            weights,
            info,
            id,
        })
    }

    pub fn info(&self) -> ModelInfo {
        self.info.clone()
    }

    pub fn tokenize(
        &mut self,
        text: &str,
        add_special: bool,
        parse_special: bool,
    ) -> Result<Vec<u32>, Error> {
        self.engine
            .tokenize(text, add_special, parse_special)
            .map_err(request_error)
    }

    pub fn detokenize(&mut self, tokens: &[u32]) -> Result<String, Error> {
        let vocab = self.info.vocab_size;
        if let Some(bad) = tokens.iter().find(|&&t| t >= vocab) {
            return Err(Error::InvalidInput(format!(
                "token id {bad} is outside the vocabulary ({vocab} tokens)"
            )));
        }
        self.engine.detokenize(tokens).map_err(request_error)
    }

    pub fn start(&mut self, prompt: &str, params: &SamplingParams) -> Result<Stream, Error> {
        let params = self.sampling_params(params)?;
        let generation = self
            .engine
            .start_generation(prompt, &params)
            .map_err(request_error)?;
        Ok(Stream {
            generation: RefCell::new(generation),
            model: self.id,
        })
    }

    fn sampling_params(&self, p: &SamplingParams) -> Result<sampler::SamplingParams, Error> {
        let d = sampler::SamplingParams::default();
        let out = sampler::SamplingParams {
            temperature: p.temperature.unwrap_or(d.temperature),
            top_k: p.top_k.unwrap_or(d.top_k),
            top_p: p.top_p.unwrap_or(d.top_p),
            min_p: p.min_p.unwrap_or(d.min_p),
            repeat_penalty: p.repeat_penalty.unwrap_or(d.repeat_penalty),
            repeat_last_n: p.repeat_last_n.unwrap_or(d.repeat_last_n),
            frequency_penalty: p.frequency_penalty.unwrap_or(d.frequency_penalty),
            presence_penalty: p.presence_penalty.unwrap_or(d.presence_penalty),
            seed: p.seed.unwrap_or(d.seed),
            max_tokens: p.max_tokens.unwrap_or(d.max_tokens),
        };
        // The KV cache is sized for prompt + max-tokens: an absurd value must not
        // turn into an allocation failure (a trap).
        let n_ctx = self.info.context_length;
        if out.max_tokens > n_ctx {
            return Err(Error::InvalidInput(format!(
                "max-tokens {} exceeds the model's context length ({n_ctx})",
                out.max_tokens
            )));
        }
        out.validate()
            .map_err(|e| Error::InvalidInput(e.to_string()))?;
        Ok(out)
    }

    pub fn embed(&mut self, _texts: &[String]) -> Result<Vec<Vec<f32>>, Error> {
        Err(Error::UnsupportedModel(format!(
            "embeddings are not supported for architecture '{}' yet",
            self.info.architecture
        )))
    }

    pub fn eval_logits(
        &mut self,
        ids: &[u32],
        greedy_steps: u32,
        top_k: u32,
    ) -> Result<EvalResult, Error> {
        let n_ctx = self.info.context_length as u64;
        if ids.len() as u64 + greedy_steps as u64 > n_ctx {
            return Err(Error::ContextOverflow(format!(
                "{} prompt tokens + {greedy_steps} steps exceed the context ({n_ctx})",
                ids.len()
            )));
        }
        if let Some(bad) = ids.iter().find(|&&t| t >= self.info.vocab_size) {
            return Err(Error::InvalidInput(format!(
                "token id {bad} is outside the vocabulary ({} tokens)",
                self.info.vocab_size
            )));
        }
        let top_k = top_k.min(self.info.vocab_size) as usize;
        let r = self
            .engine
            .eval_logits(ids, greedy_steps as usize, top_k)
            .map_err(request_error)?;
        Ok(EvalResult {
            positions: r.positions.into_iter().map(position).collect(),
            greedy: r
                .greedy
                .into_iter()
                .map(|g| GreedyStep {
                    token: g.token,
                    next: position(g.next),
                })
                .collect(),
        })
    }

    pub fn run_tokens(&mut self, ids: &[u32], steps: u32) -> Result<u32, Error> {
        if ids.is_empty() {
            return Err(Error::InvalidInput("no prompt tokens".into()));
        }
        let n_ctx = self.info.context_length as u64;
        if ids.len() as u64 + steps as u64 > n_ctx {
            return Err(Error::ContextOverflow(format!(
                "{} prompt tokens + {steps} steps exceed the context ({n_ctx})",
                ids.len()
            )));
        }
        chord_core::throughput::run_tokens(self.engine.model(), ids, steps as usize)
            .map_err(|e| request_error(e.into()))
    }

    pub fn weights_checksum(&mut self, offset: u64, len: u64) -> Result<u64, Error> {
        offset
            .checked_add(len)
            .filter(|&e| e <= self.weights.len())
            .ok_or_else(|| {
                Error::InvalidInput(format!(
                    "range {offset}+{len} beyond the weights ({} bytes)",
                    self.weights.len()
                ))
            })?;
        Ok(memory::checksum(&self.weights, offset, len))
    }
}

fn position(t: TopLogits) -> Position {
    Position {
        lse: t.lse,
        top: t.top,
    }
}

fn to_wit_info(i: &engine::ModelInfo, file_bytes: u64) -> ModelInfo {
    ModelInfo {
        name: i.name.clone().unwrap_or_default(),
        architecture: i.architecture.clone(),
        context_length: i.context_length,
        vocab_size: i.vocab_size,
        embedding_length: i.embedding_length,
        layer_count: i.layer_count,
        quantization: i.quantization.clone(),
        parameter_count: i.parameter_count,
        weights_bytes: i.weights_bytes,
        file_bytes,
    }
}

/// A generation in progress (the `generation` resource).
pub struct Stream {
    generation: RefCell<engine::Generation>,
    /// `Loaded::id` of the model it runs on.
    model: u64,
}

impl Stream {
    pub fn next(&self, model: &mut Loaded) -> Result<Option<String>, Error> {
        if model.id != self.model {
            return Err(Error::InvalidInput(
                "the model changed since this generation started".into(),
            ));
        }
        self.generation
            .borrow_mut()
            .next_chunk(&model.engine)
            .map_err(request_error)
    }

    pub fn usage(&self) -> Usage {
        let u = self.generation.borrow().usage();
        Usage {
            prompt_tokens: u.prompt_tokens,
            generated_tokens: u.completion_tokens,
        }
    }

    pub fn finish_reason(&self) -> Option<FinishReason> {
        self.generation.borrow().finish_reason().map(|f| match f {
            engine::FinishReason::Stop => FinishReason::Stop,
            engine::FinishReason::Length => FinishReason::Length,
        })
    }
}
