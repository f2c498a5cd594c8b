//! Models beyond the small test ones, on synthetic models made by `chord synth`'s
//! library from the real 7B header:
//!
//! * the fit check: a model larger than the host's memory limit, or than the RAM the
//!   machine has available, fails with an error that says so before any weights
//!   memory is allocated (no OOM kill);
//! * the runtime-loaded memory64 path (forced for models under the guest's 1 GiB
//!   memory-0 bound): the component's greedy tokens equal the native engine's on the
//!   same file, and memory 0 (KV cache, activations, tokenizer) stays small next to
//!   the weights memory at a full context.
//!
//! The last two run on a tiny qwen2 synthesized in seconds, unless
//! `WASM_CHORD_LARGE_MODEL` names another model: `scripts/bench-7b.sh` runs them on
//! the synthetic 7B (with `WASM_CHORD_CONTEXT`, default 2048), where memory 0 must
//! also stay under 10% of the model size (a budget for models of 1 GiB and up, which
//! amortise the tokenizer and fixed buffers).
//!
//! Needs `cargo xtask build --release` (target/wasm-chord.wasm) and
//! `scripts/fetch-models.sh qwen2-7b-header`.

use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

mod common;

use chord::runtime::{fit, ComponentEngine, GuestError, Limits, RequestError, SamplingParams};
use chord_core::engine::Engine;
use chord_core::gguf::{FileSource, Gguf};
use chord_core::model::Logits;
use chord_core::synth::{ShapeOverrides, Synth};
use chord_core::weights::SliceWeights;
use common::{component_path, model_path};

fn header_path() -> PathBuf {
    model_path("qwen2-7b-header.gguf")
}

fn scratch_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wasm-chord-large-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A two-block qwen2 of width 256 with the 7B's tokenizer and tensor types (~55 MB).
fn tiny_qwen2() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let src = FileSource::open(header_path()).unwrap();
        let g = Gguf::read_header(&src).unwrap();
        let shape = ShapeOverrides {
            layers: Some(2),
            embedding_length: Some(256),
            feed_forward_length: Some(512),
            head_count: None,
            head_count_kv: Some(1),
        };
        let synth = Synth::new(&g, &shape, 7).unwrap();
        let path = scratch_dir().join("tiny-qwen2.gguf");
        let mut out = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        synth.write(&mut out, 2, |_| {}).unwrap();
        out.flush().unwrap();
        path
    })
}

fn file_len(p: &Path) -> u64 {
    std::fs::metadata(p).unwrap().len()
}

#[test]
fn a_model_over_the_memory_limit_is_refused_before_loading() {
    let model = tiny_qwen2();
    let len = file_len(model);
    let mut engine = ComponentEngine::new(component_path()).unwrap();
    engine.set_limits(Limits {
        max_memory_bytes: len / 2,
        ..Default::default()
    });
    let err = engine.load_model(model).unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("does not fit") && msg.contains("memory limit"),
        "{msg}"
    );
}

#[test]
fn a_limit_lowered_after_loading_fails_in_the_guest_before_growing() {
    let model = tiny_qwen2();
    let len = file_len(model);
    let mut engine = ComponentEngine::new(component_path()).unwrap();
    engine.load_model(model).unwrap();
    engine.set_limits(Limits {
        max_memory_bytes: len / 2,
        ..Default::default()
    });
    let mut instance = engine.instance().unwrap();
    match instance.generate("Hi", &SamplingParams::default()) {
        Err(RequestError::Guest(GuestError::OutOfMemory(msg))) => {
            assert!(msg.contains("does not fit"), "{msg}")
        }
        other => panic!("expected out-of-memory, got {other:?}"),
    }
    // The refused growth allocated nothing: no memory ever reached the model's size.
    let report = instance.memory_report();
    assert!(report.largest_memory < len, "{report:?}");
}

