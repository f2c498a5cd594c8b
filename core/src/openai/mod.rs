//! The OpenAI-compatible HTTP API (`/v1/completions`, `/v1/chat/completions`,
//! `/v1/embeddings`, `/v1/models`, `/health`), free of any HTTP stack so that it is
//! tested natively; the `wasi:http` component only moves bytes in and out.

pub mod error;
pub mod request;
pub mod response;
pub mod service;
pub mod sse;
pub mod stop;

pub use error::ApiError;
pub use service::{route, ModelSource, ResponseSink, Route, Service, MAX_BODY_BYTES};
