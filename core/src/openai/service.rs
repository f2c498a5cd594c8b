//! The HTTP API over one model, independent of the HTTP stack: a host (the
//! `wasi:http` component, a test) reads the request, calls [`Service::handle`] and
//! forwards what it writes to a [`ResponseSink`].

use std::io;

use serde_json::{json, Value};

use super::error::ApiError;
use super::request::{ChatRequest, CompletionRequest, EmbeddingRequest, Generate};
use super::response::{self, Kind, Meta};
use super::sse;
use super::stop::StopMatcher;
use crate::chat::ChatTemplate;
use crate::engine::{Engine, EngineError, FinishReason, Usage};
use crate::gguf::{ByteSource, Gguf};
use crate::pooling::{self, EmbedError, EmbedOptions, Embedder};
use crate::weights::WeightMemory;

/// Largest request body accepted (413 beyond).
pub const MAX_BODY_BYTES: usize = 1 << 20;

pub const JSON: &str = "application/json";

/// Where the response goes. `start` is called exactly once, before any `write`.
pub trait ResponseSink {
    fn start(&mut self, status: u16, content_type: &str) -> io::Result<()>;
    /// Sends `bytes` now (streamed responses depend on it).
    fn write(&mut self, bytes: &[u8]) -> io::Result<()>;
}

/// The model file: its header and, on demand, its bytes as weights.
pub trait ModelSource {
    /// The id clients name in `model` (and `/v1/models` lists).
    fn id(&self) -> &str;
    /// The GGUF file (the header is parsed from it).
    fn header(&self) -> &dyn ByteSource;
    /// The file's bytes at their file offsets; the first call may load them.
    fn weights(&mut self) -> Result<Box<dyn WeightMemory>, String>;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    Health,
    Models,
    Completions,
    Chat,
    Embeddings,
}

/// Maps method and path (query ignored) to a route: 404 for an unknown path, 405
/// for a known one with the wrong method.
pub fn route(method: &str, path: &str) -> Result<Route, ApiError> {
    let path = path.split('?').next().unwrap_or_default();
    let (route, allowed) = match path {
        "/health" => (Route::Health, "GET"),
        "/v1/models" => (Route::Models, "GET"),
        "/v1/completions" => (Route::Completions, "POST"),
        "/v1/chat/completions" => (Route::Chat, "POST"),
        "/v1/embeddings" => (Route::Embeddings, "POST"),
        _ => return Err(ApiError::unknown_route(method, path)),
    };
    if method != allowed {
        return Err(ApiError::method_not_allowed(method, path, allowed));
    }
    Ok(route)
}

/// How a request ended early: with an error the client should get, or because the
/// client went away (nothing more to send).
enum Failure {
    Api(ApiError),
    Gone,
}

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Self {
        Failure::Api(e)
    }
}

impl From<io::Error> for Failure {
    fn from(_: io::Error) -> Self {
        Failure::Gone
    }
}

fn engine_error(e: EngineError) -> ApiError {
    match e {
        EngineError::ContextOverflow { .. } => ApiError::context_length(e.to_string()),
        EngineError::InvalidInput(_) | EngineError::Sampler(_) | EngineError::Tokenizer(_) => {
            ApiError::invalid(e.to_string(), None)
        }
        EngineError::Gguf(_) | EngineError::Model(_) | EngineError::Metadata(_) => {
            ApiError::internal(e.to_string())
        }
    }
}

fn embed_error(e: EmbedError) -> ApiError {
    match e {
        EmbedError::EmptyInput { .. } | EmbedError::InvalidInput(_) => {
            ApiError::invalid(e.to_string(), Some("input"))
        }
        EmbedError::TooLong { .. } => ApiError::context_length(e.to_string()),
        EmbedError::UnsupportedArchitecture(_) => ApiError::invalid(e.to_string(), Some("model")),
        _ => ApiError::internal(e.to_string()),
    }
}

pub struct Service<S> {
    source: S,
    header: Option<Gguf>,
    engine: Option<Engine>,
    template: Option<ChatTemplate>,
    embedder: Option<Box<dyn Embedder>>,
}

impl<S: ModelSource> Service<S> {
    /// Nothing is loaded until a request needs it (`/health` never loads the model).
    pub fn new(source: S) -> Self {
        Self {
            source,
            header: None,
            engine: None,
            template: None,
            embedder: None,
        }
    }

