//! Embedding parity: all-MiniLM-L6-v2 (safetensors directory, and GGUF made by our own
//! converter in F32 / F16 / Q8_0) against the float64 reference of
//! `fixtures/embeddings/all-minilm-l6-v2.jsonl`, and SmolLM2 Q8_0 mean pooling against
//! llama.cpp (`smollm2-135m-instruct-q8_0.mean.jsonl`). Also: malformed safetensors are
//! errors (never panics), attention masks, batching, length limits and truncation.
//!
//! Benchmark (embeddings/s, 16 and 256 tokens, batch 1 and 32):
//!   cargo test --release -p wasm-chord-core --test embeddings -- --ignored --nocapture

mod common;

use std::path::PathBuf;

use chord_core::bert::{self, BertConfig, BertEmbedder, BertModel, HfFiles, SeqInput};
use chord_core::gguf::Gguf;
use chord_core::pooling::{self, cosine, EmbedError, EmbedOptions, Embedder, Pooling};
use chord_core::quant::GgmlType;
use chord_core::safetensors::{SafeTensors, SafetensorsError};
use chord_core::weights::SliceWeights;
use serde_json::Value;

struct Case {
    case: usize,
    ids: Vec<u32>,
    embedding: Option<Vec<f32>>,
}

fn texts() -> Vec<String> {
    serde_json::from_str(
        &std::fs::read_to_string(common::fixture("embeddings/texts.json")).unwrap(),
    )
    .unwrap()
}

fn cases(file: &str) -> Vec<Case> {
    std::fs::read_to_string(common::fixture(&format!("embeddings/{file}")))
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            Case {
                case: v["case"].as_u64().unwrap() as usize,
                ids: v["ids"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_u64().unwrap() as u32)
                    .collect(),
                embedding: v["embedding"]
                    .as_array()
                    .map(|a| a.iter().map(|x| x.as_f64().unwrap() as f32).collect()),
            }
        })
        .collect()
}

fn minilm_dir() -> PathBuf {
    let dir = common::model("all-minilm-l6-v2");
    assert!(
        dir.join("model.safetensors").is_file(),
        "{}/model.safetensors is missing: run scripts/fetch-models.sh minilm",
        dir.display()
    );
    dir
}

/// The MiniLM safetensors file, loaded once and kept for the whole test binary.
fn minilm_bytes() -> &'static [u8] {
    static BYTES: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    BYTES.get_or_init(|| std::fs::read(minilm_dir().join("model.safetensors")).unwrap())
}

fn minilm_files() -> HfFiles {
    HfFiles::read_dir(&minilm_dir()).unwrap()
}

fn minilm_safetensors() -> BertEmbedder {
    let bytes = minilm_bytes();
    let st = SafeTensors::read(bytes).unwrap();
    BertEmbedder::from_hf(&minilm_files(), &st, Box::new(SliceWeights(bytes))).unwrap()
}

/// MiniLM converted to GGUF `ty` in memory by our converter, loaded through the
/// generic GGUF embedding loader.
fn minilm_gguf(ty: GgmlType) -> Box<dyn Embedder> {
    let bytes = minilm_bytes();
    let st = SafeTensors::read(bytes).unwrap();
    let mut out = Vec::new();
    let report = bert::convert_hf_to_gguf(
        &minilm_files(),
        &st,
        bytes,
        ty,
        Some("all-MiniLM-L6-v2"),
        &mut out,
        |_, _, _| {},
    )
    .unwrap();
    assert_eq!(report.n_tensors, 5 + 6 * 16);
    assert!(report.fallbacks.is_empty());
    let g = Gguf::read(out.as_slice()).unwrap();
    assert_eq!(g.architecture().unwrap(), "bert");
    assert_eq!(g.tensor("blk.0.attn_q.weight").unwrap().ty, ty);
    assert_eq!(g.tensor("position_embd.weight").unwrap().ty, GgmlType::F32);
    pooling::load_gguf_embedder(out.as_slice(), Box::new(SliceWeights(out.clone()))).unwrap()
}

