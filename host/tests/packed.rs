//! Packed components (`chord pack`): SmolLM2 Q4_1 packed into several shards must
//! answer exactly like the runtime-loaded component, import nothing but WASI, run
//! in a plain Wasmtime host, and describe its layout in `chord info`.
//! Needs `cargo xtask build --release` (target/wasm-chord.wasm and
//! target/wasm-chord-packed-engine.wasm) and `scripts/fetch-models.sh smollm2`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

mod common;

use chord::runtime::{ComponentEngine, RawBindings};
use common::{built, smollm2, workspace};

/// Small enough that SmolLM2 Q4_1 (~92 MiB of tensors) needs 3 shards.
const SHARD_SIZE: u64 = 40_000_000;

/// SmolLM2 Q4_1 packed with the `chord` binary into `name` (once per test binary),
/// with `--shard-size` when given.
fn pack_once(
    cell: &'static OnceLock<PathBuf>,
    name: &str,
    shard_size: Option<u64>,
) -> &'static Path {
    cell.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("wasm-chord-packed-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join(name);
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_chord"));
        cmd.arg("pack").arg(smollm2()).arg("-o").arg(&out);
        if let Some(size) = shard_size {
            cmd.args(["--shard-size", &size.to_string()]);
        }
        let status = cmd
            .arg("--engine")
            .arg(built("wasm-chord-packed-engine.wasm"))
            .status()
            .unwrap();
        assert!(status.success(), "chord pack failed");
        out
    })
}

/// In three shard memories.
fn packed() -> &'static Path {
    static PACKED: OnceLock<PathBuf> = OnceLock::new();
    pack_once(&PACKED, "smollm2-q4_1-shards.wasm", Some(SHARD_SIZE))
}

/// With the default shard size: one shard, so resident in memory 0.
fn resident() -> &'static Path {
    static PACKED: OnceLock<PathBuf> = OnceLock::new();
    pack_once(&PACKED, "smollm2-q4_1-resident.wasm", None)
}