    /// Answers one request. Failures are answered as OpenAI errors; the service
    /// stays usable for the next request.
    pub fn handle(&mut self, method: &str, path: &str, body: &[u8], sink: &mut dyn ResponseSink) {
        if let Err(Failure::Api(e)) = self.dispatch(method, path, body, sink) {
            // If the response had started (a stream), `start` fails and the error
            // was already reported in the stream.
            let _ = send_json(sink, e.status, &e.to_json());
        }
    }

    fn dispatch(
        &mut self,
        method: &str,
        path: &str,
        body: &[u8],
        sink: &mut dyn ResponseSink,
    ) -> Result<(), Failure> {
        let route = route(method, path)?;
        if body.len() > MAX_BODY_BYTES {
            return Err(ApiError::too_large(MAX_BODY_BYTES).into());
        }
        match route {
            Route::Health => send_json(sink, 200, &json!({"status": "ok"})),
            Route::Models => send_json(sink, 200, &response::models(self.source.id())),
            Route::Completions => {
                let r = CompletionRequest::parse(body)?;
                self.check_model(r.gen.model.as_deref())?;
                self.generate(Kind::Completion, &r.prompt, r.gen, sink)
            }
            Route::Chat => {
                let r = ChatRequest::parse(body)?;
                self.check_model(r.gen.model.as_deref())?;
                let prompt =
                    self.chat_template()?
                        .render(&r.messages, true)
                        .map_err(|e| match e {
                            crate::chat::ChatError::Rejected(_) => {
                                ApiError::invalid(e.to_string(), Some("messages"))
                            }
                            crate::chat::ChatError::Template(_) => {
                                ApiError::internal(e.to_string())
                            }
                        })?;
                self.generate(Kind::Chat, &prompt, r.gen, sink)
            }
            Route::Embeddings => {
                let r = EmbeddingRequest::parse(body)?;
                self.check_model(r.model.as_deref())?;
                self.embed(&r.input, sink)
            }
        }
    }

    fn check_model(&self, model: Option<&str>) -> Result<(), ApiError> {
        match model {
            Some(m) if m != self.source.id() => Err(ApiError::unknown_model(m, self.source.id())),
            _ => Ok(()),
        }
    }

    fn header(&mut self) -> Result<&Gguf, ApiError> {
        if self.header.is_none() {
            let g = Gguf::read_header(self.source.header())
                .map_err(|e| ApiError::internal(format!("reading the model header: {e}")))?;
            self.header = Some(g);
        }
        Ok(self.header.as_ref().expect("set above"))
    }

    fn engine(&mut self) -> Result<&Engine, ApiError> {
        if self.engine.is_none() {
            let weights = self.source.weights().map_err(ApiError::internal)?;
            let engine = Engine::load(self.source.header(), weights)
                .map_err(|e| ApiError::internal(format!("loading the model: {e}")))?;
            self.engine = Some(engine);
        }
        Ok(self.engine.as_ref().expect("set above"))
    }

    fn chat_template(&mut self) -> Result<&ChatTemplate, ApiError> {
        if self.template.is_none() {
            let tok = self.engine()?.tokenizer();
            let text = |id: Option<u32>| {
                id.and_then(|i| tok.token_text(i))
                    .unwrap_or_default()
                    .to_string()
            };
            let (bos, eos) = (text(tok.bos()), text(tok.eos()));
            let md = self.header()?.metadata();
            let t = ChatTemplate::from_metadata(md, &bos, &eos)
                .map_err(|e| ApiError::internal(e.to_string()))?;
            self.template = Some(t);
        }
        Ok(self.template.as_ref().expect("set above"))
    }

    fn embedder(&mut self) -> Result<&dyn Embedder, ApiError> {
        if self.embedder.is_none() {
            let weights = self.source.weights().map_err(ApiError::internal)?;
            let e =
                pooling::load_gguf_embedder(self.source.header(), weights).map_err(embed_error)?;
            self.embedder = Some(e);
        }
        Ok(self.embedder.as_deref().expect("set above"))
    }

    fn embed(&mut self, input: &[String], sink: &mut dyn ResponseSink) -> Result<(), Failure> {
        let texts: Vec<&str> = input.iter().map(String::as_str).collect();
        let out = self
            .embedder()?
            .embed(&texts, &EmbedOptions::default())
            .map_err(embed_error)?;
        let tokens = out.iter().map(|e| e.ids.len()).sum();
        let vectors: Vec<Vec<f32>> = out.into_iter().map(|e| e.values).collect();
        let id = self.source.id().to_string();
        send_json(sink, 200, &response::embeddings(&id, &vectors, tokens))
    }

