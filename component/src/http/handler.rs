//! `wasi:http/incoming-handler`: read the request, let `chord_core::openai` answer.

use chord_core::openai::{ApiError, ResponseSink, Service, MAX_BODY_BYTES};
use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::types::{IncomingRequest, Method, ResponseOutparam};
use wasip2::io::streams::StreamError;

use super::model_file::ModelFile;
use super::sink::WasiSink;

pub struct Handler;

impl Guest for Handler {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let mut sink = WasiSink::new(response_out);
        let method = method_name(&request.method());
        let path = request.path_with_query().unwrap_or_else(|| "/".into());
        match read_body(&request) {
            Ok(body) => match ModelFile::open() {
                Ok(model) => Service::new(model).handle(&method, &path, &body, &mut sink),
                Err(e) => send_error(&mut sink, &ApiError::internal(e)),
            },
            Err(e) => send_error(&mut sink, &e),
        }
        sink.finish();
    }
}

fn send_error(sink: &mut WasiSink, e: &ApiError) {
    if sink.start(e.status, "application/json").is_ok() {
        let _ = sink.write(e.to_json().to_string().as_bytes());
    }
}

fn method_name(m: &Method) -> String {
    match m {
        Method::Get => "GET".into(),
        Method::Head => "HEAD".into(),
        Method::Post => "POST".into(),
        Method::Put => "PUT".into(),
        Method::Delete => "DELETE".into(),
        Method::Connect => "CONNECT".into(),
        Method::Options => "OPTIONS".into(),
        Method::Trace => "TRACE".into(),
        Method::Patch => "PATCH".into(),
        Method::Other(s) => s.clone(),
    }
}

/// Bodies up to this size are read to the end even when over the limit, so that
/// the client (still sending) gets the 413 instead of a reset connection.
const DRAIN_LIMIT: usize = 64 << 20;

/// The body, at most `MAX_BODY_BYTES + 1` bytes of it (enough for the service to
/// answer 413 without keeping an oversized upload).
fn read_body(request: &IncomingRequest) -> Result<Vec<u8>, ApiError> {
    let body = request
        .consume()
        .map_err(|()| ApiError::internal("the request body was already consumed"))?;
    let mut data = Vec::new();
    let mut total = 0usize;
    {
        let stream = body
            .stream()
            .map_err(|()| ApiError::internal("the request body stream was already taken"))?;
        while total <= DRAIN_LIMIT {
            match stream.blocking_read(64 << 10) {
                Ok(chunk) => {
                    total += chunk.len();
                    let room = (MAX_BODY_BYTES + 1).saturating_sub(data.len());
                    data.extend_from_slice(&chunk[..chunk.len().min(room)]);
                }
                Err(StreamError::Closed) => break,
                Err(StreamError::LastOperationFailed(e)) => {
                    return Err(ApiError::invalid(
                        format!("reading the request body: {}", e.to_debug_string()),
                        None,
                    ))
                }
            }
        }
    }
    Ok(data)
}
