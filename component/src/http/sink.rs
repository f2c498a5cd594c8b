//! A [`ResponseSink`] over `wasi:http`'s response-outparam: headers go out on
//! `start`, every `write` is flushed to the client at once (streaming).

use std::io;

use chord_core::openai::ResponseSink;
use wasip2::http::types::{Fields, OutgoingBody, OutgoingResponse, ResponseOutparam};
use wasip2::io::streams::OutputStream;

/// `blocking-write-and-flush` takes at most 4096 bytes per call.
const WRITE_MAX: usize = 4096;

pub struct WasiSink {
    out: Option<ResponseOutparam>,
    /// Declared before `body`: the stream is a child of the body and must drop first.
    stream: Option<OutputStream>,
    body: Option<OutgoingBody>,
}

impl WasiSink {
    pub fn new(out: ResponseOutparam) -> Self {
        Self {
            out: Some(out),
            stream: None,
            body: None,
        }
    }

    /// Ends the body (or, if nothing was sent, answers 500: the handler must always
    /// answer).
    pub fn finish(mut self) {
        if self.out.is_some() {
            let _ = self.start(500, "application/json");
            let _ = self.write(br#"{"error":{"message":"no response","type":"server_error","param":null,"code":null}}"#);
        }
        drop(self.stream.take());
        if let Some(body) = self.body.take() {
            let _ = OutgoingBody::finish(body, None);
        }
    }
}

impl ResponseSink for WasiSink {
    fn start(&mut self, status: u16, content_type: &str) -> io::Result<()> {
        let out = self
            .out
            .take()
            .ok_or_else(|| io::Error::other("the response has already started"))?;
        let mut headers = vec![("content-type".to_string(), content_type.as_bytes().to_vec())];
        if content_type == chord_core::openai::sse::CONTENT_TYPE {
            headers.push(("cache-control".into(), b"no-cache".to_vec()));
        }
        let fields = Fields::from_list(&headers).map_err(|e| io::Error::other(format!("{e:?}")))?;
        let resp = OutgoingResponse::new(fields);
        resp.set_status_code(status)
            .map_err(|()| io::Error::other(format!("invalid status {status}")))?;
        let body = resp
            .body()
            .map_err(|()| io::Error::other("the response body was already taken"))?;
        ResponseOutparam::set(out, Ok(resp));
        let stream = body
            .write()
            .map_err(|()| io::Error::other("the body stream was already taken"))?;
        self.stream = Some(stream);
        self.body = Some(body);
        Ok(())
    }

    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        let stream = self
            .stream
            .as_ref()
            .ok_or_else(|| io::Error::other("write before start"))?;
        for piece in bytes.chunks(WRITE_MAX) {
            stream
                .blocking_write_and_flush(piece)
                .map_err(|e| io::Error::new(io::ErrorKind::BrokenPipe, format!("{e:?}")))?;
        }
        Ok(())
    }
}
