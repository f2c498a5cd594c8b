//! `chord bench` and its workload (`diagnostics.run-tokens`): the component and the
//! native engine run the same greedy path, EOG tokens do not stop it, and
//! `--json` prints exactly one object with the documented fields.
//!
//! Needs `cargo xtask build --release` and `scripts/fetch-models.sh smollm2`.

use std::process::Command;

mod common;

use chord::runtime::ComponentEngine;
use chord_core::gguf::FileSource;
use chord_core::weights::SliceWeights;
use common::{component_path, smollm2};

#[test]
fn run_tokens_is_the_same_natively_and_in_the_component() {
    let model = smollm2();
    let bytes = std::fs::read(&model).unwrap();
    let engine = chord_core::engine::Engine::load(
        &FileSource::open(&model).unwrap(),
        Box::new(SliceWeights(bytes)),
    )
    .unwrap();
    let mut component = ComponentEngine::new(component_path()).unwrap();
    component.load_model(&model).unwrap();
    let mut instance = component.instance().unwrap();
    // The EOS token first: the greedy steps after it must still all run.
    let eos = engine.tokenizer().eos().expect("SmolLM2 has an EOS token");
    for (ids, steps) in [(vec![eos], 6u32), (vec![1, 2, 3, eos], 0), (vec![504], 4)] {
        let native =
            chord_core::throughput::run_tokens(engine.model(), &ids, steps as usize).unwrap();
        let wasm = instance.run_tokens(&ids, steps).unwrap();
        assert_eq!(native, wasm, "ids {ids:?}, {steps} steps");
    }
    // Bad input is a typed error, and the instance stays usable.
    assert!(instance.run_tokens(&[], 1).is_err());
    assert!(instance.run_tokens(&[u32::MAX], 1).is_err());
    assert!(instance.run_tokens(&[1], u32::MAX).is_err());
    assert!(instance.run_tokens(&[1], 1).is_ok());
}

#[test]
fn bench_json_has_the_documented_fields() {
    for mode in [&["--native"][..], &["--component"][..]] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_chord"));
        cmd.args(["bench", "--model"])
            .arg(smollm2())
            .args(["--pp", "8", "--tg", "3", "--json"])
            .args(mode);
        if mode[0] == "--component" {
            cmd.arg(component_path());
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{mode:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let obj = v.as_object().unwrap();
        let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "mode",
                "model",
                "pp_tok_s",
                "pp_tokens",
                "tg_tok_s",
                "tg_tokens"
            ]
        );
        assert_eq!(v["pp_tokens"], 8);
        assert_eq!(v["tg_tokens"], 3);
        assert!(v["pp_tok_s"].as_f64().unwrap() > 0.0);
        assert!(v["tg_tok_s"].as_f64().unwrap() > 0.0);
    }
    let out = Command::new(env!("CARGO_BIN_EXE_chord"))
        .args(["bench", "--packed", "--model"])
        .arg(smollm2())
        .output()
        .unwrap();
    // A GGUF is not a packed component: a clear error saying how to make one.
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a packed component"));
}
