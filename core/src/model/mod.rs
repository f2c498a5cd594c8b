//! Model architectures. `decoder` is the llama-family forward pass (llama, qwen2, gemma3).

mod config;
mod decoder;
mod kv_cache;

pub use config::{Architecture, DecoderConfig, RopeStyle, SlidingWindow};
pub use decoder::{DecoderModel, Logits, Session};
pub use kv_cache::KvCache;

use crate::gguf::GgufError;
use crate::quant::{GgmlType, QuantError};

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error(transparent)]
    Gguf(#[from] GgufError),
    #[error(transparent)]
    Quant(#[from] QuantError),
    #[error("architecture '{0}' is not supported (supported: llama, qwen2, gemma3)")]
    UnsupportedArchitecture(String),
    #[error("invalid model configuration: {0}")]
    BadConfig(String),
    #[error("tensor '{0}' is missing")]
    MissingTensor(String),
    #[error("tensor '{name}' has shape {found:?}, expected {expected:?}")]
    BadShape {
        name: String,
        expected: Vec<u64>,
        found: Vec<u64>,
    },
    #[error("tensor '{name}' has type {ty}, which cannot be used there")]
    BadType { name: String, ty: GgmlType },
    #[error("tensor '{name}' lies outside the weight memory ({end} > {len} bytes)")]
    WeightsOutOfRange { name: String, end: u64, len: u64 },
    #[error("context overflow: {needed} tokens needed, the context holds {n_ctx}")]
    ContextOverflow { needed: usize, n_ctx: usize },
    #[error("token id {token} is outside the vocabulary ({vocab} tokens)")]
    InvalidToken { token: u32, vocab: usize },
    #[error("empty input: at least one token is needed")]
    EmptyInput,
}
