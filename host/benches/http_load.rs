//! Bounded load test of `chord serve` (a benchmark, not a test): N concurrent
//! clients send completions for a fixed time over loopback; reports requests/s,
//! p50/p99 latency, failed or corrupted responses, and the server's anonymous memory
//! after warm-up, during and after the run.
//!
//! ```sh
//! cargo xtask build --release && cargo build --release -p chord
//! HTTP_LOAD_CLIENTS=4 HTTP_LOAD_SECS=30 [HTTP_LOAD_WARMUP_SECS=30] cargo bench -p chord --bench http_load
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

/// A field of /proc/PID/status in KiB (`RssAnon`: the server's own heap and wasm
/// memories; `RssFile`: mapped files such as the model and the compiled code, which
/// the page cache shares and which only grow until every page has been touched once).
fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
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

/// What one timed run of `clients` concurrent clients gave.
struct Run {
    latencies: Vec<Duration>,
    failed: usize,
    corrupted: usize,
    /// The server's RssAnon once per second during the run.
    anon_samples: Vec<u64>,
}

/// `clients` clients post `body` back to back for `secs` seconds; a 200 whose text
/// differs from `expected` (greedy, so always the same) counts as corrupted.
fn load(addr: SocketAddr, body: &str, expected: &str, clients: usize, secs: u64, pid: u32) -> Run {
    let deadline = Instant::now() + Duration::from_secs(secs);
    std::thread::scope(|s| {
        let sampler = s.spawn(|| {
            let mut v = Vec::new();
            while Instant::now() < deadline {
                std::thread::sleep(Duration::from_secs(1));
                v.push(status_kib(pid, "RssAnon:"));
            }
            v
        });
        let handles: Vec<_> = (0..clients)
            .map(|_| {
                s.spawn(|| {
                    let (mut lat, mut failed, mut corrupted) = (Vec::new(), 0, 0);
                    while Instant::now() < deadline {
                        let t = Instant::now();
                        match post(addr, body) {
                            Ok((200, b)) if text_of(&b).as_deref() == Some(expected) => {
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
        let mut run = Run {
            latencies: Vec::new(),
            failed: 0,
            corrupted: 0,
            anon_samples: Vec::new(),
        };
        for h in handles {
            let (lat, failed, corrupted) = h.join().unwrap();
            run.latencies.extend(lat);
            run.failed += failed;
            run.corrupted += corrupted;
        }
        run.anon_samples = sampler.join().unwrap();
        run
    })
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse.
    let clients: usize = env_or("HTTP_LOAD_CLIENTS", 4);
    let secs: u64 = env_or("HTTP_LOAD_SECS", 20);
    let warmup_secs: u64 = env_or("HTTP_LOAD_WARMUP_SECS", secs);
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
    let expected = {
        let (status, b) = post(addr, &body).expect("warm-up request");
        assert_eq!(status, 200, "{b}");
        text_of(&b).expect("warm-up response")
    };
    // A warm-up run of the same load: the pooling allocator keeps up to 64 MiB of
    // every memory slot it has used resident (`linear_memory_keep_resident`), so idle
    // RSS rises until the slots this load uses have each been used once. A leak would
    // keep growing in the measured run after that.
    let warmup = load(addr, &body, &expected, clients, warmup_secs, pid);
    assert_eq!(
        warmup.failed + warmup.corrupted,
        0,
        "failures during warm-up"
    );
    let anon_before = status_kib(pid, "RssAnon:");
    let file_before = status_kib(pid, "RssFile:");
    let run = load(addr, &body, &expected, clients, secs, pid);
    let anon_after = status_kib(pid, "RssAnon:");
    let file_after = status_kib(pid, "RssFile:");
    let max = run.anon_samples.iter().copied().max().unwrap_or(0);
    let every_5s: Vec<String> = run
        .anon_samples
        .iter()
        .step_by(5)
        .map(|k| (k / 1024).to_string())
        .collect();
    drop(server);

    let (mut lat, failed, corrupted) = (run.latencies, run.failed, run.corrupted);
    lat.sort();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    println!(
        "http_load: {clients} clients, {secs} s, max_tokens {max_tokens}: {} ok, {failed} failed, \
         {corrupted} corrupted; {:.2} req/s; latency p50 {:.1?} p99 {:.1?}\n\
         server RssAnon idle after warm-up {} MiB, idle after the run {} MiB (max {} MiB; \
         every 5 s: {}); RssFile {} -> {} MiB",
        lat.len(),
        lat.len() as f64 / secs as f64,
        pct(0.50),
        pct(0.99),
        anon_before / 1024,
        anon_after / 1024,
        max / 1024,
        every_5s.join(" "),
        file_before / 1024,
        file_after / 1024,
    );
    assert_eq!(failed + corrupted, 0, "failed or corrupted responses");
}
