//! The component computes what the native engine computes: for every SmolLM2 Q4_1
//! and Gemma 3 270M Q4_K_M logits fixture (up to 555 prompt tokens), `parity.logits`
//! through the component
//! gives the same greedy tokens and the same top logits as `Engine::eval_logits`
//! natively (the wasm build runs the SIMD128 kernels, the native one AVX2 or scalar
//! ones, all in the same float order).
//! Also prints native vs component timings.
//!
//! Needs `cargo xtask build --release` and `scripts/fetch-models.sh`.

mod common;

use std::time::Instant;

use chord::runtime::ComponentEngine;
use chord_core::engine::Engine;
use chord_core::gguf::FileSource;
use chord_core::weights::SliceWeights;
use common::{component_path, model_path, workspace};

struct Case {
    ids: Vec<u32>,
    greedy: Vec<u32>,
}

fn fixtures(name: &str) -> Vec<Case> {
    let path = workspace().join(format!("fixtures/logits/{name}.jsonl"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let ids = v["ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap() as u32)
                .collect();
            let greedy = v["greedy"]
                .as_array()
                .unwrap()
                .iter()
                .map(|g| g["token"].as_u64().unwrap() as u32)
                .collect();
            Case { ids, greedy }
        })
        .collect()
}

#[test]
fn component_matches_native_on_smollm2() {
    check("smollm2-135m-instruct-q4_1");
}

/// K-quant, Q5_0 and Q8_0 kernels, GELU, sliding-window attention (case 3).
#[test]
fn component_matches_native_on_gemma3() {
    check("gemma-3-270m-q4_k_m");
}

fn check(name: &str) {
    let model = model_path(&format!("{name}.gguf"));
    let native = Engine::load(
        &FileSource::open(&model).unwrap(),
        Box::new(SliceWeights(std::fs::read(&model).unwrap())),
    )
    .expect("native engine");

    let mut engine = ComponentEngine::new(component_path()).unwrap();
    engine.load_model(&model).unwrap();
    let mut inst = engine.instance().unwrap();
    let t = Instant::now();
    inst.info().unwrap();
    eprintln!(
        "component: instantiate {:.2?}, load {name} {:.2?}",
        inst.instantiate_time,
        t.elapsed()
    );

    let top_k = 10;
    let mut llama_cpp_mismatches = 0;
    for (i, case) in fixtures(name).iter().enumerate() {
        let steps = case.greedy.len();
        let t0 = Instant::now();
        let n = native.eval_logits(&case.ids, steps, top_k).unwrap();
        let t_native = t0.elapsed();
        let t1 = Instant::now();
        let c = inst.logits(&case.ids, steps as u32, top_k as u32).unwrap();
        let t_component = t1.elapsed();
        eprintln!(
            "case {i}: {} prompt tokens + {steps} greedy steps: native {t_native:.2?}, component {t_component:.2?} ({:.1}x)",
            case.ids.len(),
            t_component.as_secs_f64() / t_native.as_secs_f64()
        );

        assert_eq!(c.positions.len(), n.positions.len());
        // Every kernel in both builds follows the same float order (the SIMD ones are
        // bit-identical to the scalar reference) and nothing calls the platform's libm
        // (`chord_core::math`), so the logits agree to the bit, not just closely.
        let mut max_lse_diff = 0f32;
        for (p, (cp, np)) in c.positions.iter().zip(&n.positions).enumerate() {
            max_lse_diff = max_lse_diff.max((cp.lse - np.lse).abs());
            assert_eq!(
                cp.top, np.top,
                "case {i} position {p}: top-{top_k} logits differ"
            );
        }
        eprintln!("case {i}: largest lse difference {max_lse_diff:.2e}");
        assert!(
            max_lse_diff < 1e-5,
            "case {i}: lse differs by {max_lse_diff}"
        );
        let native_tokens: Vec<u32> = n.greedy.iter().map(|g| g.token).collect();
        let component_tokens: Vec<u32> = c.greedy.iter().map(|g| g.token).collect();
        assert_eq!(
            component_tokens, native_tokens,
            "case {i}: greedy tokens differ between the component and the native engine"
        );
        if component_tokens != case.greedy {
            llama_cpp_mismatches += 1;
            eprintln!(
                "case {i}: greedy path differs from llama.cpp's: {component_tokens:?} vs {:?}",
                case.greedy
            );
        }
    }
    eprintln!("greedy paths differing from llama.cpp: {llama_cpp_mismatches}");
}
