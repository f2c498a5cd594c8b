//! wasm-chord's engine: pure Rust, no host or WASI dependencies, so that it builds
//! natively (tests, benchmarks) and for `wasm32-wasip2` (the component).

pub mod gguf;
pub mod quant;
