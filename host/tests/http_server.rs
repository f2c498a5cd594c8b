//! `chord serve` over real TCP: the OpenAI-compatible API of the `wasi:http`
//! component (target/wasm-chord-http.wasm, `cargo xtask build --release`) with
//! SmolLM2. Also checks the structure of the Spin manifest (`spin.toml`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

mod common;

use chord_core::openai::sse;
use common::{smollm2, workspace};
use serde_json::{json, Value};

fn http_component() -> PathBuf {
    let p = std::env::var_os("WASM_CHORD_HTTP_COMPONENT")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target/wasm-chord-http.wasm"));
    assert!(
        p.exists(),
        "component {} is missing: build it with `cargo xtask build --release`",
        p.display()
    );
    p
}

const MODEL_ID: &str = "smollm2-135m-instruct-q4_1";

/// A `chord serve` process on an ephemeral port, killed on drop.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    fn start() -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_chord"))
            .args(["serve", "--listen", "127.0.0.1:0", "--max-instances", "8"])
            .arg("--model")
            .arg(smollm2())
            .arg("--component")
            .arg(http_component())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawning chord serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .rsplit("http://")
            .next()
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("chord serve did not start: {line:?}"));
        Server { child, addr }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Response {
    status: u16,
    content_type: String,
    body: String,
}

impl Response {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    fn error_status(&self) -> u16 {
        let v = self.json();
        let e = &v["error"];
        assert!(e["message"].is_string(), "not an OpenAI error: {v}");
        assert!(e["type"].is_string(), "not an OpenAI error: {v}");
        assert!(e.get("param").is_some() && e.get("code").is_some(), "{v}");
        self.status
    }
}

/// A minimal HTTP/1.1 client (one request per connection).
struct Conn {
    reader: BufReader<TcpStream>,
}

impl Conn {
    fn send(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> Self {
        let mut s = TcpStream::connect(addr).unwrap();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
             content-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes()).unwrap();
        // The server may answer (413) before reading all of a large body.
        let _ = s.write_all(body);
        Conn {
            reader: BufReader::new(s),
        }
    }

    /// Status line and headers: (status, content-type, chunked).
    fn head(&mut self) -> (u16, String, Option<usize>) {
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        let status = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {line:?}"));
        let (mut ct, mut len) = (String::new(), None);
        loop {
            line.clear();
            self.reader.read_line(&mut line).unwrap();
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            let (k, v) = l.split_once(':').unwrap();
            match k.to_ascii_lowercase().as_str() {
                "content-type" => ct = v.trim().to_string(),
                "content-length" => len = v.trim().parse().ok(),
                _ => {}
            }
        }
        (status, ct, len)
    }

    /// The next piece of a chunked body; `None` at its end.
    fn next_chunk(&mut self) -> Option<Vec<u8>> {
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        let n = usize::from_str_radix(line.trim(), 16).expect("chunk size");
        let mut data = vec![0; n + 2];
        self.reader.read_exact(&mut data).unwrap();
        data.truncate(n);
        (n > 0).then_some(data)
    }

    fn body(&mut self, len: Option<usize>) -> String {
        let mut body = Vec::new();
        match len {
            Some(n) => {
                body.resize(n, 0);
                self.reader.read_exact(&mut body).unwrap();
            }
            None => {
                while let Some(c) = self.next_chunk() {
                    body.extend(c);
                }
            }
        }
        String::from_utf8(body).unwrap()
    }
}

fn request(addr: SocketAddr, method: &str, path: &str, body: &str) -> Response {
    let mut c = Conn::send(addr, method, path, body.as_bytes());
    let (status, content_type, len) = c.head();
    let body = c.body(len);
    Response {
        status,
        content_type,
        body,
    }
}

fn post(addr: SocketAddr, path: &str, body: &Value) -> Response {
    request(addr, "POST", path, &body.to_string())
}

fn text_of(v: &Value) -> String {
    let c = &v["choices"][0];
    c["text"]
        .as_str()
        .or_else(|| c["message"]["content"].as_str())
        .unwrap_or_else(|| panic!("no text in {v}"))
        .to_string()
}