/// Embeds every fixture text with the model's defaults and checks ids and cosine
/// similarity against the reference. Returns the worst cosine.
fn check_minilm(label: &str, e: &dyn Embedder, min_cos: f64) -> f64 {
    let def = e.default_pooling();
    assert_eq!(
        (def.pooling, def.normalize),
        (Pooling::Mean, true),
        "{label}: defaults"
    );
    let texts = texts();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let got = e.embed(&refs, &EmbedOptions::default()).unwrap();
    let mut worst = (f64::INFINITY, 0);
    for (c, g) in cases("all-minilm-l6-v2.jsonl").iter().zip(&got) {
        assert_eq!(g.ids, c.ids, "{label} case {}: token ids", c.case);
        assert_eq!((g.dim, g.n_vectors()), (384, 1));
        let norm: f64 = g
            .values
            .iter()
            .map(|&x| (x as f64) * (x as f64))
            .sum::<f64>()
            .sqrt();
        assert!(
            (norm - 1.0).abs() < 1e-5,
            "{label} case {}: norm {norm}",
            c.case
        );
        let cos = cosine(&g.values, c.embedding.as_ref().unwrap());
        if cos < worst.0 {
            worst = (cos, c.case);
        }
    }
    println!(
        "{label}: worst cosine {:.9} (1 - cos = {:.1e}, case {}) over {} texts",
        worst.0,
        1.0 - worst.0,
        worst.1,
        got.len()
    );
    assert!(
        worst.0 >= min_cos,
        "{label}: cosine {} < {min_cos} (case {})",
        worst.0,
        worst.1
    );
    worst.0
}

#[test]
fn minilm_safetensors_matches_reference() {
    check_minilm(
        "all-MiniLM-L6-v2 safetensors (F32)",
        &minilm_safetensors(),
        0.9999,
    );
}

#[test]
fn minilm_gguf_f32_matches_reference() {
    check_minilm(
        "all-MiniLM-L6-v2 GGUF F32",
        minilm_gguf(GgmlType::F32).as_ref(),
        0.9999,
    );
}

#[test]
fn minilm_gguf_f16_matches_reference() {
    check_minilm(
        "all-MiniLM-L6-v2 GGUF F16",
        minilm_gguf(GgmlType::F16).as_ref(),
        0.999,
    );
}

#[test]
fn minilm_gguf_q8_0_matches_reference() {
    check_minilm(
        "all-MiniLM-L6-v2 GGUF Q8_0",
        minilm_gguf(GgmlType::Q8_0).as_ref(),
        0.995,
    );
}

/// The converted GGUF's tokenizer (llama.cpp's `bert` vocabulary) gives the Hugging Face ids.
#[test]
fn minilm_gguf_tokenizer_matches_tokenizer_json() {
    let bytes = minilm_bytes();
    let st = SafeTensors::read(bytes).unwrap();
    let mut out = Vec::new();
    bert::convert_hf_to_gguf(
        &minilm_files(),
        &st,
        bytes,
        GgmlType::Q8_0,
        None,
        &mut out,
        |_, _, _| {},
    )
    .unwrap();
    let g = Gguf::read(out.as_slice()).unwrap();
    let gguf_tok = chord_core::tokenizer::Tokenizer::from_gguf(&g).unwrap();
    let hf = minilm_safetensors();
    for t in texts() {
        assert_eq!(
            gguf_tok.encode(&t, true, true).unwrap(),
            hf.tokenizer().encode(&t, true, true).unwrap(),
            "{t:?}"
        );
    }
    assert_eq!(g.metadata.get_u32("bert.pooling_type").unwrap(), 1);
    assert_eq!(g.metadata.get_u32("bert.context_length").unwrap(), 512);
    assert_eq!(
        g.metadata
            .get_u32("tokenizer.ggml.token_type_count")
            .unwrap(),
        2
    );
    assert_eq!(g.metadata.get_str("tokenizer.ggml.model").unwrap(), "bert");
}

