//! Spin LLM compatibility: an application written only against Spin's
//! `fermyon:spin/llm@2.0.0` (examples/spin-llm-app) is composed onto the engine
//! component the way `wac plug` does it, and the composition runs on this host,
//! without Spin: its answers equal the engine's own `inference` exports.
//! Needs `cargo xtask build --release` (which builds both components).

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use chord::runtime::app::{run_app, AppOutput};
use chord::runtime::{ComponentEngine, EmbedOptions, SamplingParams};
use common::{built, component_path, smollm2};
use wac_graph::types::Package;
use wac_graph::{CompositionGraph, EncodeOptions};

const SPIN_LLM: &str = "fermyon:spin/llm@2.0.0";
const PROMPT: &str = "The capital of France is";

/// Names of a component's top-level imports.
fn imports(path: &Path) -> Vec<String> {
    let bytes = std::fs::read(path).unwrap();
    let mut names = Vec::new();
    let mut depth = 0;
    for payload in wasmparser::Parser::new(0).parse_all(&bytes) {
        match payload.unwrap() {
            wasmparser::Payload::ModuleSection { .. }
            | wasmparser::Payload::ComponentSection { .. } => depth += 1,
            wasmparser::Payload::End(_) => depth -= 1,
            wasmparser::Payload::ComponentImportSection(r) if depth == 0 => {
                for import in r {
                    names.push(import.unwrap().name.name.to_string());
                }
            }
            _ => {}
        }
    }
    names
}

/// `wac plug target/spin-llm-app.wasm --plug target/wasm-chord.wasm`, done with the
/// library behind `wac`, once per test binary.
fn composed() -> &'static Path {
    static OUT: OnceLock<PathBuf> = OnceLock::new();
    OUT.get_or_init(|| {
        let mut graph = CompositionGraph::new();
        let app =
            Package::from_file("app", None, built("spin-llm-app.wasm"), graph.types_mut()).unwrap();
        let app = graph.register_package(app).unwrap();
        let engine =
            Package::from_file("engine", None, component_path(), graph.types_mut()).unwrap();
        let engine = graph.register_package(engine).unwrap();
        wac_graph::plug(&mut graph, vec![engine], app).unwrap();
        let bytes = graph.encode(EncodeOptions::default()).unwrap();
        let dir = std::env::temp_dir().join(format!("wasm-chord-spin-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("spin-llm-app.composed.wasm");
        std::fs::write(&out, bytes).unwrap();
        out
    })
}

fn run(args: &[&str]) -> AppOutput {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    run_app(composed(), &[(String::new(), smollm2())], &args).unwrap()
}

#[test]
fn the_app_imports_spin_llm_and_the_composition_does_not() {
    let app = imports(&built("spin-llm-app.wasm"));
    assert!(app.iter().any(|i| i == SPIN_LLM), "app imports: {app:?}");
    assert!(!app.iter().any(|i| i.starts_with("wasm-chord:")));
    let composed = imports(composed());
    assert!(!composed.iter().any(|i| i == SPIN_LLM), "{composed:?}");
    // What is left: WASI and the engine's model source.
    for i in &composed {
        assert!(
            i.starts_with("wasi:")
                || i.starts_with("wasm-chord:llm/weights")
                || i.starts_with("wasm-chord:llm/types"),
            "unexpected import {i}"
        );
    }
}

#[test]
fn infer_through_spin_llm_equals_the_engines_generate() {
    let out = run(&["infer", "", PROMPT, "12"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.success, "the app failed: {stderr}");
    let text = String::from_utf8(out.stdout).unwrap();

    let mut engine = ComponentEngine::new(component_path()).unwrap();
    engine.load_model(smollm2()).unwrap();
    let expected = engine
        .generate(
            PROMPT,
            &SamplingParams {
                max_tokens: Some(12),
                temperature: Some(0.0),
                top_k: Some(40),
                top_p: Some(0.9),
                min_p: Some(0.0),
                repeat_penalty: Some(1.0),
                repeat_last_n: Some(64),
                ..Default::default()
            },
        )
        .unwrap();
    assert!(!text.is_empty());
    assert_eq!(text, expected.text);
    assert!(
        stderr.contains(&format!(
            "{} prompt tokens, {} generated",
            expected.usage.prompt_tokens, expected.usage.generated_tokens
        )),
        "{stderr}"
    );
}

#[test]
fn generate_embeddings_through_spin_llm_equals_the_engines_embed() {
    let out = run(&["embed", "", "hello world", "the quick brown fox"]);
    assert!(out.success, "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<Vec<f32>> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            // Parsed as f32 directly: Rust prints the shortest text that reads back
            // as the same f32.
            let l = l.trim_start_matches('[').trim_end_matches(']');
            l.split(',').map(|v| v.parse().unwrap()).collect()
        })
        .collect();

    let mut engine = ComponentEngine::new(component_path()).unwrap();
    engine.load_model(smollm2()).unwrap();
    let texts = vec!["hello world".to_string(), "the quick brown fox".to_string()];
    let options = EmbedOptions {
        pooling: None,
        normalize: None,
        truncate: false,
    };
    let expected = engine.embed(&texts, options).unwrap();
    assert_eq!(lines.len(), 2);
    for (got, want) in lines.iter().zip(&expected.data) {
        assert_eq!(got.len(), expected.dim as usize);
        assert_eq!(got, &want.values);
    }
}

#[test]
fn unknown_model_is_model_not_supported() {
    let out = run(&["infer", "llama2-chat", PROMPT]);
    assert!(!out.success);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("model not supported"), "{stderr}");
}

#[test]
fn invalid_parameters_are_invalid_input() {
    // max-tokens 0 is refused by the engine, reported through Spin's error type.
    let out = run(&["infer", "", PROMPT, "0"]);
    assert!(!out.success);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("invalid input"), "{stderr}");
}
