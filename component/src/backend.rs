//! The model behind the WIT exports: loading (header, weights memory) and the calls
//! into `chord_core`'s engine.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};

use chord_core::bert::BertEmbedder;
use chord_core::engine::{self, Engine, EngineError};
use chord_core::eval::TopLogits;
use chord_core::gguf::Gguf;
use chord_core::pooling::{self, EmbedError, Embedder};
use chord_core::sampler;
use chord_core::weights::WeightMemory;

use crate::exports::wasm_chord::llm::parity::{EvalResult, GreedyStep, Position};
use crate::memory::{self, WasmWeights};
#[cfg(feature = "packed")]
use crate::packed::open_model;
#[cfg(not(feature = "packed"))]
use crate::source::open_model;
use crate::wasm_chord::llm::types::{
    EmbedOptions, Embedding, Embeddings, Error, FinishReason, ModelInfo, Pooling, SamplingParams,
    Usage,
};

/// Distinguishes loads, so that a generation never runs on another model than the
/// one it started on (after `select-model`).
static LOADS: AtomicU64 = AtomicU64::new(0);

/// What a GGUF file turns into: decoders generate (and embed), encoders only embed.
enum Model {
    Decoder(Engine),
    Encoder(BertEmbedder),
}

pub struct Loaded {
    model: Model,
    weights: WasmWeights,
    info: ModelInfo,
    id: u64,
}

/// Errors while loading: every engine error means the file is unusable.
fn load_error(e: impl std::fmt::Display) -> Error {
    Error::UnsupportedModel(e.to_string())
}

/// Errors while serving a request.
fn request_error(e: EngineError) -> Error {
    match e {
        EngineError::ContextOverflow { .. } => Error::ContextOverflow(e.to_string()),
        EngineError::InvalidInput(_) | EngineError::Sampler(_) | EngineError::Tokenizer(_) => {
            Error::InvalidInput(e.to_string())
        }
        EngineError::Gguf(_) | EngineError::Model(_) | EngineError::Metadata(_) => {
            Error::Runtime(e.to_string())
        }
    }
}

impl Loaded {
    /// Opens the model `name` (through the `weights` import, or the shard memories
    /// of a packed component), checks its header and builds the engine.
    pub fn load(name: &str) -> Result<Self, Error> {
        let trace = std::env::var_os("WASM_CHORD_TRACE").is_some();
        let t0 = std::time::Instant::now();
        let (src, weights) = open_model(name)?;
        let t_copy = t0.elapsed();
        // The header is parsed from `src`; the tensors are read from the weights memory.
        let header = Gguf::read_header(&src).map_err(load_error)?;
        let (model, info) = match header.architecture().map_err(load_error)? {
            "bert" => {
                let b = BertEmbedder::from_gguf(&header, Box::new(weights.clone()))
                    .map_err(load_error)?;
                let c = &b.model.cfg;
                let info = engine::ModelInfo::describe(
                    &header,
                    "bert",
                    c.n_ctx_train,
                    c.n_vocab,
                    c.n_embd,
                    c.n_layer,
                );
                (Model::Encoder(b), info)
            }
            _ => {
                let e =
                    Engine::from_gguf(&header, Box::new(weights.clone())).map_err(load_error)?;
                let info = e.info().clone();
                (Model::Decoder(e), info)
            }
        };
        if trace {
            eprintln!(
                "[wasm-chord guest] model {name:?}: {} MiB of weights ready in {t_copy:.2?}, \
                 engine built in {:.2?}",
                weights.len() >> 20,
                t0.elapsed() - t_copy
            );
        }
        let info = to_wit_info(&info, weights.len());
        let id = LOADS.fetch_add(1, Ordering::Relaxed) + 1;
        Ok(Self {
            model,
            weights,
            info,
            id,
        })
    }

    pub fn info(&self) -> ModelInfo {
        self.info.clone()
    }

    /// The decoder, for the calls only decoders serve.
    fn engine(&self) -> Result<&Engine, Error> {
        match &self.model {
            Model::Decoder(e) => Ok(e),
            Model::Encoder(_) => Err(Error::UnsupportedModel(format!(
                "'{}' is an embedding model: it can embed and tokenize, not generate",
                self.info.architecture
            ))),
        }
    }

    fn embedder(&self) -> &dyn Embedder {
        match &self.model {
            Model::Decoder(e) => e,
            Model::Encoder(b) => b,
        }
    }

    pub fn tokenize(
        &mut self,
        text: &str,
        add_special: bool,
        parse_special: bool,
    ) -> Result<Vec<u32>, Error> {
        self.embedder()
            .tokenizer()
            .encode(text, add_special, parse_special)
            .map_err(|e| Error::InvalidInput(e.to_string()))
    }

    pub fn detokenize(&mut self, tokens: &[u32]) -> Result<String, Error> {
        let vocab = self.info.vocab_size;
        if let Some(bad) = tokens.iter().find(|&&t| t >= vocab) {
            return Err(Error::InvalidInput(format!(
                "token id {bad} is outside the vocabulary ({vocab} tokens)"
            )));
        }
        self.embedder()
            .tokenizer()
            .decode(tokens, false)
            .map_err(|e| Error::InvalidInput(e.to_string()))
    }

    pub fn start(&mut self, prompt: &str, params: &SamplingParams) -> Result<Stream, Error> {
        let params = self.sampling_params(params)?;
        let generation = self
            .engine()?
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

    pub fn embed(&mut self, texts: &[String], opts: EmbedOptions) -> Result<Embeddings, Error> {
        let e = self.embedder();
        let opts = pooling::EmbedOptions {
            pooling: opts.pooling.map(from_wit_pooling),
            normalize: opts.normalize,
            truncate: opts.truncate,
        };
        let def = e.default_pooling();
        let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
        let data = e.embed(&texts, &opts).map_err(embed_error)?;
        Ok(Embeddings {
            dim: e.dim() as u32,
            pooling: to_wit_pooling(opts.pooling.unwrap_or(def.pooling)),
            normalized: opts.normalize.unwrap_or(def.normalize),
            data: data
                .into_iter()
                .map(|d| Embedding {
                    ids: d.ids,
                    values: d.values,
                    truncated: d.truncated,
                })
                .collect(),
        })
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
            .engine()?
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
        chord_core::throughput::run_tokens(self.engine()?.model(), ids, steps as usize)
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

/// Bad texts are the caller's fault; anything else means the model is unusable.
fn embed_error(e: EmbedError) -> Error {
    match e {
        EmbedError::EmptyInput { .. }
        | EmbedError::TooLong { .. }
        | EmbedError::InvalidInput(_)
        | EmbedError::Tokenizer(_) => Error::InvalidInput(e.to_string()),
        EmbedError::Engine(e) => request_error(e),
        other => Error::Runtime(other.to_string()),
    }
}

fn from_wit_pooling(p: Pooling) -> pooling::Pooling {
    match p {
        Pooling::Mean => pooling::Pooling::Mean,
        Pooling::Cls => pooling::Pooling::Cls,
        Pooling::Last => pooling::Pooling::Last,
        Pooling::None => pooling::Pooling::None,
    }
}

fn to_wit_pooling(p: pooling::Pooling) -> Pooling {
    match p {
        pooling::Pooling::Mean => Pooling::Mean,
        pooling::Pooling::Cls => Pooling::Cls,
        pooling::Pooling::Last => Pooling::Last,
        pooling::Pooling::None => Pooling::None,
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
            .next_chunk(model.engine()?)
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
