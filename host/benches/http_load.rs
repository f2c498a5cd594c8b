//! Bounded load test of `chord serve` (a benchmark, not a test): N concurrent
//! clients send completions for a fixed time over loopback; reports requests/s,
//! p50/p99 latency, failed or corrupted responses, and the server's RSS before and
//! after.
//!
//! ```sh
//! cargo xtask build --release && cargo build --release -p chord
//! HTTP_LOAD_CLIENTS=4 HTTP_LOAD_SECS=30 cargo bench -p chord --bench http_load
//! ```
//! Needs target/wasm-chord-http.wasm and SmolLM2 (`scripts/fetch-models.sh smollm2`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// One POST on a fresh connection: (status, body).
fn post(addr: SocketAddr, body: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(addr)?;
    write!(
        s,
        "POST /v1/completions HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line)?;
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut len = None;
    loop {
        line.clear();
        r.read_line(&mut line)?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().ok();
            }
        }
    }
    let mut out = Vec::new();
    match len {
        Some(n) => {
            out.resize(n, 0);
            r.read_exact(&mut out)?;
        }
        None => loop {
            line.clear();
            r.read_line(&mut line)?;
            let n = usize::from_str_radix(line.trim(), 16).unwrap_or(0);
            let mut chunk = vec![0; n + 2];
            r.read_exact(&mut chunk)?;
            if n == 0 {
                break;
            }
            out.extend_from_slice(&chunk[..n]);
        },
    }
    Ok((status, String::from_utf8_lossy(&out).into_owned()))
}

fn text_of(body: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    Some(v["choices"][0]["text"].as_str()?.to_string())
}

struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse.
    let clients: usize = env_or("HTTP_LOAD_CLIENTS", 4);
    let secs: u64 = env_or("HTTP_LOAD_SECS", 20);
    let max_tokens: u32 = env_or("HTTP_LOAD_MAX_TOKENS", 8);
    let root = chord::repo_root();
    let model = std::env::var_os("WASM_CHORD_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/wasm-chord/models")
        })
        .join("smollm2-135m-instruct-q4_1.gguf");
    let mut child = Command::new(env!("CARGO_BIN_EXE_chord"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .arg("--model")
        .arg(&model)
        .arg("--component")
        .arg(root.join("target/wasm-chord-http.wasm"))
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawning chord serve");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let pid = child.id();
    let server = Guard(child);
    let addr: SocketAddr = line
        .trim()
        .rsplit("http://")
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("chord serve did not start: {line:?}"));

    let body = serde_json::json!({
        "prompt": "The capital of France is", "max_tokens": max_tokens, "temperature": 0
    })
    .to_string();
    // Warm-up: every pool slot the clients will use gets touched once.
    let expected = {
        let (status, b) = post(addr, &body).expect("warm-up request");
        assert_eq!(status, 200, "{b}");
        text_of(&b).expect("warm-up response")
    };
    std::thread::scope(|s| {
        for _ in 0..clients {
            s.spawn(|| post(addr, &body));
        }
    });
    let rss_before = rss_kib(pid);

    let deadline = Instant::now() + Duration::from_secs(secs);
    let results: Vec<(Vec<Duration>, usize, usize)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..clients)
            .map(|_| {
                s.spawn(|| {
                    let (mut lat, mut failed, mut corrupted) = (Vec::new(), 0, 0);
                    while Instant::now() < deadline {
                        let t = Instant::now();
                        match post(addr, &body) {
                            Ok((200, b)) if text_of(&b).as_deref() == Some(expected.as_str()) => {
                                lat.push(t.elapsed())
                            }
                            Ok((200, _)) => corrupted += 1,
                            _ => failed += 1,
                        }
                    }
                    (lat, failed, corrupted)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let rss_after = rss_kib(pid);
    drop(server);

    let mut lat: Vec<Duration> = results.iter().flat_map(|r| r.0.clone()).collect();
    lat.sort();
    let failed: usize = results.iter().map(|r| r.1).sum();
    let corrupted: usize = results.iter().map(|r| r.2).sum();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    println!(
        "http_load: {clients} clients, {secs} s, max_tokens {max_tokens}: {} ok, {failed} failed, \
         {corrupted} corrupted; {:.2} req/s; latency p50 {:.1?} p99 {:.1?}; \
         server RSS {} MiB before, {} MiB after",
        lat.len(),
        lat.len() as f64 / secs as f64,
        pct(0.50),
        pct(0.99),
        rss_before / 1024,
        rss_after / 1024,
    );
    assert_eq!(failed + corrupted, 0, "failed or corrupted responses");
}
