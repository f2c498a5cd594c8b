//! wasm-chord host library.
pub mod models;
pub mod native;
pub mod runtime;
pub mod serve;
