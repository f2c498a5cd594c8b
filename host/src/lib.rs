//! wasm-chord host library.
pub mod runtime;
pub mod serve;
