//! Tokenizer throughput: 100 kB of mixed text (prose, code, several scripts) through
//! each fixture model. A benchmark, not a test:
//!
//! ```text
//! cargo test --release -p wasm-chord-core --test tokenizer_bench -- --ignored --nocapture
//! ```

use std::path::{Path, PathBuf};
use std::time::Instant;

use chord_core::gguf::{FileSource, Gguf};
use chord_core::tokenizer::Tokenizer;

fn models_dir() -> PathBuf {
    match std::env::var_os("WASM_CHORD_MODELS") {
        Some(d) => PathBuf::from(d),
        None => {
            Path::new(&std::env::var_os("HOME").expect("HOME")).join(".cache/wasm-chord/models")
        }
    }
}

fn model(name: &str) -> PathBuf {
    let p = models_dir().join(name);
    assert!(
        p.exists(),
        "model {} is missing: run scripts/fetch-models.sh",
        p.display()
    );
    p
}

fn text_100k() -> String {
    let path = Path::new(&std::env::var("CARGO_MANIFEST_DIR").unwrap())
        .join("../fixtures/tokenizer/strings.json");
    let strings: Vec<String> =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let prose = "It was the best of times, it was the worst of times, it was the age of wisdom, \
                 it was the age of foolishness, it was the epoch of belief, it was the epoch of \
                 incredulity, it was the season of Light, it was the season of Darkness.\n";
    let mut s = String::new();
    let mut i = 0;
    while s.len() < 100_000 {
        s.push_str(prose);
        s.push_str(&strings[i % strings.len()]);
        s.push('\n');
        i += 1;
    }
    s
}

fn bench(name: &str, tok: &Tokenizer, text: &str) {
    // warm-up, then best of 5
    let ids = tok.encode(text, true, false).unwrap();
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        let again = tok.encode(text, true, false).unwrap();
        best = best.min(t.elapsed().as_secs_f64());
        assert_eq!(again.len(), ids.len());
    }
    let t = Instant::now();
    let back = tok.decode(&ids, false).unwrap();
    let dec = t.elapsed().as_secs_f64();
    eprintln!(
        "{name:>10}: encode {} bytes -> {} tokens in {:.2} ms ({:.1} MB/s); decode {:.2} ms ({} bytes)",
        text.len(),
        ids.len(),
        best * 1e3,
        text.len() as f64 / best / 1e6,
        dec * 1e3,
        back.len()
    );
}

#[test]
#[ignore]
fn tokenizer_throughput() {
    let text = text_100k();
    for name in [
        "smollm2-135m-instruct-q4_1.gguf",
        "gemma-3-270m-q4_k_m.gguf",
        "qwen2-7b-header.gguf",
    ] {
        let t = Instant::now();
        let g = Gguf::read_header(&FileSource::open(model(name)).unwrap()).unwrap();
        let t_header = t.elapsed().as_secs_f64();
        let tok = Tokenizer::from_gguf(&g).unwrap();
        eprintln!(
            "{name}: GGUF header {:.0} ms, tokenizer built in {:.0} ms ({} tokens, {} merges)",
            t_header * 1e3,
            (t.elapsed().as_secs_f64() - t_header) * 1e3,
            tok.vocab_size(),
            tok.n_merges()
        );
        bench(name.split('-').next().unwrap_or(name), &tok, &text);
    }
    let json = std::fs::read_to_string(model("all-minilm-l6-v2/tokenizer.json")).unwrap();
    let tok = Tokenizer::from_hf_json(&json).unwrap();
    bench("minilm", &tok, &text);
}