#[test]
fn smollm2_q8_0_mean_pooling_matches_llama_cpp() {
    let path = common::smollm2("q8_0");
    let bytes = std::fs::read(&path).unwrap();
    let e = pooling::load_gguf_embedder(bytes.as_slice(), Box::new(SliceWeights(bytes.clone())))
        .unwrap();
    let def = e.default_pooling();
    assert_eq!((def.pooling, def.normalize), (Pooling::Mean, false));
    let opts = EmbedOptions {
        pooling: Some(Pooling::Mean),
        normalize: Some(false),
        truncate: false,
    };
    let texts = texts();
    let (mut worst_cos, mut worst_case, mut worst_rel) = (f64::INFINITY, 0, 0f64);
    for c in cases("smollm2-135m-instruct-q8_0.mean.jsonl") {
        let r = e.embed(&[texts[c.case].as_str()], &opts);
        let Some(want) = &c.embedding else {
            assert!(
                matches!(r, Err(EmbedError::EmptyInput { index: 0 })),
                "case {}: expected an empty-input error, got {r:?}",
                c.case
            );
            continue;
        };
        let got = r.unwrap().remove(0);
        assert_eq!(got.ids, c.ids, "case {}: token ids", c.case);
        assert_eq!(got.dim, 576);
        let cos = cosine(&got.values, want);
        let diff: f64 = got
            .values
            .iter()
            .zip(want)
            .map(|(&a, &b)| ((a - b) as f64).powi(2))
            .sum::<f64>()
            .sqrt();
        let norm: f64 = want.iter().map(|&b| (b as f64).powi(2)).sum::<f64>().sqrt();
        let rel = diff / norm;
        worst_rel = worst_rel.max(rel);
        if cos < worst_cos {
            (worst_cos, worst_case) = (cos, c.case);
        }
    }
    println!("SmolLM2 Q8_0 mean pooling: worst cosine {worst_cos:.7} (case {worst_case}), worst relative L2 error {worst_rel:.2e}");
    assert!(
        worst_cos >= 0.999,
        "cosine {worst_cos} < 0.999 (case {worst_case})"
    );

    // In a batch, the empty text is reported by index.
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    assert!(matches!(
        e.embed(&refs, &opts),
        Err(EmbedError::EmptyInput { index: 4 })
    ));
    // Last-token pooling is the last row of the hidden states.
    let last = e
        .embed(
            &["Hello world"],
            &EmbedOptions {
                pooling: Some(Pooling::Last),
                ..opts
            },
        )
        .unwrap()
        .remove(0);
    let all = e
        .embed(
            &["Hello world"],
            &EmbedOptions {
                pooling: Some(Pooling::None),
                ..opts
            },
        )
        .unwrap()
        .remove(0);
    assert_eq!(all.n_vectors(), 2);
    assert_eq!(last.values, all.values[576..]);
}

/// Batching does not change results; padding behind an attention mask is invisible;
/// position limits are errors unless truncation is asked for.
#[test]
fn minilm_batches_masks_and_limits() {
    let e = minilm_safetensors();
    let texts = texts();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let batch = e.embed(&refs, &EmbedOptions::default()).unwrap();
    for (t, b) in refs.iter().zip(&batch) {
        let one = e.embed(&[t], &EmbedOptions::default()).unwrap().remove(0);
        assert!(cosine(&one.values, &b.values) > 0.999_999, "{t:?}");
    }
    // Empty text is fine for BERT: [CLS] [SEP].
    assert_eq!(batch[4].ids, [101, 102]);

    // Right padding with [PAD] and a mask: the real tokens' states do not change.
    let ids = e
        .tokenizer()
        .encode("A man is playing a guitar.", true, true)
        .unwrap();
    let plain = e
        .model
        .forward(&[SeqInput {
            ids: &ids,
            ..Default::default()
        }])
        .unwrap()
        .remove(0);
    let mut padded = ids.clone();
    padded.extend([0; 7]);
    let mask: Vec<u8> = (0..padded.len()).map(|i| (i < ids.len()) as u8).collect();
    let types = vec![0u32; padded.len()];
    let h = e
        .model
        .forward(&[SeqInput {
            ids: &padded,
            type_ids: Some(&types),
            attention_mask: Some(&mask),
        }])
        .unwrap()
        .remove(0);
    let d = e.dim();
    let maxdiff = plain
        .iter()
        .zip(&h[..ids.len() * d])
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(maxdiff < 1e-4, "padding changed the states by {maxdiff}");
    let on: Vec<bool> = mask.iter().map(|&m| m != 0).collect();
    let pooled = pooling::pool(&h, d, Some(&on), Pooling::Mean);
    assert!(cosine(&pooled, &pooling::pool(&plain, d, None, Pooling::Mean)) > 0.999_999);

    // Bad inputs are errors.
    let bad_mask = [0u8; 3];
    assert!(e
        .model
        .forward(&[SeqInput {
            ids: &ids[..3],
            attention_mask: Some(&bad_mask),
            ..Default::default()
        }])
        .is_err());
    assert!(e
        .model
        .forward(&[SeqInput {
            ids: &[101, 999_999],
            ..Default::default()
        }])
        .is_err());
    assert!(matches!(
        e.model.forward(&[SeqInput::default()]),
        Err(EmbedError::EmptyInput { index: 0 })
    ));

    // 600 words: more than 512 positions.
    let long = "word ".repeat(600);
    match e.embed(&["short", &long], &EmbedOptions::default()) {
        Err(EmbedError::TooLong {
            index: 1,
            n_tokens,
            max: 512,
        }) => assert_eq!(n_tokens, 602),
        other => panic!("expected TooLong, got {other:?}"),
    }
    let cut = e
        .embed(
            &[&long],
            &EmbedOptions {
                truncate: true,
                ..Default::default()
            },
        )
        .unwrap()
        .remove(0);
    assert!(cut.truncated);
    assert_eq!(cut.ids.len(), 512);
    assert_eq!((cut.ids[0], cut.ids[511]), (101, 102));
    assert_eq!(
        cut.ids[1..511],
        e.tokenizer().encode(&long, false, true).unwrap()[..510]
    );

    // Overrides: CLS pooling without normalisation is the raw first state.
    let cls = e
        .embed(
            &["Hello world"],
            &EmbedOptions {
                pooling: Some(Pooling::Cls),
                normalize: Some(false),
                truncate: false,
            },
        )
        .unwrap()
        .remove(0);
    let ids = e.tokenizer().encode("Hello world", true, true).unwrap();
    let states = e
        .model
        .forward(&[SeqInput {
            ids: &ids,
            ..Default::default()
        }])
        .unwrap()
        .remove(0);
    assert_eq!(cls.values, states[..d]);
    let none = e
        .embed(
            &["Hello world"],
            &EmbedOptions {
                pooling: Some(Pooling::None),
                ..Default::default()
            },
        )
        .unwrap()
        .remove(0);
    assert_eq!(none.n_vectors(), 4);
    for v in none.vectors() {
        let n: f32 = v.iter().map(|x| x * x).sum();
        assert!((n - 1.0).abs() < 1e-5);
    }
}