#[test]
fn a_model_larger_than_the_available_ram_is_refused_before_loading() {
    let free = fit::available_memory().expect("MemAvailable (Linux /proc/meminfo)");
    // The tiny model's bytes followed by a sparse hole: a file larger than the RAM
    // that takes no disk space.
    let path = scratch_dir().join("larger-than-ram.gguf");
    {
        let mut f = std::fs::File::create(&path).unwrap();
        f.set_len(free + (1 << 30)).unwrap();
        f.seek(SeekFrom::Start(0)).unwrap();
        f.write_all(&std::fs::read(tiny_qwen2()).unwrap()).unwrap();
    }
    let mut engine = ComponentEngine::new(component_path()).unwrap();
    engine.set_limits(Limits {
        max_memory_bytes: u64::MAX,
        ..Default::default()
    });
    let err = engine.load_model(&path).unwrap_err();
    let msg = format!("{err:#}");
    std::fs::remove_file(&path).unwrap();
    assert!(
        msg.contains("does not fit") && msg.contains("RAM available"),
        "{msg}"
    );
}

/// The model under test: `WASM_CHORD_LARGE_MODEL`, else the tiny synthetic qwen2.
fn model_under_test() -> (PathBuf, bool) {
    match std::env::var_os("WASM_CHORD_LARGE_MODEL") {
        Some(p) => (PathBuf::from(p), true),
        None => (tiny_qwen2().to_path_buf(), false),
    }
}

fn native_engine(model: &Path) -> Engine {
    // SAFETY: read-only map of a model file nobody modifies during the test.
    let map = unsafe { memmap2::Mmap::map(&std::fs::File::open(model).unwrap()) }.unwrap();
    let header = FileSource::open(model).unwrap();
    Engine::load(&header, Box::new(SliceWeights(map))).unwrap()
}

/// A component instance with the model loaded (and the time the load took).
fn component_instance(model: &Path) -> (ComponentEngine, Duration) {
    let mut engine = ComponentEngine::new(component_path()).unwrap();
    engine.set_limits(Limits {
        timeout: Duration::from_secs(4 * 3600),
        // The tiny model would otherwise sit in memory 0: these tests are about the
        // 64-bit weights memory.
        resident_max_bytes: Some(0),
        ..Default::default()
    });
    engine.load_model(model).unwrap();
    let t0 = Instant::now();
    engine.request(|i| i.info()).unwrap();
    (engine, t0.elapsed())
}

#[test]
fn component_matches_native_greedy() {
    let (model, _) = model_under_test();
    let steps = 4;
    let native = native_engine(&model);

    // Activations neither explode nor vanish: finite logits with an O(1) spread.
    let model_ref = native.model();
    let mut session = model_ref.new_session(64);
    let ids = native
        .tokenize("The capital of France is", true, true)
        .unwrap();
    let logits = model_ref.forward(&mut session, &ids, Logits::Last).unwrap();
    let n = logits.len() as f64;
    let mean = logits.iter().map(|&x| x as f64).sum::<f64>() / n;
    let std = (logits
        .iter()
        .map(|&x| (x as f64 - mean).powi(2))
        .sum::<f64>()
        / n)
        .sqrt();
    eprintln!("LARGE_MODEL native logits: mean {mean:.3}, std {std:.3}");
    assert!(logits.iter().all(|x| x.is_finite()));
    assert!((0.1..10.0).contains(&std), "logit std {std}");

    let (engine, load) = component_instance(&model);
    eprintln!(
        "LARGE_MODEL load: {} ({} MiB) copied into the weights memory in {load:.2?}",
        model.display(),
        file_len(&model) >> 20
    );
    let mut instance = engine.instance().unwrap();
    for prompt in ["The capital of France is", "def fibonacci(n):"] {
        let ids = native.tokenize(prompt, true, true).unwrap();
        let t = Instant::now();
        let want = native.eval_logits(&ids, steps, 1).unwrap();
        let t_native = t.elapsed();
        let t = Instant::now();
        let got = instance.logits(&ids, steps as u32, 1).unwrap();
        let t_component = t.elapsed();
        let want_tokens: Vec<u32> = want.greedy.iter().map(|g| g.token).collect();
        let got_tokens: Vec<u32> = got.greedy.iter().map(|g| g.token).collect();
        eprintln!(
            "LARGE_MODEL greedy {prompt:?} ({} tokens + {steps} steps): native {want_tokens:?} \
             in {t_native:.2?}, component {got_tokens:?} in {t_component:.2?}",
            ids.len()
        );
        assert_eq!(got_tokens, want_tokens, "greedy tokens for {prompt:?}");
        for p in want
            .positions
            .iter()
            .chain(want.greedy.iter().map(|g| &g.next))
        {
            assert!(p.lse.is_finite() && p.top.iter().all(|&(_, l)| l.is_finite()));
        }
    }

    // Component speed: prefill of a short prompt (time to the first token), then
    // greedy decoding.
    let greedy = SamplingParams {
        temperature: Some(0.0),
        max_tokens: Some(8),
        ..Default::default()
    };
    let t = Instant::now();
    let mut first = None;
    let (usage, _) = instance
        .stream("Write a short story about a robot.", &greedy, |_| {
            first.get_or_insert_with(|| t.elapsed());
            true
        })
        .unwrap();
    let total = t.elapsed();
    let first = first.unwrap_or(total);
    eprintln!(
        "LARGE_MODEL component speed: {} prompt tokens + first token in {first:.2?}, then \
         {:.3} tok/s over the next {} tokens",
        usage.prompt_tokens,
        usage.generated_tokens.saturating_sub(1) as f64 / (total - first).as_secs_f64(),
        usage.generated_tokens.saturating_sub(1)
    );
}

