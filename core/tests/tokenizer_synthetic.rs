//! Tokenizer behaviours that the fixture models do not exercise, on small vocabularies
//! built in memory as GGUF metadata: a Llama-2-style SentencePiece vocabulary (space
//! prefix, byte fallback, user-defined tokens) and a byte-level BPE one (`pre`
//! handling, `clean_spaces`, EOG detection).

use chord_core::gguf::{Metadata, Value, ValueType};
use chord_core::tokenizer::{DecodeOptions, PreTokenizer, Tokenizer, TokenizerError};

fn strings(v: &[&str]) -> Value {
    Value::Array(
        ValueType::String,
        v.iter().map(|s| Value::String(s.to_string())).collect(),
    )
}

/// Llama-2-like SentencePiece vocabulary: <unk> <s> </s>, 256 byte tokens, a few pieces
/// (score = length, so longer pieces win), and a user-defined `<user>`.
fn spm() -> Tokenizer {
    let mut texts: Vec<String> = vec!["<unk>".into(), "<s>".into(), "</s>".into()];
    let mut types = vec![2, 3, 3];
    for b in 0..=255u8 {
        texts.push(format!("<0x{b:02X}>"));
        types.push(6);
    }
    for p in [
        "▁", "h", "e", "l", "o", "w", "r", "d", "▁h", "he", "ll", "lo", "llo", "▁he", "▁hello",
        "▁w", "or", "▁wor", "ld", "▁world", "é",
    ] {
        texts.push(p.into());
        types.push(1);
    }
    texts.push("<user>".into());
    types.push(4);
    let scores: Vec<Value> = texts
        .iter()
        .map(|t| Value::F32(t.chars().count() as f32))
        .collect();
    let mut md = Metadata::default();
    md.insert("tokenizer.ggml.model", Value::String("llama".into()));
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    md.insert("tokenizer.ggml.tokens", strings(&refs));
    md.insert(
        "tokenizer.ggml.scores",
        Value::Array(ValueType::F32, scores),
    );
    md.insert(
        "tokenizer.ggml.token_type",
        Value::Array(ValueType::I32, types.into_iter().map(Value::I32).collect()),
    );
    Tokenizer::from_metadata(&md).unwrap()
}

#[test]
fn spm_space_prefix_bytes_and_user_tokens() {
    let t = spm();
    let id = |s: &str| t.token_to_id(s).unwrap();
    assert_eq!(t.bos(), Some(1));
    assert_eq!(t.eos(), Some(2));
    assert!(t.add_bos());
    // add_space_prefix defaults to true for SPM: " hello" is one piece
    assert_eq!(
        t.encode("hello world", true, false).unwrap(),
        [1, id("▁hello"), id("▁world")]
    );
    assert_eq!(t.encode("hello", false, false).unwrap(), [id("▁hello")]);
    // byte fallback for pieces outside the vocabulary ("z" and the two bytes of "ж")
    assert_eq!(
        t.encode("z", false, false).unwrap(),
        [id("▁"), id("<0x7A>")]
    );
    assert_eq!(
        t.encode("ж", false, false).unwrap(),
        [id("▁"), id("<0xD0>"), id("<0xB6>")]
    );
    // user-defined tokens are split out even without parse_special; the text after a
    // special token gets the space prefix again
    assert_eq!(
        t.encode("hello<user>world", false, false).unwrap(),
        [id("▁hello"), id("<user>"), id("▁world")]
    );
    // control tokens only with parse_special (no text fragment, so no space prefix)
    assert_eq!(t.encode("</s>", false, true).unwrap(), [2]);
    assert_eq!(
        t.encode("a</s>", false, true).unwrap(),
        [id("▁"), id("<0x61>"), 2]
    );
    assert!(!t.encode("</s>", false, false).unwrap().contains(&2));

    // decoding: without BOS the leading space of the first piece goes away; after a BOS
    // it stays, exactly as llama_detokenize does
    assert_eq!(
        t.decode(&[id("▁hello"), id("▁world")], false).unwrap(),
        "hello world"
    );
    assert_eq!(t.decode(&[1, id("▁hello")], false).unwrap(), " hello");
    assert_eq!(t.decode(&[1, id("▁hello")], true).unwrap(), "<s> hello");
    let opts = DecodeOptions {
        render_special: false,
        remove_special: true,
        clean_spaces: None,
        strip_leading_space: None,
    };
    assert_eq!(t.decode_with(&[1, id("▁hello")], opts).unwrap(), " hello");
    // continuation text (generation): plain pieces, the leading space stays
    let gen = DecodeOptions::pieces(false);
    assert_eq!(
        t.decode_with(&[id("▁hello"), id("▁world")], gen).unwrap(),
        " hello world"
    );
    // byte tokens assemble into UTF-8; a lone byte decodes to U+FFFD but is kept raw
    assert_eq!(t.decode(&[id("<0xD0>"), id("<0xB6>")], false).unwrap(), "ж");
    assert_eq!(t.decode(&[id("<0xD0>")], false).unwrap(), "\u{FFFD}");
    assert_eq!(t.decode_bytes(&[id("<0xD0>")], false).unwrap(), [0xD0]);
    let mut d = t.streaming_decoder(false);
    assert_eq!(d.push(id("<0xD0>")).unwrap(), "");
    assert_eq!(d.push(id("<0xB6>")).unwrap(), "ж");
    assert_eq!(d.finish(), "");
    // "</s>" is end of generation (EOS)
    assert!(t.is_eog(2));
}

