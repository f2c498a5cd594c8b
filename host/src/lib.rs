//! wasm-chord host library.
pub mod runtime;
