//! Tokenizer parity with llama.cpp (and, for all-MiniLM-L6-v2, Hugging Face tokenizers)
//! on `fixtures/tokenizer/`: every line of every fixture must match exactly.
//!
//! The models come from `scripts/fetch-models.sh` (cache: `$WASM_CHORD_MODELS`, default
//! `~/.cache/wasm-chord/models`). A missing model fails the test with a message saying
//! so: these tests are never skipped silently.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use chord_core::gguf::{FileSource, Gguf};
use chord_core::tokenizer::{DecodeOptions, Tokenizer, TokenizerError, VocabType};
use serde_json::Value;

fn models_dir() -> PathBuf {
    match std::env::var_os("WASM_CHORD_MODELS") {
        Some(d) => PathBuf::from(d),
        None => {
            let home =
                std::env::var_os("HOME").expect("HOME is not set and WASM_CHORD_MODELS neither");
            Path::new(&home).join(".cache/wasm-chord/models")
        }
    }
}

fn model_path(name: &str) -> PathBuf {
    let p = models_dir().join(name);
    assert!(
        p.exists(),
        "model {} is missing: run scripts/fetch-models.sh (or set WASM_CHORD_MODELS)",
        p.display()
    );
    p
}

fn load_gguf(name: &str) -> Tokenizer {
    let path = model_path(name);
    let src = FileSource::open(&path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let g = Gguf::read_header(&src).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    Tokenizer::from_gguf(&g).unwrap_or_else(|e| panic!("tokenizer of {}: {e}", path.display()))
}

fn smollm2() -> &'static Tokenizer {
    static T: OnceLock<Tokenizer> = OnceLock::new();
    T.get_or_init(|| load_gguf("smollm2-135m-instruct-q4_1.gguf"))
}

fn gemma3() -> &'static Tokenizer {
    static T: OnceLock<Tokenizer> = OnceLock::new();
    T.get_or_init(|| load_gguf("gemma-3-270m-q4_k_m.gguf"))
}

fn qwen2() -> &'static Tokenizer {
    static T: OnceLock<Tokenizer> = OnceLock::new();
    // the 7B header package: tensor data missing, only the header is read
    T.get_or_init(|| load_gguf("qwen2-7b-header.gguf"))
}

fn minilm() -> &'static Tokenizer {
    static T: OnceLock<Tokenizer> = OnceLock::new();
    T.get_or_init(|| {
        let path = model_path("all-minilm-l6-v2/tokenizer.json");
        let json = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        Tokenizer::from_hf_json(&json).unwrap_or_else(|e| panic!("tokenizer.json: {e}"))
    })
}

fn fixtures_dir() -> PathBuf {
    Path::new(&std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("../fixtures/tokenizer")
}

fn strings() -> Vec<String> {
    let path = fixtures_dir().join("strings.json");
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).expect("strings.json")
}

struct Case {
    case: usize,
    ids: Vec<u32>,
    ids_no_special: Option<Vec<u32>>,
    ids_parse_special: Option<Vec<u32>>,
}

fn cases(file: &str) -> Vec<Case> {
    let path = fixtures_dir().join(file);
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let ids = |v: &Value| -> Option<Vec<u32>> {
        v.as_array()
            .map(|a| a.iter().map(|x| x.as_u64().expect("id") as u32).collect())
    };
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("fixture line");
            Case {
                case: v["case"].as_u64().expect("case") as usize,
                ids: ids(&v["ids"]).expect("ids"),
                ids_no_special: ids(&v["ids_no_special"]),
                ids_parse_special: ids(&v["ids_parse_special"]),
            }
        })
        .collect()
}