/// Text whose tokenization (special tokens added) has at most `n` tokens.
fn prompt_of_length(engine: &Engine, n: usize) -> String {
    let sentence = "The quick brown fox jumps over the lazy dog while seven wizards \
                    quietly count the stars above the old mill. ";
    let text = sentence.repeat(n / 8 + 1);
    let ids = engine.tokenize(&text, false, false).unwrap();
    let mut cut = ids.len().min(n);
    loop {
        let t = engine.detokenize(&ids[..cut]).unwrap();
        if engine.tokenize(&t, true, true).unwrap().len() <= n {
            return t;
        }
        cut -= 1;
    }
}

/// Memory 0 of a session sized for `WASM_CHORD_CONTEXT` tokens (default 2048): the
/// KV cache takes its full size at the first token, so the prompt only needs to be
/// long enough for the largest activations (`WASM_CHORD_PROMPT_TOKENS`, default the
/// whole context but 4; a prefill chunk is 256 tokens). Generation stops after 4
/// tokens.
#[test]
fn memory_0_stays_small_at_full_context() {
    let (model, large) = model_under_test();
    let env = |k: &str| {
        std::env::var(k).ok().map(|v| {
            v.parse::<usize>()
                .unwrap_or_else(|_| panic!("{k} must be a number"))
        })
    };
    let model_bytes = file_len(&model);
    let native = native_engine(&model);
    let context = env("WASM_CHORD_CONTEXT")
        .unwrap_or(2048)
        .min(native.info().context_length as usize);
    let prompt_tokens = env("WASM_CHORD_PROMPT_TOKENS")
        .unwrap_or(context)
        .min(context - 4);
    let prompt = prompt_of_length(&native, prompt_tokens);
    let n_prompt = native.tokenize(&prompt, true, true).unwrap().len();
    drop(native);

    let (engine, _) = component_instance(&model);
    let mut instance = engine.instance().unwrap();
    let params = SamplingParams {
        temperature: Some(0.0),
        max_tokens: Some((context - n_prompt) as u32),
        ..Default::default()
    };
    let t = Instant::now();
    let mut chunks = 0;
    let (usage, _) = instance
        .stream(&prompt, &params, |_| {
            chunks += 1;
            chunks < 4
        })
        .unwrap();
    let sizes = instance.memory_sizes().unwrap();
    let overhead = sizes.main as f64 / model_bytes as f64;
    eprintln!(
        "LARGE_MODEL context {context}: {} prompt + {} generated tokens in {:.2?}; memory 0 \
         {} MiB ({:.1}% of the model), weights memory {} MiB (model {} MiB)",
        usage.prompt_tokens,
        usage.generated_tokens,
        t.elapsed(),
        sizes.main >> 20,
        overhead * 100.0,
        sizes.weights >> 20,
        model_bytes >> 20
    );
    assert!(sizes.weights >= model_bytes);
    assert!(
        sizes.weights - model_bytes < 1 << 16,
        "weights memory over-grown"
    );
    if large || model_bytes >= 1 << 30 {
        assert!(
            overhead < 0.10,
            "memory 0 is {:.1}% of the model size (budget 10%)",
            overhead * 100.0
        );
    }
}
