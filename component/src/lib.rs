//! The wasm-chord guest: the engine as a `wasm32-wasip2` component.
//!
//! Memory 0 holds the heap, activations and KV cache. A model up to 1 GiB is read
//! into memory 0 too, on first use, from the imported `weights` resource, and the
//! kernels read it in place. A larger one lives in a separate 64-bit *weights
//! memory* (memory index 1) that this module defines after the post-link rewrite done
//! by `cargo xtask build` (see `xtask/src/rewrite.rs`): the guest grows it to the GGUF
//! file's size and copies the file in, chunk by chunk, so that an offset in the
//! weights memory is the same offset in the file (see `memory.rs`).
//!
//! With the `packed` feature the guest is the engine of a packed component
//! (`chord pack`): the model is built in, as the copy-on-write image of memory 0
//! above the engine's own memory or, when larger than one shard, spread over
//! read-only shard memories (see `memory.rs` and `packed.rs`), and nothing but WASI
//! is imported.
//!
//! With the cargo feature `http` the crate is instead the `wasi:http/proxy` server
//! of [`http`]: same engine and weights memory, model read from the filesystem.
//!
//! Natively this crate is empty: it only builds for wasm32.
#![cfg(target_arch = "wasm32")]

#[cfg(not(feature = "http"))]
mod backend;
#[cfg(feature = "http")]
mod http;
mod memory;
#[cfg(feature = "packed")]
mod packed;
#[cfg(not(any(feature = "packed", feature = "http")))]
mod source;
#[cfg(not(feature = "http"))]
mod spin_llm;

#[cfg(feature = "http")]
use http::Error;

#[cfg(not(feature = "http"))]
use std::cell::RefCell;

#[cfg(not(feature = "http"))]
use exports::wasm_chord::llm::diagnostics::{self, MemorySizes};
#[cfg(not(feature = "http"))]
use exports::wasm_chord::llm::inference::{self, GenerationResult};
#[cfg(not(feature = "http"))]
use exports::wasm_chord::llm::parity::{self, EvalResult};
#[cfg(not(feature = "http"))]
use wasm_chord::llm::types::{
    EmbedOptions, Embeddings, Error, FinishReason, ModelInfo, SamplingParams, Usage,
};

#[cfg(not(any(feature = "packed", feature = "http")))]
wit_bindgen::generate!({
    path: "../wit",
    world: "engine",
    generate_all,
});

#[cfg(feature = "packed")]
wit_bindgen::generate!({
    path: "../wit",
    world: "packed-engine",
    generate_all,
});

#[cfg(not(feature = "http"))]
/// The model this instance uses, loaded lazily on first use.
struct State {
    /// Name passed to `weights.open` ("" is the host's default model; a packed
    /// component only has that one).
    name: String,
    loaded: Option<backend::Loaded>,
}

#[cfg(not(feature = "http"))]
thread_local! {
    static STATE: RefCell<State> = const { RefCell::new(State { name: String::new(), loaded: None }) };
}

#[cfg(not(feature = "http"))]
/// Runs `f` with the loaded model, loading it first if needed.
fn with_model<R>(f: impl FnOnce(&mut backend::Loaded) -> Result<R, Error>) -> Result<R, Error> {
    STATE.with(|state| {
        let mut state = state.borrow_mut();
        if state.loaded.is_none() {
            let loaded = backend::Loaded::load(&state.name)?;
            state.loaded = Some(loaded);
        }
        f(state.loaded.as_mut().unwrap())
    })
}

#[cfg(not(feature = "http"))]
struct Component;

#[cfg(not(feature = "http"))]
impl inference::Guest for Component {
    type Generation = backend::Stream;

    fn select_model(name: String) -> Result<ModelInfo, Error> {
        STATE.with(|state| {
            let mut state = state.borrow_mut();
            if state.name != name || state.loaded.is_none() {
                state.loaded = None;
                state.name = name;
            }
        });
        with_model(|m| Ok(m.info()))
    }

    fn info() -> Result<ModelInfo, Error> {
        with_model(|m| Ok(m.info()))
    }

    fn tokenize(text: String, add_special: bool, parse_special: bool) -> Result<Vec<u32>, Error> {
        with_model(|m| m.tokenize(&text, add_special, parse_special))
    }

    fn detokenize(tokens: Vec<u32>) -> Result<String, Error> {
        with_model(|m| m.detokenize(&tokens))
    }

    fn generate(prompt: String, params: SamplingParams) -> Result<GenerationResult, Error> {
        let stream = with_model(|m| m.start(&prompt, &params))?;
        let mut text = String::new();
        while let Some(chunk) = with_model(|m| stream.next(m))? {
            text.push_str(&chunk);
        }
        Ok(GenerationResult {
            text,
            usage: stream.usage(),
            finish_reason: stream.finish_reason().unwrap_or(FinishReason::Stop),
        })
    }

    fn start_generation(
        prompt: String,
        params: SamplingParams,
    ) -> Result<inference::Generation, Error> {
        let stream = with_model(|m| m.start(&prompt, &params))?;
        Ok(inference::Generation::new(stream))
    }

    fn embed(texts: Vec<String>, options: EmbedOptions) -> Result<Embeddings, Error> {
        with_model(|m| m.embed(&texts, options))
    }
}

#[cfg(not(feature = "http"))]
impl inference::GuestGeneration for backend::Stream {
    fn next_chunk(&self) -> Result<Option<String>, Error> {
        with_model(|m| self.next(m))
    }

    fn usage(&self) -> Usage {
        backend::Stream::usage(self)
    }

    fn finish_reason(&self) -> Option<FinishReason> {
        backend::Stream::finish_reason(self)
    }
}

#[cfg(not(feature = "http"))]
impl parity::Guest for Component {
    fn logits(ids: Vec<u32>, greedy_steps: u32, top_k: u32) -> Result<EvalResult, Error> {
        with_model(|m| m.eval_logits(&ids, greedy_steps, top_k))
    }
}

#[cfg(not(feature = "http"))]
impl diagnostics::Guest for Component {
    fn get_memory_sizes() -> MemorySizes {
        MemorySizes {
            main: core::arch::wasm32::memory_size::<0>() as u64 * memory::PAGE,
            weights: memory::weights_memory_bytes(),
        }
    }

    fn weights_checksum(offset: u64, len: u64) -> Result<u64, Error> {
        with_model(|m| m.weights_checksum(offset, len))
    }

    fn run_tokens(ids: Vec<u32>, steps: u32) -> Result<u32, Error> {
        with_model(|m| m.run_tokens(&ids, steps))
    }
}

#[cfg(not(feature = "http"))]
export!(Component);