/// Truncated files and lying headers are errors, never panics.
#[test]
fn malformed_safetensors_are_errors() {
    let bytes = minilm_bytes();
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let data_start = 8 + header_len;
    // Truncations: inside the length, inside the header, inside the data, one byte short.
    for n in [
        0,
        7,
        8,
        100,
        data_start - 1,
        data_start,
        data_start + 1000,
        bytes.len() / 2,
        bytes.len() - 1,
    ] {
        let r = SafeTensors::read(&bytes[..n]);
        assert!(r.is_err(), "truncated to {n} bytes was accepted");
        println!("truncated to {n}: {}", r.unwrap_err());
    }
    let header = std::str::from_utf8(&bytes[8..data_start])
        .unwrap()
        .to_string();
    let with_header = |h: &str| {
        let mut f = (h.len() as u64).to_le_bytes().to_vec();
        f.extend_from_slice(h.as_bytes());
        f.extend_from_slice(&bytes[data_start..]);
        f
    };
    assert!(SafeTensors::read(with_header(&header).as_slice()).is_ok());
    // Lies of the same length: a shape that disagrees with its byte span, an offset past
    // the end, an unknown dtype, a header length larger than the file.
    let lies = [
        header.replacen("\"shape\":[512,384]", "\"shape\":[513,384]", 1),
        header.replacen("90856960]", "99856960]", 1),
        header.replacen("\"dtype\":\"F32\"", "\"dtype\":\"F31\"", 1),
        header.replacen("\"data_offsets\":[0,4096]", "\"data_offsets\":[0,4095]", 1),
    ];
    for (i, h) in lies.iter().enumerate() {
        assert_ne!(h, &header, "lie {i} did not apply");
        let r = SafeTensors::read(with_header(h).as_slice());
        assert!(r.is_err(), "lie {i} accepted");
        println!("lie {i}: {}", r.unwrap_err());
    }
    let mut long_len = bytes[..64].to_vec();
    long_len[..8].copy_from_slice(&(1u64 << 40).to_le_bytes());
    assert!(matches!(
        SafeTensors::read(long_len.as_slice()),
        Err(SafetensorsError::HeaderTooLarge(_))
    ));
    let mut past_end = bytes[..64].to_vec();
    past_end[..8].copy_from_slice(&1000u64.to_le_bytes());
    assert!(matches!(
        SafeTensors::read(past_end.as_slice()),
        Err(SafetensorsError::HeaderOutOfBounds { .. })
    ));

    // A consistent file with the wrong shapes for the model (transposed FFN, same size):
    // the header is valid, the model load is a typed error.
    let swapped = header
        .replacen("\"shape\":[1536,384]", "\"shape\":[@@@,@@@@]", 1)
        .replacen("\"shape\":[384,1536]", "\"shape\":[1536,384]", 1)
        .replacen("\"shape\":[@@@,@@@@]", "\"shape\":[384,1536]", 1);
    assert_ne!(swapped, header);
    let f = with_header(&swapped);
    let st = SafeTensors::read(f.as_slice()).unwrap();
    let cfg = BertConfig::from_hf_json(&minilm_files().config_json).unwrap();
    let leaked: &'static [u8] = Box::leak(f.into_boxed_slice());
    let r = BertModel::load_safetensors(cfg.clone(), &st, Box::new(SliceWeights(leaked)));
    assert!(r.is_err());
    println!("transposed ffn: {}", r.err().unwrap());
    // A missing tensor.
    let renamed = header.replacen(
        "encoder.layer.3.output.dense.weight",
        "encoder.layer.3.output.dense.wexght",
        1,
    );
    let f = with_header(&renamed);
    let st = SafeTensors::read(f.as_slice()).unwrap();
    let leaked: &'static [u8] = Box::leak(f.into_boxed_slice());
    let r = BertModel::load_safetensors(cfg, &st, Box::new(SliceWeights(leaked)));
    assert!(r.is_err());
    println!("missing tensor: {}", r.err().unwrap());

    // Byte flips anywhere in the header: the parser never panics.
    let mut s = 0x2545_F491_4F6C_DD1Du64;
    let mut file = bytes[..data_start].to_vec();
    for _ in 0..2000 {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        let pos = 8 + (s as usize % header_len);
        let old = file[pos];
        file[pos] = (s >> 32) as u8;
        let _ = SafeTensors::read(file.as_slice());
        file[pos] = old;
    }
}