    fn generate(
        &mut self,
        kind: Kind,
        prompt: &str,
        mut gen: Generate,
        sink: &mut dyn ResponseSink,
    ) -> Result<(), Failure> {
        let meta = Meta::new(kind, self.source.id());
        let engine = self.engine()?;
        let ids = engine.tokenize(prompt, true, true).map_err(engine_error)?;
        let n_ctx = engine.info().context_length as usize;
        if ids.len() >= n_ctx {
            return Err(ApiError::context_length(format!(
                "the prompt has {} tokens; the model's context holds {n_ctx}",
                ids.len()
            ))
            .into());
        }
        let room = (n_ctx - ids.len()) as u32;
        if gen.params.max_tokens > room {
            if gen.max_tokens_requested {
                return Err(ApiError::context_length(format!(
                    "{} prompt tokens + max_tokens {} exceed the model's context of {n_ctx} tokens",
                    ids.len(),
                    gen.params.max_tokens
                ))
                .into());
            }
            gen.params.max_tokens = room;
        }
        let mut g = engine
            .start_generation_ids(&ids, &gen.params)
            .map_err(engine_error)?;
        let mut stop = StopMatcher::new(gen.stop);
        if gen.stream {
            sink.start(200, sse::CONTENT_TYPE)?;
            let mut first = true;
            let mut emit = |sink: &mut dyn ResponseSink, text: &str| -> io::Result<()> {
                if text.is_empty() && !(first && kind == Kind::Chat) {
                    return Ok(());
                }
                let c = response::chunk(kind, &meta, Some(text), first, None);
                first = false;
                sink.write(sse::event(&c).as_bytes())
            };
            // The assistant role comes first, before any (slow) token.
            if kind == Kind::Chat {
                emit(sink, "")?;
            }
            let outcome = run(engine, &mut g, &mut stop, |t| emit(sink, t));
            match outcome {
                Ok(finish) => {
                    emit(sink, &stop.finish())?;
                    let last = response::chunk(kind, &meta, None, false, Some(finish));
                    sink.write(sse::event(&last).as_bytes())?;
                    if gen.include_usage {
                        let u = response::usage_chunk(kind, &meta, g.usage());
                        sink.write(sse::event(&u).as_bytes())?;
                    }
                }
                Err(Failure::Api(e)) => sink.write(sse::event(&e.to_json()).as_bytes())?,
                Err(Failure::Gone) => return Err(Failure::Gone),
            }
            sink.write(sse::DONE.as_bytes())?;
            Ok(())
        } else {
            let mut text = String::new();
            let finish = run(engine, &mut g, &mut stop, |t| {
                text.push_str(t);
                Ok(())
            })?;
            text.push_str(&stop.finish());
            let usage: Usage = g.usage();
            send_json(
                sink,
                200,
                &response::full(kind, &meta, &text, finish, usage),
            )
        }
    }
}

/// Generates until the end, a stop string or a failed `emit`, passing on the text
/// the stop matcher releases.
fn run(
    engine: &Engine,
    g: &mut crate::engine::Generation,
    stop: &mut StopMatcher,
    mut emit: impl FnMut(&str) -> io::Result<()>,
) -> Result<FinishReason, Failure> {
    while let Some(chunk) = g.next_chunk(engine).map_err(engine_error)? {
        emit(&stop.push(&chunk))?;
        if stop.stopped() {
            return Ok(FinishReason::Stop);
        }
    }
    Ok(g.finish_reason().unwrap_or(FinishReason::Length))
}

fn send_json(sink: &mut dyn ResponseSink, status: u16, v: &Value) -> Result<(), Failure> {
    sink.start(status, JSON)?;
    sink.write(v.to_string().as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(route("GET", "/health"), Ok(Route::Health));
        assert_eq!(route("GET", "/v1/models?x=1"), Ok(Route::Models));
        assert_eq!(route("POST", "/v1/chat/completions"), Ok(Route::Chat));
        assert_eq!(route("POST", "/v1/completions"), Ok(Route::Completions));
        assert_eq!(route("POST", "/v1/embeddings"), Ok(Route::Embeddings));
        assert_eq!(route("GET", "/v1/completions").unwrap_err().status, 405);
        assert_eq!(route("POST", "/health").unwrap_err().status, 405);
        assert_eq!(route("GET", "/nope").unwrap_err().status, 404);
    }
}
