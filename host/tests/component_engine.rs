//! The real component in Wasmtime: weights memory, model info, tokenize/generate,
//! typed errors. Needs `cargo xtask build --release` (target/wasm-chord.wasm) and
//! the models (`scripts/fetch-models.sh`); a missing file fails the test with a
//! message saying how to get it.

mod common;

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Instant;

use common::{component_path, smollm2};

use chord::runtime::{
    fnv1a64, ComponentEngine, FinishReason, GuestError, RequestError, SamplingParams,
};

/// One engine for the whole test binary (compiling the component is slow; the
/// `.cwasm` cache makes later runs fast).
fn engine() -> &'static ComponentEngine {
    static ENGINE: OnceLock<ComponentEngine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let t0 = Instant::now();
        let mut engine = ComponentEngine::new(component_path()).expect("loading the component");
        eprintln!(
            "component ready in {:.2?} (from cache: {})",
            t0.elapsed(),
            engine.load_stats().from_cache
        );
        engine.load_model(smollm2()).unwrap();
        let truncated = truncated_smollm2();
        engine.add_model("truncated", &truncated).unwrap();
        engine
    })
}

/// The first 60% of SmolLM2: a valid header whose tensor data is cut off.
fn truncated_smollm2() -> PathBuf {
    let bytes = std::fs::read(smollm2()).unwrap();
    let dir = std::env::temp_dir().join(format!("wasm-chord-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("truncated.gguf");
    std::fs::write(&p, &bytes[..bytes.len() * 6 / 10]).unwrap();
    p
}

fn params() -> SamplingParams {
    SamplingParams::default()
}

#[test]
fn component_defines_a_64_bit_weights_memory() {
    let bytes = std::fs::read(component_path()).unwrap();
    // Find the core module(s) with two memories: the second must be 64-bit.
    let mut engine_modules = 0;
    let mut depth_modules: Vec<Vec<wasmparser::MemoryType>> = Vec::new();
    for payload in wasmparser::Parser::new(0).parse_all(&bytes) {
        match payload.unwrap() {
            wasmparser::Payload::ModuleSection { .. } => depth_modules.push(Vec::new()),
            wasmparser::Payload::MemorySection(r) => {
                let m = depth_modules
                    .last_mut()
                    .expect("memory section outside a module");
                for mem in r {
                    m.push(mem.unwrap());
                }
            }
            wasmparser::Payload::ImportSection(r) => {
                for imp in r.into_imports() {
                    let imp = imp.unwrap();
                    if let wasmparser::TypeRef::Memory(mem) = imp.ty {
                        if let Some(m) = depth_modules.last_mut() {
                            m.push(mem);
                        }
                    }
                }
            }
            _ => {}
        }
    }
    for mems in &depth_modules {
        if mems.len() == 2 {
            assert!(!mems[0].memory64, "memory 0 must be 32-bit (canonical ABI)");
            assert!(mems[1].memory64, "memory 1 (weights) must be 64-bit");
            assert_eq!(mems[1].initial, 0, "the weights memory starts empty");
            engine_modules += 1;
        }
    }
    assert_eq!(
        engine_modules, 1,
        "expected one core module with two memories: {depth_modules:?}"
    );
}

#[test]
fn memory_0_holds_a_small_model_file() {
    let engine = engine();
    let file = std::fs::read(smollm2()).unwrap();
    let t0 = Instant::now();
    let mut inst = engine.instance().unwrap();
    let instantiate = t0.elapsed();
    let t1 = Instant::now();
    let info = inst.info().unwrap();
    let load = t1.elapsed();
    eprintln!("instantiate {instantiate:.2?}, load SmolLM2 (info) {load:.2?}");
    assert_eq!(info.file_bytes, file.len() as u64);
    assert!(
        info.weights_bytes > 0 && info.weights_bytes < info.file_bytes,
        "{info:?}"
    );

    // Under the guest's 1 GiB bound the model is read into memory 0 (the kernels use
    // it in place) and the 64-bit weights memory stays empty.
    let sizes = inst.memory_sizes().unwrap();
    assert_eq!(sizes.weights, 0, "{sizes:?}");
    assert!(
        sizes.main >= file.len() as u64 && sizes.main < file.len() as u64 + (256 << 20),
        "{sizes:?}"
    );
    let report = inst.memory_report();
    assert_eq!(report.largest_memory, sizes.main, "{report:?}");

    // Byte for byte: whole file, and a few ranges.
    let t2 = Instant::now();
    assert_eq!(
        inst.weights_checksum(0, file.len() as u64).unwrap(),
        fnv1a64(&file)
    );
    eprintln!(
        "checksum of {} MiB in the guest: {:.2?}",
        file.len() >> 20,
        t2.elapsed()
    );
    for (off, len) in [(0usize, 4usize), (12345, 999), (file.len() - 77, 77)] {
        assert_eq!(
            inst.weights_checksum(off as u64, len as u64).unwrap(),
            fnv1a64(&file[off..off + len])
        );
    }
    // Out of range is a typed error, not a trap.
    match inst.weights_checksum(file.len() as u64 - 1, 2) {
        Err(RequestError::Guest(GuestError::InvalidInput(_))) => {}
        other => panic!("expected invalid-input, got {other:?}"),
    }
    // And the instance still answers.
    assert_eq!(inst.info().unwrap().file_bytes, file.len() as u64);
}

#[test]
fn model_info_of_smollm2() {
    let info = engine().info().unwrap();
    assert_eq!(info.architecture, "llama");
    assert_eq!(info.vocab_size, 49152);
    assert_eq!(info.context_length, 8192);
    assert_eq!(info.embedding_length, 576);
    assert_eq!(info.quantization, "Q4_1");
    assert!(
        (130_000_000..140_000_000).contains(&info.parameter_count),
        "{}",
        info.parameter_count
    );
}

#[test]
fn unknown_model_and_truncated_file_are_typed_errors() {
    let engine = engine();
    let mut inst = engine.instance().unwrap();
    match inst.select_model("no-such-model") {
        Err(RequestError::Guest(GuestError::ModelNotFound)) => {}
        other => panic!("expected model-not-found, got {other:?}"),
    }
    match inst.select_model("truncated") {
        Err(RequestError::Guest(GuestError::UnsupportedModel(msg))) => {
            eprintln!("truncated: {msg}")
        }
        other => panic!("expected unsupported-model, got {other:?}"),
    }
    // The same instance recovers with the default model.
    assert_eq!(inst.select_model("").unwrap().architecture, "llama");
    // And so does the engine, on a new request.
    assert_eq!(engine.info().unwrap().architecture, "llama");
}

#[test]
fn tokenize_and_detokenize_round_trip() {
    let engine = engine();
    let mut inst = engine.instance().unwrap();
    let ids = inst.tokenize("Hello world", false, false).unwrap();
    assert!(!ids.is_empty());
    assert_eq!(inst.detokenize(&ids).unwrap(), "Hello world");
    let ids = inst.tokenize("<|im_start|>user", false, true).unwrap();
    assert_eq!(ids[0], 1, "<|im_start|> is token 1 in SmolLM2: {ids:?}");
}

#[test]
fn generate_and_stream_agree() {
    let engine = engine();
    let p = SamplingParams {
        max_tokens: Some(12),
        temperature: Some(0.0),
        ..params()
    };
    let t0 = Instant::now();
    let out = engine.generate("The capital of France is", &p).unwrap();
    eprintln!(
        "generate (12 tokens, incl. instantiate + load): {:.2?}: {:?}",
        t0.elapsed(),
        out.text
    );
    assert!(!out.text.is_empty());
    assert!(
        out.usage.generated_tokens >= 1 && out.usage.generated_tokens <= 12,
        "{:?}",
        out.usage
    );
    assert!(out.usage.prompt_tokens >= 5, "{:?}", out.usage);
    assert!(matches!(
        out.finish,
        FinishReason::Length | FinishReason::Stop
    ));

    let mut streamed = String::new();
    let mut chunks = 0;
    let (usage, finish) = engine
        .stream("The capital of France is", &p, |c| {
            streamed.push_str(c);
            chunks += 1;
            true
        })
        .unwrap();
    assert_eq!(streamed, out.text);
    assert_eq!(usage, out.usage);
    assert_eq!(finish, Some(out.finish));
    assert!(chunks >= 2, "expected several chunks, got {chunks}");

    // Cancelling after the first chunk.
    let mut n = 0;
    engine
        .stream("The capital of France is", &p, |_| {
            n += 1;
            false
        })
        .unwrap();
    assert_eq!(n, 1);
}

#[test]
fn bad_requests_are_typed_errors_and_the_next_request_works() {
    let engine = engine();
    let bad = [
        (
            "max-tokens 0",
            "Hi",
            SamplingParams {
                max_tokens: Some(0),
                ..params()
            },
        ),
        (
            "temperature < 0",
            "Hi",
            SamplingParams {
                temperature: Some(-1.0),
                ..params()
            },
        ),
        (
            "top-p 0",
            "Hi",
            SamplingParams {
                top_p: Some(0.0),
                ..params()
            },
        ),
        (
            "top-p > 1",
            "Hi",
            SamplingParams {
                top_p: Some(1.5),
                ..params()
            },
        ),
        ("empty prompt", "", params()),
    ];
    for (what, prompt, p) in bad {
        match engine.generate(prompt, &p) {
            Err(RequestError::Guest(GuestError::InvalidInput(_))) => {}
            other => panic!("{what}: expected invalid-input, got {other:?}"),
        }
    }
    // A prompt longer than the context (8192 tokens).
    let long = "hello ".repeat(10_000);
    match engine.generate(
        &long,
        &SamplingParams {
            max_tokens: Some(1),
            ..params()
        },
    ) {
        Err(RequestError::Guest(GuestError::ContextOverflow(_))) => {}
        other => panic!(
            "long prompt: expected context-overflow, got {:?}",
            other.map(|g| g.usage)
        ),
    }
    let ok = engine
        .generate(
            "Hi",
            &SamplingParams {
                max_tokens: Some(2),
                ..params()
            },
        )
        .unwrap();
    assert!(ok.usage.generated_tokens >= 1);
}

#[test]
fn compiled_component_is_cached() {
    let _ = engine();
    let again = ComponentEngine::new(component_path()).unwrap();
    assert!(again.load_stats().from_cache, "{:?}", again.load_stats());
    eprintln!(
        "component from cache in {:.2?}",
        again.load_stats().component_load
    );
}

#[test]
fn concurrent_requests_are_isolated() {
    let engine = engine();
    let p = SamplingParams {
        max_tokens: Some(6),
        temperature: Some(0.0),
        ..params()
    };
    let prompts = ["The capital of France is", "def fibonacci(n):"];
    let alone: Vec<String> = prompts
        .iter()
        .map(|q| engine.generate(q, &p).unwrap().text)
        .collect();
    let together: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = prompts
            .iter()
            .map(|q| s.spawn(move || engine.generate(q, &p).unwrap().text))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(alone, together);
    assert_ne!(alone[0], alone[1]);
}

#[test]
fn limits_fail_only_the_request_that_hits_them() {
    let mut engine = ComponentEngine::new(component_path()).unwrap();
    engine.load_model(smollm2()).unwrap();
    let p = SamplingParams {
        max_tokens: Some(2),
        temperature: Some(0.0),
        ..params()
    };

    // Not enough memory for the weights: a typed error from the guest.
    engine.set_limits(chord::runtime::Limits {
        max_memory_bytes: 32 << 20,
        ..Default::default()
    });
    match engine.generate("Hi", &p) {
        Err(RequestError::Guest(GuestError::OutOfMemory(_))) => {}
        other => panic!("expected out-of-memory, got {other:?}"),
    }

    // A deadline that the request cannot meet: the instance is interrupted (a trap).
    engine.set_limits(chord::runtime::Limits {
        timeout: std::time::Duration::from_millis(20),
        ..Default::default()
    });
    match engine.generate("Hi", &p) {
        Err(RequestError::Trap(e)) => eprintln!("timed out as expected: {e:#}"),
        other => panic!("expected a trap, got {other:?}"),
    }

    // The next request, with sane limits, succeeds.
    engine.set_limits(chord::runtime::Limits::default());
    assert!(engine.generate("Hi", &p).unwrap().usage.generated_tokens >= 1);
}

/// A model file larger than 4 GiB lands in the 64-bit weights memory at its own
/// offsets: SmolLM2 followed by sparse padding, with a marker past 4 GiB.
#[test]
fn weights_beyond_4_gib() {
    use std::io::{Seek, SeekFrom, Write};
    let model = std::fs::read(smollm2()).unwrap();
    let dir = std::env::temp_dir().join(format!("wasm-chord-test-big-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("big.gguf");
    let marker_at: u64 = (4 << 30) + (100 << 20) + 12345;
    let marker: Vec<u8> = (0..65536u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let total: u64 = (4 << 30) + (256 << 20);
    {
        let mut f = std::fs::File::create(&path).unwrap();
        f.set_len(total).unwrap(); // sparse
        f.write_all(&model).unwrap();
        f.seek(SeekFrom::Start(marker_at)).unwrap();
        f.write_all(&marker).unwrap();
    }
    let mut engine = ComponentEngine::new(component_path()).unwrap();
    engine.load_model(&path).unwrap();
    let mut inst = engine.instance().unwrap();
    let t0 = Instant::now();
    let info = inst.info().unwrap();
    eprintln!("loaded a {} MiB file in {:.2?}", total >> 20, t0.elapsed());
    assert_eq!(info.file_bytes, total);
    let sizes = inst.memory_sizes().unwrap();
    assert!(sizes.weights >= total, "{sizes:?}");
    assert!(sizes.main < 1 << 30, "{sizes:?}");
    assert_eq!(
        inst.weights_checksum(marker_at, marker.len() as u64)
            .unwrap(),
        fnv1a64(&marker)
    );
    assert_eq!(
        inst.weights_checksum(0, model.len() as u64).unwrap(),
        fnv1a64(&model)
    );
    drop(inst);
    let _ = std::fs::remove_dir_all(&dir);
}