fn bpe(pre: Option<&str>) -> Result<Tokenizer, TokenizerError> {
    // byte-level alphabet: the printable ASCII bytes map to themselves, space is "Ġ"
    let mut texts: Vec<String> = (b'!'..=b'~').map(|b| (b as char).to_string()).collect();
    texts.extend(
        [
            "Ġ",
            "Ġh",
            "he",
            "ll",
            "llo",
            "Ġhe",
            "Ġhello",
            "<|endoftext|>",
            "<|im_end|>",
        ]
        .map(String::from),
    );
    let mut md = Metadata::default();
    md.insert("tokenizer.ggml.model", Value::String("gpt2".into()));
    if let Some(p) = pre {
        md.insert("tokenizer.ggml.pre", Value::String(p.into()));
    }
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    md.insert("tokenizer.ggml.tokens", strings(&refs));
    let mut types = vec![Value::I32(1); texts.len()];
    let n = types.len();
    types[n - 1] = Value::I32(3);
    types[n - 2] = Value::I32(3);
    md.insert(
        "tokenizer.ggml.token_type",
        Value::Array(ValueType::I32, types),
    );
    md.insert(
        "tokenizer.ggml.merges",
        strings(&["Ġ h", "h e", "l l", "ll o", "Ġh e", "Ġhe llo"]),
    );
    md.insert("tokenizer.ggml.eos_token_id", Value::U32(n as u32 - 2));
    Tokenizer::from_metadata(&md)
}

#[test]
fn bpe_pre_names_and_defaults() {
    // unknown names are errors; names llama.cpp knows but that are not implemented too
    assert!(matches!(
        bpe(Some("no-such-pre")),
        Err(TokenizerError::UnknownPreTokenizer(_))
    ));
    assert!(matches!(
        bpe(Some("deepseek-coder")),
        Err(TokenizerError::UnsupportedPreTokenizer(_))
    ));
    // a missing pre falls back to "default", like llama.cpp, with a warning
    let t = bpe(None).unwrap();
    assert_eq!(t.pre_tokenizer(), Some(PreTokenizer::Default));
    assert!(!t.warnings().is_empty());
    for (name, pre) in [
        ("gpt-2", PreTokenizer::Gpt2),
        ("llama-bpe", PreTokenizer::Llama3),
        ("qwen2", PreTokenizer::Qwen2),
        ("deepseek-r1-qwen", PreTokenizer::Qwen2),
        ("smollm", PreTokenizer::Starcoder),
        ("starcoder", PreTokenizer::Starcoder),
        ("gpt-4o", PreTokenizer::Gpt4o),
        ("tekken", PreTokenizer::Tekken),
        ("default", PreTokenizer::Default),
    ] {
        let t = bpe(Some(name)).unwrap();
        assert_eq!(t.pre_tokenizer(), Some(pre), "{name}");
        let id = |s: &str| t.token_to_id(s).unwrap();
        assert_eq!(
            t.encode("hello hello", false, false).unwrap(),
            [id("he"), id("llo"), id("Ġhello")]
        );
    }
    // llama3 vocabularies add a BOS by default; without bos_token_id llama.cpp's default
    // for BPE vocabularies is id 11 (sic)
    let l3 = bpe(Some("llama3")).unwrap();
    assert!(l3.add_bos());
    assert_eq!(l3.bos(), Some(11));
    assert_eq!(l3.encode("", true, false).unwrap(), [11]);
}

#[test]
fn bpe_clean_spaces_and_eog() {
    let t = bpe(Some("gpt-2")).unwrap(); // clean_spaces on
    let ids = t.encode("hello , x", false, false).unwrap();
    // llama_detokenize removes the space before ",", and so does the streaming decoder
    assert_eq!(t.decode(&ids, false).unwrap(), "hello, x");
    let mut d = t.streaming_decoder(false);
    let mut s = String::new();
    for &i in &ids {
        s += &d.push(i).unwrap();
    }
    s += &d.finish();
    assert_eq!(s, "hello, x");
    let raw = DecodeOptions {
        render_special: false,
        remove_special: false,
        clean_spaces: Some(false),
        strip_leading_space: None,
    };
    assert_eq!(t.decode_with(&ids, raw).unwrap(), "hello , x");
    let q = bpe(Some("qwen2")).unwrap(); // clean_spaces off
    assert_eq!(q.decode(&ids, false).unwrap(), "hello , x");

    let im_end = t.token_to_id("<|im_end|>").unwrap();
    let eot = t.token_to_id("<|endoftext|>").unwrap();
    assert!(t.is_eog(im_end) && t.is_eog(eot));
    assert_eq!(t.eos(), Some(eot));
    assert_eq!(t.encode("<|im_end|>", false, true).unwrap(), [im_end]);
    assert_eq!(t.decode(&[im_end], false).unwrap(), "");
    assert_eq!(t.decode(&[im_end], true).unwrap(), "<|im_end|>");
}