#[test]
fn health_models_and_completion() {
    let s = Server::start();
    let h = request(s.addr, "GET", "/health", "");
    assert_eq!((h.status, h.json()["status"].clone()), (200, json!("ok")));
    let m = request(s.addr, "GET", "/v1/models", "");
    assert_eq!(m.json()["data"][0]["id"], MODEL_ID);
    let r = post(
        s.addr,
        "/v1/completions",
        &json!({"model": MODEL_ID, "prompt": "The capital of France is", "max_tokens": 8, "temperature": 0}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.content_type.starts_with("application/json"));
    let v = r.json();
    assert_eq!(v["object"], "text_completion");
    assert_eq!(v["model"], MODEL_ID);
    assert!(text_of(&v).contains("Paris"), "{v}");
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    assert_eq!(v["usage"]["completion_tokens"], 8);
    let u = &v["usage"];
    assert_eq!(
        u["total_tokens"].as_u64(),
        Some(u["prompt_tokens"].as_u64().unwrap() + 8)
    );
}

/// The server renders chat messages exactly as Python's jinja2 renders SmolLM2's
/// template (fixtures/chat/smollm2.json): the chat answer equals the completion of
/// the fixture prompt, token counts included.
#[test]
fn chat_prompt_matches_jinja2_fixture() {
    let s = Server::start();
    let fixture = std::fs::read_to_string(workspace().join("fixtures/chat/smollm2.json")).unwrap();
    let cases: Vec<Value> = serde_json::from_str(&fixture).unwrap();
    for case in cases {
        let params = json!({"max_tokens": 10, "temperature": 0});
        let mut chat = params.clone();
        chat["messages"] = case["messages"].clone();
        let mut completion = params;
        completion["prompt"] = case["prompt"].clone();
        let c = post(s.addr, "/v1/chat/completions", &chat);
        assert_eq!(c.status, 200, "{}", c.body);
        let c = c.json();
        assert_eq!(c["object"], "chat.completion");
        assert_eq!(c["choices"][0]["message"]["role"], "assistant");
        let p = post(s.addr, "/v1/completions", &completion).json();
        assert_eq!(text_of(&c), text_of(&p), "case {}", case["name"]);
        assert_eq!(c["usage"], p["usage"], "case {}", case["name"]);
    }
}

#[test]
fn streaming_arrives_in_pieces_and_equals_the_whole() {
    let s = Server::start();
    for (path, body) in [
        (
            "/v1/completions",
            json!({"prompt": "Once upon a time", "max_tokens": 24, "temperature": 0.9, "seed": 42}),
        ),
        (
            "/v1/chat/completions",
            json!({"messages": [{"role": "user", "content": "Tell me a story."}],
                   "max_tokens": 24, "temperature": 0.9, "seed": 42}),
        ),
    ] {
        let whole = post(s.addr, path, &body).json();
        let mut streamed = body.clone();
        streamed["stream"] = json!(true);
        streamed["stream_options"] = json!({"include_usage": true});
        let mut c = Conn::send(s.addr, "POST", path, streamed.to_string().as_bytes());
        let (status, ct, len) = c.head();
        assert_eq!((status, ct.as_str(), len), (200, sse::CONTENT_TYPE, None));
        // The first event comes before the stream is over.
        let first = String::from_utf8(c.next_chunk().expect("a first chunk")).unwrap();
        assert!(first.starts_with("data: {"), "{first:?}");
        assert!(!first.contains("[DONE]"), "the whole stream came at once");
        let rest = c.body(None);
        let all = first + &rest;
        let events = sse::parse_events(&all);
        assert_eq!(*events.last().unwrap(), "[DONE]");
        let chunks: Vec<Value> = events[..events.len() - 1]
            .iter()
            .map(|e| serde_json::from_str(e).unwrap())
            .collect();
        assert!(chunks.len() > 5, "{} events", chunks.len());
        let text: String = chunks
            .iter()
            .filter_map(|c| {
                let ch = c["choices"].get(0)?;
                ch["text"]
                    .as_str()
                    .or_else(|| ch["delta"]["content"].as_str())
                    .map(str::to_string)
            })
            .collect();
        assert_eq!(text, text_of(&whole), "{path}");
        let finish = chunks.iter().rev().find_map(|c| {
            c["choices"].get(0)?["finish_reason"]
                .as_str()
                .map(String::from)
        });
        assert_eq!(
            finish.as_deref(),
            whole["choices"][0]["finish_reason"].as_str()
        );
        assert_eq!(chunks.last().unwrap()["usage"], whole["usage"]);
    }
}

#[test]
fn embeddings() {
    let s = Server::start();
    let r = post(
        s.addr,
        "/v1/embeddings",
        &json!({"model": MODEL_ID, "input": ["The cat sat.", "A dog ran."]}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["object"], "list");
    let data = v["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    for (i, d) in data.iter().enumerate() {
        assert_eq!(d["index"], i);
        let e = d["embedding"].as_array().unwrap();
        assert_eq!(e.len(), 576);
        assert!(e.iter().all(|x| x.as_f64().is_some_and(f64::is_finite)));
    }
    assert_ne!(data[0]["embedding"], data[1]["embedding"]);
    assert!(v["usage"]["prompt_tokens"].as_u64().unwrap() > 4);
}

#[test]
fn errors_are_openai_shaped_and_do_not_break_the_server() {
    let s = Server::start();
    let a = s.addr;
    let long_prompt = "word ".repeat(9000);
    let cases: Vec<(&str, &str, String, u16)> = vec![
        ("POST", "/v1/completions", "{not json".into(), 400),
        ("POST", "/v1/completions", String::new(), 400),
        (
            "POST",
            "/v1/completions",
            r#"{"prompt": "a", "n": 2}"#.into(),
            400,
        ),
        (
            "POST",
            "/v1/completions",
            r#"{"prompt": "a", "temperature": -1}"#.into(),
            400,
        ),
        (
            "POST",
            "/v1/completions",
            r#"{"prompt": "a", "top_p": 7}"#.into(),
            400,
        ),
        (
            "POST",
            "/v1/chat/completions",
            r#"{"messages": []}"#.into(),
            400,
        ),
        ("POST", "/v1/embeddings", r#"{"input": []}"#.into(), 400),
        (
            "POST",
            "/v1/completions",
            json!({"prompt": long_prompt}).to_string(),
            400,
        ),
        (
            "POST",
            "/v1/completions",
            r#"{"prompt": "a", "max_tokens": 9000}"#.into(),
            400,
        ),
        (
            "POST",
            "/v1/completions",
            r#"{"prompt": "a", "model": "gpt-4"}"#.into(),
            404,
        ),
        ("GET", "/v2/nothing", String::new(), 404),
        ("GET", "/v1/chat/completions", String::new(), 405),
        ("DELETE", "/v1/models", String::new(), 405),
        (
            "POST",
            "/v1/completions",
            format!(r#"{{"prompt": "{}"}}"#, "x".repeat(1 << 21)),
            413,
        ),
    ];
    for (method, path, body, status) in &cases {
        let r = request(a, method, path, body);
        assert_eq!(
            r.error_status(),
            *status,
            "{method} {path} {}: {}",
            &body[..body.len().min(60)],
            r.body
        );
        // The next request on the same server works.
        let ok = post(
            a,
            "/v1/completions",
            &json!({"prompt": "Hi", "max_tokens": 1}),
        );
        assert_eq!(ok.status, 200, "after {method} {path}: {}", ok.body);
    }
    let ctx = request(a, "POST", "/v1/completions", &cases[7].2).json();
    assert_eq!(ctx["error"]["code"], "context_length_exceeded");
}

#[test]
fn spin_manifest_structure() {
    let text = std::fs::read_to_string(workspace().join("spin.toml")).unwrap();
    let m: toml::Value = toml::from_str(&text).unwrap();
    assert_eq!(m["spin_manifest_version"].as_integer(), Some(2));
    let triggers = m["trigger"]["http"].as_array().unwrap();
    assert_eq!(triggers.len(), 1);
    assert_eq!(triggers[0]["route"].as_str(), Some("/..."));
    let id = triggers[0]["component"].as_str().unwrap();
    let c = &m["component"][id];
    let source = c["source"].as_str().unwrap();
    assert_eq!(source, "target/wasm-chord-http.wasm");
    assert!(
        workspace().join(source).exists(),
        "{source} missing: run `cargo xtask build --release` (spin build does)"
    );
    let files = c["files"].as_array().unwrap();
    assert_eq!(files[0]["destination"].as_str(), Some("/models"));
    let model = c["environment"]["WASM_CHORD_MODEL"].as_str().unwrap();
    assert!(model.starts_with("/models/") && model.ends_with(".gguf"));
    assert_eq!(
        c["build"]["command"].as_str(),
        Some("cargo xtask build --release")
    );
}