/// The runtime-loaded component's logits and greedy tokens for a fixture prompt, and
/// llama.cpp's first greedy token after it.
fn runtime_loaded_logits() -> (Vec<u32>, chord::runtime::EvalResult, u32) {
    let fixture = std::fs::read_to_string(
        workspace().join("fixtures/logits/smollm2-135m-instruct-q4_1.jsonl"),
    )
    .unwrap();
    let case: serde_json::Value = serde_json::from_str(fixture.lines().nth(1).unwrap()).unwrap();
    let ids: Vec<u32> = case["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect();
    let positions = case["positions"].as_array().unwrap();
    let expected_first = positions.last().unwrap()["top"][0][0].as_u64().unwrap() as u32;
    let mut runtime = ComponentEngine::new(built("wasm-chord.wasm")).unwrap();
    runtime.load_model(smollm2()).unwrap();
    let want = runtime.logits(&ids, 8, 10).unwrap();
    (ids, want, expected_first)
}

#[test]
fn packed_component_has_shards_and_imports_only_wasi() {
    let bytes = std::fs::read(packed()).unwrap();
    chord_pack::validate_component(&bytes).unwrap();
    let mut imports = Vec::new();
    let mut shard_modules = 0;
    // Nesting depth: only the outer component's imports are the host's business.
    let mut depth = 0;
    for payload in wasmparser::Parser::new(0).parse_all(&bytes) {
        match payload.unwrap() {
            wasmparser::Payload::ModuleSection { .. }
            | wasmparser::Payload::ComponentSection { .. } => depth += 1,
            wasmparser::Payload::End(_) => depth -= 1,
            wasmparser::Payload::ComponentImportSection(r) if depth == 0 => {
                for imp in r {
                    let imp = imp.unwrap();
                    // Type imports (`import-type-*`) only name the exports' types.
                    if !matches!(imp.ty, wasmparser::ComponentTypeRef::Type(..)) {
                        imports.push(imp.name.name.to_string());
                    }
                }
            }
            wasmparser::Payload::ImportSection(r) => {
                for imp in r.into_imports() {
                    if imp.unwrap().module.starts_with("wasm-chord:shard") {
                        shard_modules += 1;
                    }
                }
            }
            _ => {}
        }
    }
    assert!(!imports.is_empty());
    // WASI, and the types-only interface the exports' types come from (it has no
    // functions: any host satisfies it); never the `weights` interface.
    for name in &imports {
        assert!(
            name.starts_with("wasi:") || name.starts_with("wasm-chord:llm/types@"),
            "unexpected import {name}"
        );
    }
    let layout = chord_pack::read_layout(&bytes).unwrap();
    assert!(layout.shards.len() >= 2, "{} shards", layout.shards.len());
    // The engine imports each shard's memory once.
    assert_eq!(shard_modules, layout.shards.len());
    for s in &layout.shards {
        assert!(s.len <= SHARD_SIZE);
    }
}

#[test]
fn packed_generates_the_same_logits_and_tokens_as_runtime_loaded() {
    let (ids, want, expected_first) = runtime_loaded_logits();
    let packed = ComponentEngine::new(packed()).unwrap();
    let got = packed.logits(&ids, 8, 10).unwrap();
    assert_eq!(got, want, "packed and runtime-loaded logits differ");
    // The prompt's last position predicts the first greedy token as llama.cpp does.
    assert_eq!(got.positions.last().unwrap().top[0].0, expected_first);

    let info = packed.info().unwrap();
    assert_eq!(info.architecture, "llama");
    assert_eq!(info.layer_count, 30);
}

/// A model that fits in one shard is packed into memory 0: the engine imports its
/// memory 0 from the shard module, the weights sit above the engine's own memory,
/// and the answers are the runtime-loaded component's.
#[test]
fn a_one_shard_model_is_resident_in_memory_0() {
    let bytes = std::fs::read(resident()).unwrap();
    chord_pack::validate_component(&bytes).unwrap();
    let layout = chord_pack::read_layout(&bytes).unwrap();
    assert_eq!(layout.shards.len(), 1);
    let base = layout.resident_base.expect("one shard: resident");
    assert!(base > 0 && base.is_multiple_of(65536), "{base:#x}");
    // The engine module defines no memory: its memory 0 is the shard's.
    let mut memory_imports = Vec::new();
    for payload in wasmparser::Parser::new(0).parse_all(&bytes) {
        if let wasmparser::Payload::ImportSection(r) = payload.unwrap() {
            for imp in r.into_imports() {
                let imp = imp.unwrap();
                if let wasmparser::TypeRef::Memory(m) = imp.ty {
                    memory_imports.push((imp.module.to_string(), m));
                }
            }
        }
    }
    let shard0: Vec<_> = memory_imports
        .iter()
        .filter(|(module, _)| module == "wasm-chord:shard0")
        .collect();
    assert_eq!(shard0.len(), 1, "{memory_imports:?}");
    let (_, memory) = shard0[0];
    assert!(!memory.memory64 && memory.maximum.is_none(), "{memory:?}");
    assert_eq!(memory.initial, base / 65536 + layout.shards[0].pages);

    let (ids, want, _) = runtime_loaded_logits();
    let engine = ComponentEngine::new(resident()).unwrap();
    assert_eq!(engine.logits(&ids, 8, 10).unwrap(), want);
    let mut inst = engine.instance().unwrap();
    let sizes = inst.memory_sizes().unwrap();
    assert_eq!(sizes.weights, 0, "{sizes:?}");
    assert!(sizes.main >= base + layout.shards[0].len, "{sizes:?}");
    // A generation grows the heap above the weights and leaves them intact.
    let params = chord::runtime::SamplingParams {
        max_tokens: Some(4),
        ..Default::default()
    };
    inst.generate("Once upon a time", &params).unwrap();
    assert_eq!(inst.logits(&ids, 8, 10).unwrap(), want);
}

/// A plain Wasmtime host that links nothing but WASI runs the packed component.
#[test]
fn packed_runs_in_a_wasi_only_host() {
    let engine = wasmtime::Engine::new(&chord::runtime::wasmtime_config()).unwrap();
    let component = wasmtime::component::Component::from_file(&engine, packed()).unwrap();
    let mut linker = wasmtime::component::Linker::<WasiOnly>::new(&engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker).unwrap();
    let mut store = wasmtime::Store::new(
        &engine,
        WasiOnly {
            ctx: wasmtime_wasi::WasiCtx::builder().build(),
            table: wasmtime::component::ResourceTable::new(),
        },
    );
    store.set_epoch_deadline(1 << 40);
    let instance = linker.instantiate(&mut store, &component).unwrap();
    let bindings = RawBindings::new(&mut store, &instance).unwrap();
    let inference = bindings.wasm_chord_llm_inference();
    let ids = inference
        .call_tokenize(&mut store, "The capital of France is", true, true)
        .unwrap()
        .unwrap();
    assert_eq!(ids, vec![504, 3575, 282, 4649, 314]);
}

struct WasiOnly {
    ctx: wasmtime_wasi::WasiCtx,
    table: wasmtime::component::ResourceTable,
}

impl wasmtime_wasi::WasiView for WasiOnly {
    fn ctx(&mut self) -> wasmtime_wasi::WasiCtxView<'_> {
        wasmtime_wasi::WasiCtxView {
            ctx: &mut self.ctx,
            table: &mut self.table,
        }
    }
}

#[test]
fn info_prints_the_shard_layout() {
    let out = Command::new(env!("CARGO_BIN_EXE_chord"))
        .args(["info", "--tensors", "--model"])
        .arg(packed())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("(packed component)"), "{text}");
    assert!(text.contains("3 shards"), "{text}");
    assert!(text.contains("shard 0: memory wasm-chord:shard0"), "{text}");
    assert!(text.contains("shard 2: memory wasm-chord:shard2"), "{text}");
    // Tensor lines give shard-relative and virtual addresses.
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("output_norm.weight"))
        .unwrap_or_else(|| panic!("no output_norm line in {text}"));
    assert!(
        line.contains("@ shard 2 + 0x") && line.contains("(virtual 0x2"),
        "{line}"
    );
}

/// A tensor larger than the shard size is refused with a typed error.
#[test]
fn too_small_shards_are_refused() {
    let model = std::fs::read(smollm2()).unwrap();
    let engine = std::fs::read(built("wasm-chord-packed-engine.wasm")).unwrap();
    let err = chord_pack::pack(&model, &engine, 8 << 20, &mut std::io::sink()).unwrap_err();
    assert!(
        matches!(
            err,
            chord_pack::PackError::Plan(chord_pack::PlanError::TensorTooLarge { .. })
        ),
        "{err}"
    );
}
