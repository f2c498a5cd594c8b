//! The `wasi:http/proxy` variant (cargo feature `http`, built by `cargo xtask build`
//! into `target/wasm-chord-http.wasm`): an OpenAI-compatible HTTP server that
//! `wasmtime serve`, Spin or `chord serve` instantiate per request.
//!
//! A proxy-world component imports nothing but WASI, so the model comes from the
//! WASI filesystem (see [`model_file`]) instead of the `weights` interface; the
//! protocol itself lives in `chord_core::openai`.

mod handler;
mod model_file;
mod sink;

/// Errors while loading the model (the engine world uses its WIT error type).
#[derive(Debug)]
pub enum Error {
    OutOfMemory(String),
    Read(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::OutOfMemory(m) => write!(f, "out of memory: {m}"),
            Error::Read(m) => f.write_str(m),
        }
    }
}

// The macro takes a plain identifier.
use handler::Handler;
wasip2::http::proxy::export!(Handler);
