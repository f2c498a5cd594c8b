//! The OpenAI API service natively over SmolLM2 (no HTTP stack): JSON shapes,
//! streaming equal to the whole answer, stop strings, errors.

mod common;

use std::io;

use chord_core::gguf::{ByteSource, FileSource};
use chord_core::openai::sse;
use chord_core::openai::{ModelSource, ResponseSink, Service};
use chord_core::weights::{SliceWeights, WeightMemory};
use serde_json::Value;

struct Model {
    file: FileSource,
    bytes: std::sync::Arc<[u8]>,
}

impl ModelSource for Model {
    fn id(&self) -> &str {
        "smollm2"
    }
    fn header(&self) -> &dyn ByteSource {
        &self.file
    }
    fn weights(&mut self) -> Result<Box<dyn WeightMemory>, String> {
        Ok(Box::new(SliceWeights(self.bytes.clone())))
    }
}

#[derive(Default)]
struct Recorder {
    status: Option<u16>,
    content_type: String,
    writes: Vec<Vec<u8>>,
}

impl ResponseSink for Recorder {
    fn start(&mut self, status: u16, content_type: &str) -> io::Result<()> {
        if self.status.is_some() {
            return Err(io::Error::other("started twice"));
        }
        self.status = Some(status);
        self.content_type = content_type.into();
        Ok(())
    }
    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.writes.push(bytes.to_vec());
        Ok(())
    }
}

impl Recorder {
    fn body(&self) -> String {
        String::from_utf8(self.writes.concat()).unwrap()
    }
    fn json(&self) -> Value {
        serde_json::from_str(&self.body()).unwrap()
    }
}

fn service() -> Service<Model> {
    let path = common::smollm2("q4_1");
    Service::new(Model {
        file: FileSource::open(&path).unwrap(),
        bytes: std::fs::read(&path).unwrap().into(),
    })
}

fn call(s: &mut Service<Model>, method: &str, path: &str, body: &str) -> Recorder {
    let mut r = Recorder::default();
    s.handle(method, path, body.as_bytes(), &mut r);
    r
}

#[test]
fn completion_stream_equals_whole() {
    let mut s = service();
    let req = r#"{"prompt":"The capital of France is","max_tokens":12,"temperature":0.7,"seed":3}"#;
    let whole = call(&mut s, "POST", "/v1/completions", req);
    assert_eq!(whole.status, Some(200));
    let v = whole.json();
    let text = v["choices"][0]["text"].as_str().unwrap().to_string();
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    assert_eq!(v["usage"]["completion_tokens"], 12);
    let streamed = call(
        &mut s,
        "POST",
        "/v1/completions",
        &req.replace(
            "{",
            r#"{"stream":true,"stream_options":{"include_usage":true},"#,
        ),
    );
    assert_eq!(streamed.content_type, sse::CONTENT_TYPE);
    // One write per event: the stream was produced chunk by chunk.
    assert!(streamed.writes.len() > 3, "{:?}", streamed.writes.len());
    let body = streamed.body();
    let events = sse::parse_events(&body);
    assert_eq!(*events.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    let joined: String = chunks
        .iter()
        .filter_map(|c| c["choices"].get(0)?["text"].as_str().map(str::to_string))
        .collect();
    assert_eq!(joined, text);
    assert_eq!(chunks.last().unwrap()["usage"]["completion_tokens"], 12);
}

#[test]
fn stop_strings_cut_the_text() {
    let mut s = service();
    let base = r#"{"prompt":"1, 2, 3, 4,","max_tokens":16,"temperature":0"#;
    let free = call(&mut s, "POST", "/v1/completions", &format!("{base}}}")).json();
    let text = free["choices"][0]["text"].as_str().unwrap().to_string();
    assert!(text.contains(" 7"), "{text:?}");
    let cut = call(
        &mut s,
        "POST",
        "/v1/completions",
        &format!(r#"{base},"stop":[" 7"]}}"#),
    )
    .json();
    let expect = &text[..text.find(" 7").unwrap()];
    assert_eq!(cut["choices"][0]["text"], expect);
    assert_eq!(cut["choices"][0]["finish_reason"], "stop");
}

#[test]
fn chat_and_errors() {
    let mut s = service();
    let r = call(
        &mut s,
        "POST",
        "/v1/chat/completions",
        r#"{"model":"smollm2","messages":[{"role":"user","content":"Say hi"}],"max_tokens":4,"temperature":0}"#,
    );
    assert_eq!(r.status, Some(200), "{}", r.body());
    let v = r.json();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["choices"][0]["message"]["role"], "assistant");
    for (method, path, body, status) in [
        ("POST", "/v1/completions", "{", 400),
        ("POST", "/v1/completions", r#"{"prompt":"a","n":2}"#, 400),
        (
            "POST",
            "/v1/completions",
            r#"{"prompt":"a","model":"gpt-4"}"#,
            404,
        ),
        ("GET", "/v1/completions", "", 405),
        ("GET", "/nope", "", 404),
        (
            "POST",
            "/v1/completions",
            r#"{"prompt":"a","max_tokens":100000}"#,
            400,
        ),
    ] {
        let r = call(&mut s, method, path, body);
        assert_eq!(
            r.status,
            Some(status),
            "{method} {path} {body}: {}",
            r.body()
        );
        assert!(r.json()["error"]["message"].is_string());
    }
    let big = format!(r#"{{"prompt":"{}"}}"#, "a".repeat(2 << 20));
    assert_eq!(
        call(&mut s, "POST", "/v1/completions", &big).status,
        Some(413)
    );
    assert_eq!(call(&mut s, "GET", "/health", "").json()["status"], "ok");
    assert_eq!(
        call(&mut s, "GET", "/v1/models", "").json()["data"][0]["id"],
        "smollm2"
    );
    let e = call(&mut s, "POST", "/v1/embeddings", r#"{"input":["a b","c"]}"#).json();
    assert_eq!(e["data"].as_array().unwrap().len(), 2);
    assert_eq!(e["data"][0]["embedding"].as_array().unwrap().len(), 576);
}
