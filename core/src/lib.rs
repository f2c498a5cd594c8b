//! wasm-chord's engine: pure Rust, no host or WASI dependencies, so that it builds
//! natively (tests, benchmarks) and for `wasm32-wasip2` (the component).

pub mod bert;
pub mod chat;
pub mod engine;
pub mod eval;
pub mod gguf;
pub mod math;
pub mod model;
pub mod openai;
pub mod ops;
pub mod pooling;
pub mod quant;
pub mod requantize;
pub mod safetensors;
pub mod sampler;
pub mod synth;
pub mod throughput;
pub mod tokenizer;
pub mod weights;
