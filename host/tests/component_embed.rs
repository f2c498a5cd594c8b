//! Embeddings through the component's `embed` export, against the references in
//! `fixtures/embeddings/`: all-MiniLM-L6-v2 (converted to GGUF F32/F16/Q8_0 by the
//! same code as `chord convert`) and SmolLM2 Q8_0 mean-pooled.
//!
//! Needs `cargo xtask build --release` and `scripts/fetch-models.sh`.

mod common;

use std::path::PathBuf;

use chord::runtime::{
    ComponentEngine, EmbedOptions, Embeddings, GuestError, Pooling, RequestError, SamplingParams,
};
use chord_core::pooling::cosine;
use chord_core::quant::GgmlType;
use common::{component_path, fixture};
use serde_json::Value;

fn minilm_gguf(ty: GgmlType) -> PathBuf {
    chord::models::minilm_gguf(ty).unwrap()
}

fn texts() -> Vec<String> {
    serde_json::from_str(&std::fs::read_to_string(fixture("embeddings/texts.json")).unwrap())
        .unwrap()
}

/// (case, reference embedding) for every case that has one.
fn references(file: &str) -> Vec<(usize, Vec<f32>)> {
    std::fs::read_to_string(fixture(&format!("embeddings/{file}")))
        .unwrap()
        .lines()
        .filter_map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            let e = v["embedding"].as_array()?;
            Some((
                v["case"].as_u64().unwrap() as usize,
                e.iter().map(|x| x.as_f64().unwrap() as f32).collect(),
            ))
        })
        .collect()
}

fn engine(model: &std::path::Path) -> ComponentEngine {
    let mut e = ComponentEngine::new(component_path()).unwrap();
    e.load_model(model).unwrap();
    e
}

fn defaults() -> EmbedOptions {
    EmbedOptions {
        pooling: None,
        normalize: None,
        truncate: false,
    }
}

/// Embeds every reference case in one call; returns the worst cosine similarity.
fn worst_cosine(label: &str, e: &ComponentEngine, file: &str, min: f64) -> f64 {
    let refs = references(file);
    let all = texts();
    let batch: Vec<String> = refs.iter().map(|(c, _)| all[*c].clone()).collect();
    let out = e.embed(&batch, defaults()).unwrap();
    assert_eq!(out.data.len(), batch.len());
    let mut worst = (f64::INFINITY, 0);
    for ((case, want), got) in refs.iter().zip(&out.data) {
        assert_eq!(got.values.len(), want.len(), "{label} case {case}: dim");
        let c = cosine(&got.values, want);
        if c < worst.0 {
            worst = (c, *case);
        }
    }
    println!(
        "EMBED component {label}: {} texts, worst cosine {:.7} (case {})",
        refs.len(),
        worst.0,
        worst.1
    );
    assert!(
        worst.0 >= min,
        "{label}: cosine {} < {min} (case {})",
        worst.0,
        worst.1
    );
    worst.0
}

#[test]
fn minilm_f32_f16_q8_0_match_the_reference() {
    for (ty, min) in [
        (GgmlType::F32, 0.9999),
        (GgmlType::F16, 0.999),
        (GgmlType::Q8_0, 0.995),
    ] {
        let e = engine(&minilm_gguf(ty));
        let info = e.info().unwrap();
        assert_eq!(info.architecture, "bert");
        assert_eq!(info.embedding_length, 384);
        worst_cosine(
            &format!("all-MiniLM-L6-v2 {}", ty.name()),
            &e,
            "all-minilm-l6-v2.jsonl",
            min,
        );
    }
}

#[test]
fn smollm2_q8_0_mean_pooling_matches_llama_cpp() {
    let e = engine(&chord::models::smollm2_as(GgmlType::Q8_0).unwrap());
    worst_cosine(
        "SmolLM2 Q8_0 mean",
        &e,
        "smollm2-135m-instruct-q8_0.mean.jsonl",
        0.999,
    );
}

#[test]
fn options_override_the_model_defaults() {
    let e = engine(&minilm_gguf(GgmlType::F32));
    let text = vec!["The quick brown fox".to_string()];
    let def: Embeddings = e.embed(&text, defaults()).unwrap();
    assert_eq!(def.pooling, Pooling::Mean);
    assert!(def.normalized);
    let norm: f32 = def.data[0].values.iter().map(|v| v * v).sum();
    assert!((norm - 1.0).abs() < 1e-5, "default output is L2-normalised");

    let raw = e
        .embed(
            &text,
            EmbedOptions {
                pooling: Some(Pooling::Cls),
                normalize: Some(false),
                truncate: false,
            },
        )
        .unwrap();
    assert_eq!(raw.pooling, Pooling::Cls);
    assert!(!raw.normalized);
    assert_ne!(raw.data[0].values, def.data[0].values);

    let tokens = e
        .embed(
            &text,
            EmbedOptions {
                pooling: Some(Pooling::None),
                normalize: Some(false),
                truncate: false,
            },
        )
        .unwrap();
    let n = tokens.data[0].ids.len();
    assert_eq!(tokens.data[0].values.len(), n * 384, "one vector per token");
    // CLS pooling is the first token's vector.
    assert_eq!(&tokens.data[0].values[..384], &raw.data[0].values[..]);
}

#[test]
fn bad_inputs_are_typed_errors() {
    let e = engine(&minilm_gguf(GgmlType::F32));
    // Far beyond MiniLM's 512 positions.
    let long = vec!["word ".repeat(2000)];
    match e.embed(&long, defaults()) {
        Err(RequestError::Guest(GuestError::InvalidInput(m))) => {
            assert!(m.contains("512"), "{m}")
        }
        other => panic!("expected invalid-input, got {other:?}"),
    }
    // With truncation it fits, and says so.
    let cut = e
        .embed(
            &long,
            EmbedOptions {
                truncate: true,
                ..defaults()
            },
        )
        .unwrap();
    assert!(cut.data[0].truncated);
    assert_eq!(cut.data[0].ids.len(), 512);
    // An encoder cannot generate.
    match e.generate("hello", &SamplingParams::default()) {
        Err(RequestError::Guest(GuestError::UnsupportedModel(_))) => {}
        other => panic!("expected unsupported-model, got {other:?}"),
    }
    // SmolLM2 has no BOS: the empty text has no tokens.
    let smol = engine(&chord::models::smollm2_as(GgmlType::Q8_0).unwrap());
    match smol.embed(&[String::new()], defaults()) {
        Err(RequestError::Guest(GuestError::InvalidInput(m))) => {
            assert!(m.contains("input 0"), "{m}")
        }
        other => panic!("expected invalid-input, got {other:?}"),
    }
}