/// Embeddings per second, natively (one thread), for 16- and 256-token inputs in batches
/// of 1 and 32. The decoder's 256 x 32 case (8192 tokens) runs only with
/// `EMBED_BENCH_FULL=1`.
#[test]
#[ignore]
fn bench_embeddings() {
    let full = std::env::var_os("EMBED_BENCH_FULL").is_some();
    let st_model = minilm_safetensors();
    let f16 = minilm_gguf(GgmlType::F16);
    let q8 = minilm_gguf(GgmlType::Q8_0);
    let smol_path = common::smollm2("q8_0");
    let smol_header = chord_core::gguf::FileSource::open(&smol_path).unwrap();
    let smol_weights = SliceWeights(std::fs::read(&smol_path).unwrap());
    let smol = pooling::load_gguf_embedder(&smol_header, Box::new(smol_weights)).unwrap();
    let models: [(&str, &dyn Embedder, bool); 4] = [
        ("all-MiniLM-L6-v2 F32 (safetensors)", &st_model, true),
        ("all-MiniLM-L6-v2 F16 (GGUF)", f16.as_ref(), true),
        ("all-MiniLM-L6-v2 Q8_0 (GGUF)", q8.as_ref(), true),
        ("SmolLM2-135M Q8_0 (mean)", smol.as_ref(), full),
    ];
    println!("| model | tokens | batch | embeddings/s | tokens/s | ms/batch |");
    println!("|---|---|---|---|---|---|");
    for (name, e, big) in models {
        for n_tokens in [16usize, 256] {
            // Ordinary tokens (ids 2000..), wrapped as the tokenizer wraps every input.
            let wrap = e.tokenizer().encode("", true, true).unwrap();
            let body = n_tokens - wrap.len();
            for batch in [1usize, 32] {
                if n_tokens * batch > 4096 && !big {
                    println!("| {name} | {n_tokens} | {batch} | (EMBED_BENCH_FULL=1) | | |");
                    continue;
                }
                let seqs: Vec<Vec<u32>> = (0..batch)
                    .map(|b| {
                        let mut ids = wrap[..wrap.len().min(1)].to_vec();
                        ids.extend((0..body).map(|i| 2000 + ((b * 7 + i) % 5000) as u32));
                        ids.extend_from_slice(&wrap[wrap.len().min(1)..]);
                        assert_eq!(ids.len(), n_tokens);
                        ids
                    })
                    .collect();
                if batch == 1 {
                    e.embed_tokens(seqs.clone(), &EmbedOptions::default())
                        .unwrap();
                }
                let start = std::time::Instant::now();
                let mut runs = 0;
                while runs < 1 || start.elapsed().as_secs_f64() < 2.0 {
                    e.embed_tokens(seqs.clone(), &EmbedOptions::default())
                        .unwrap();
                    runs += 1;
                }
                let secs = start.elapsed().as_secs_f64();
                let per_s = (runs * batch) as f64 / secs;
                println!(
                    "| {name} | {n_tokens} | {batch} | {per_s:.1} | {:.0} | {:.1} |",
                    per_s * n_tokens as f64,
                    secs * 1000.0 / runs as f64
                );
            }
        }
    }
}