/// Checks every line of a fixture; reports all mismatches at once.
fn check_fixture(tok: &Tokenizer, file: &str) {
    let strings = strings();
    let cases = cases(file);
    assert_eq!(cases.len(), strings.len(), "{file}: one line per string");
    let mut failures = Vec::new();
    let mut checked = 0;
    for c in &cases {
        let s = &strings[c.case];
        let mut check = |what: &str, got: Vec<u32>, want: &Vec<u32>| {
            checked += 1;
            if &got != want {
                failures.push(format!(
                    "case {} {what} {s:?}:\n   got  {got:?}\n   want {want:?}",
                    c.case
                ));
            }
        };
        check("ids", tok.encode(s, true, false).unwrap(), &c.ids);
        if let Some(want) = &c.ids_no_special {
            check("ids_no_special", tok.encode(s, false, false).unwrap(), want);
        }
        if let Some(want) = &c.ids_parse_special {
            check(
                "ids_parse_special",
                tok.encode(s, true, true).unwrap(),
                want,
            );
        }
    }
    assert!(
        failures.is_empty(),
        "{file}: {} of {checked} mismatches\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!("{file}: {checked} id lists match");
}

#[test]
fn smollm2_matches_llama_cpp() {
    let t = smollm2();
    assert_eq!(t.vocab_type(), VocabType::Bpe);
    assert_eq!(t.pre_tokenizer_name(), "smollm");
    check_fixture(t, "smollm2.jsonl");
}

#[test]
fn gemma3_matches_llama_cpp() {
    let t = gemma3();
    assert_eq!(t.vocab_type(), VocabType::Spm);
    check_fixture(t, "gemma3.jsonl");
}

#[test]
fn qwen2_7b_matches_llama_cpp() {
    let t = qwen2();
    assert_eq!(t.vocab_type(), VocabType::Bpe);
    assert_eq!(t.pre_tokenizer_name(), "deepseek-r1-qwen");
    check_fixture(t, "qwen2-7b.jsonl");
}

#[test]
fn minilm_matches_hf_tokenizers() {
    let t = minilm();
    assert_eq!(t.vocab_type(), VocabType::Wpm);
    check_fixture(t, "all-minilm-l6-v2.jsonl");
}

/// detokenize(tokenize(s)) == s.
///
/// SmolLM2, Qwen2 (byte-level BPE, `clean_spaces` off for both pre-tokenizers) and
/// Gemma 3 (SentencePiece with byte fallback, no space prefix, no normalizer) are
/// lossless on every fixture string: the BOS (a control token) decodes to nothing and
/// control-token text like `<|im_start|>` stays plain text when it is not parsed.
/// all-MiniLM-L6-v2 is lossy by design (lower-casing, accent stripping, whitespace
/// collapsing, `[UNK]` for characters outside the vocabulary, no space before
/// punctuation is kept): it is checked on the strings where none of that applies.
#[test]
fn round_trip() {
    let strings = strings();
    for (name, tok) in [
        ("smollm2", smollm2()),
        ("gemma3", gemma3()),
        ("qwen2-7b", qwen2()),
    ] {
        for s in &strings {
            for parse_special in [false, true] {
                let ids = tok.encode(s, true, parse_special).unwrap();
                // parsed special tokens come back only when rendered; the added BOS then
                // has to be removed (llama.cpp's remove_special)
                let opts = DecodeOptions {
                    render_special: parse_special,
                    remove_special: true,
                    clean_spaces: None,
                    strip_leading_space: None,
                };
                let back = tok.decode_with(&ids, opts).unwrap();
                if !parse_special {
                    assert_eq!(tok.decode(&ids, false).unwrap(), back);
                }
                assert_eq!(
                    &back, s,
                    "{name}: round trip of {s:?} (parse_special {parse_special}) via {ids:?}"
                );
            }
        }
    }
    // WordPiece: lossless only for lower-case ASCII words separated by single spaces
    let t = minilm();
    for s in [
        "",
        "hello world",
        "the quick brown fox jumps over the lazy dog",
        "supercalifragilisticexpialidocious",
    ] {
        let ids = t.encode(s, true, false).unwrap();
        assert_eq!(
            t.decode(&ids, false).unwrap(),
            s,
            "minilm round trip via {ids:?}"
        );
    }
}

/// Streaming decode of token-by-token output equals the one-shot decode, with and
/// without special tokens rendered, on every fixture string, for every model.
#[test]
fn streaming_equals_one_shot() {
    let strings = strings();
    let models: [(&str, &Tokenizer); 4] = [
        ("smollm2", smollm2()),
        ("gemma3", gemma3()),
        ("qwen2-7b", qwen2()),
        ("minilm", minilm()),
    ];
    for (name, tok) in models {
        for s in &strings {
            let ids = tok.encode(s, true, true).unwrap();
            for render in [false, true] {
                for opts in [
                    DecodeOptions::new(render),
                    DecodeOptions {
                        render_special: render,
                        remove_special: true,
                        clean_spaces: Some(true),
                        strip_leading_space: None,
                    },
                    DecodeOptions::pieces(render),
                ] {
                    let whole = tok.decode_with(&ids, opts).unwrap();
                    let mut d = tok.streaming_decoder_with(opts);
                    let mut streamed = String::new();
                    for &id in &ids {
                        let part = d.push(id).unwrap();
                        streamed.push_str(&part);
                    }
                    streamed.push_str(&d.finish());
                    assert_eq!(streamed, whole, "{name}: streaming {s:?} {opts:?}");
                }
            }
        }
    }
}

/// A character split over several byte tokens is held back until complete.
#[test]
fn streaming_never_emits_broken_utf8() {
    let t = gemma3();
    // rare characters fall back to <0xXX> byte tokens in Gemma's vocabulary
    let s = "𝓕 🇫🇷 👍🏽 \u{10FFFD}";
    let ids = t.encode(s, false, false).unwrap();
    let mut d = t.streaming_decoder(false);
    let mut out = String::new();
    let mut held_back = false;
    for &id in &ids {
        let piece = t.token_to_piece(id, false).unwrap();
        let part = d.push(id).unwrap();
        if std::str::from_utf8(&piece).is_err() {
            held_back = true;
        }
        out.push_str(&part);
    }
    out.push_str(&d.finish());
    assert_eq!(out, s);
    assert!(held_back, "expected some byte-fallback tokens in {ids:?}");
}

#[test]
fn invalid_utf8_is_an_error() {
    for tok in [smollm2(), gemma3(), qwen2(), minilm()] {
        for bad in [&b"abc\xff"[..], b"\xc3", b"\xed\xa0\x80", b"ok \xe2\x82"] {
            match tok.encode_bytes(bad, true, false) {
                Err(TokenizerError::InvalidUtf8 { .. }) => {}
                other => panic!("{bad:?}: expected InvalidUtf8, got {other:?}"),
            }
        }
        assert_eq!(
            tok.encode_bytes(b"hello", false, false).unwrap(),
            tok.encode("hello", false, false).unwrap()
        );
    }
}

#[test]
fn invalid_ids_are_errors() {
    for tok in [smollm2(), gemma3(), qwen2(), minilm()] {
        let n = tok.vocab_size() as u32;
        assert!(matches!(
            tok.decode(&[n], false),
            Err(TokenizerError::InvalidTokenId { .. })
        ));
        assert!(tok.token_to_piece(u32::MAX, true).is_err());
        assert!(tok.streaming_decoder(false).push(n).is_err());
    }
}

/// 1 MB of one character without any space, and a few other degenerate inputs, must
/// finish in bounded time (the merges are O(n log n); debug builds are optimized).
#[test]
fn huge_inputs_finish_quickly() {
    let inputs = [
        "a".repeat(1 << 20),
        " ".repeat(1 << 20),
        "\n".repeat(1 << 19),
        "é".repeat(1 << 19),
        "<|im_start|>".repeat(1 << 16),
        "1".repeat(1 << 20),
    ];
    for (name, tok) in [
        ("smollm2", smollm2()),
        ("gemma3", gemma3()),
        ("qwen2-7b", qwen2()),
        ("minilm", minilm()),
    ] {
        for s in &inputs {
            let t0 = Instant::now();
            let ids = tok.encode(s, true, true).unwrap();
            let dt = t0.elapsed();
            assert!(!ids.is_empty());
            eprintln!(
                "{name}: {} bytes of {:?}...: {} tokens in {dt:?}",
                s.len(),
                &s[..12.min(s.len())],
                ids.len()
            );
            assert!(
                dt < Duration::from_secs(20),
                "{name}: {} bytes of {:?}... took {dt:?}",
                s.len(),
                &s[..12.min(s.len())]
            );
        }
    }
}

#[test]
fn special_tokens_and_eog() {
    let t = smollm2();
    let im_end = t.token_to_id("<|im_end|>").unwrap();
    assert!(t.is_eog(im_end));
    assert!(t.is_eog(t.eos().unwrap()));
    assert!(t.is_control(im_end));
    assert_eq!(t.token_to_piece(im_end, false).unwrap(), b"");
    assert_eq!(t.token_to_piece(im_end, true).unwrap(), b"<|im_end|>");

    let g = gemma3();
    let eot = g.token_to_id("<end_of_turn>").unwrap();
    assert!(g.is_eog(eot));
    assert_eq!(g.eot(), Some(eot));
    assert_eq!(g.bos(), Some(2));
    assert!(g.add_bos());

    let q = qwen2();
    assert_eq!(q.bos(), Some(151646));
    assert!(q.is_eog(q.eos().unwrap()));

    let m = minilm();
    assert_eq!(m.encode("hello", true, false).unwrap().first(), Some(&101));
    assert_eq!(m.encode("[CLS]", false, true).unwrap(), [101]);
    assert_ne!(m.encode("[CLS]", false, false).unwrap(), [101]);
}

/// llama.cpp's `bert` GGUF vocabulary route (WPM): the vocabulary that llama.cpp's
/// converter writes for all-MiniLM-L6-v2 (word-initial tokens prefixed with U+2581,
/// `##` removed from continuations) gives the Hugging Face ids on the ASCII fixture
/// strings. (Beyond ASCII the two differ by design: llama.cpp keeps only the first code
/// point of each NFD decomposition and has no per-word length limit.)
#[test]
fn bert_gguf_vocabulary_matches_hf_on_ascii() {
    use chord_core::gguf::{Metadata, Value as GV, ValueType};
    let path = model_path("all-minilm-l6-v2/tokenizer.json");
    let json: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let vocab = json["model"]["vocab"].as_object().unwrap();
    let mut texts = vec![String::new(); vocab.len()];
    for (t, id) in vocab {
        texts[id.as_u64().unwrap() as usize] = t.clone();
    }
    let specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];
    let mut tokens = Vec::new();
    let mut types = Vec::new();
    for t in &texts {
        let phantom = if t.starts_with('[') && t.ends_with(']') {
            t.clone()
        } else if let Some(rest) = t.strip_prefix("##") {
            rest.to_string()
        } else {
            format!("\u{2581}{t}")
        };
        tokens.push(GV::String(phantom));
        types.push(GV::I32(if specials.contains(&t.as_str()) { 3 } else { 1 }));
    }
    let mut md = Metadata::default();
    md.insert("tokenizer.ggml.model", GV::String("bert".into()));
    md.insert(
        "tokenizer.ggml.tokens",
        GV::Array(ValueType::String, tokens),
    );
    md.insert(
        "tokenizer.ggml.token_type",
        GV::Array(ValueType::I32, types),
    );
    let gguf_tok = Tokenizer::from_metadata(&md).unwrap();
    assert_eq!(gguf_tok.vocab_type(), VocabType::Wpm);
    let hf = minilm();
    let mut n = 0;
    for s in strings()
        .iter()
        .filter(|s| s.is_ascii() && s.split_whitespace().all(|w| w.len() <= 100))
    {
        assert_eq!(
            gguf_tok.encode(s, true, false).unwrap(),
            hf.encode(s, true, false).unwrap(),
            "{s:?}"
        );
        n += 1;
    }
    assert!(n > 20);
    let ids = gguf_tok.encode("Hello, world!", true, false).unwrap();
    assert_eq!(gguf_tok.decode(&ids, false).unwrap(), "hello, world!");
}
