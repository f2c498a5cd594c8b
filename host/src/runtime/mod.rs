//! Running the wasm-chord component in Wasmtime.
//!
//! One [`ComponentEngine`] per process holds the Wasmtime `Engine`, the compiled
//! component (cached on disk as `.cwasm`) and its `InstancePre`. Every request gets a
//! fresh `Store` and instance: the guest loads the model through the imported
//! `weights` interface (implemented here over a memory-mapped GGUF file) into memory
//! 0 (models up to 1 GiB) or its 64-bit weights memory, then answers. A trap, an
//! exhausted time budget or a memory limit fails that request only.
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! use chord::runtime::{ComponentEngine, SamplingParams};
//! let mut engine = ComponentEngine::new("target/wasm-chord.wasm")?;
//! engine.load_model("smollm2.gguf")?;
//! let out = engine.generate("Once upon a time", &SamplingParams { max_tokens: Some(16), ..Default::default() })?;
//! println!("{}", out.text);
//! # Ok(()) }
//! ```

pub mod app;
pub(crate) mod cache;
pub mod fit;
mod host;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use wasmtime::component::Linker;
use wasmtime::Store;

pub use host::ModelFile;

mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "engine",
        with: {
            "wasm-chord:llm/weights.blob": super::host::BlobHandle,
        },
        imports: { default: trappable },
        additional_derives: [PartialEq],
    });
}

pub use bindings::exports::wasm_chord::llm::diagnostics::MemorySizes;
pub use bindings::exports::wasm_chord::llm::parity::{EvalResult, GreedyStep, Position};
pub use bindings::wasm_chord::llm::types::{
    EmbedOptions, Embedding, Embeddings, Error as GuestError, FinishReason, ModelInfo, Pooling,
    Usage,
};

/// Sampling parameters; `None` fields take the defaults documented in the WIT.
pub type SamplingParams = bindings::wasm_chord::llm::types::SamplingParams;

#[allow(clippy::derivable_impls)]
impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            max_tokens: None,
            temperature: None,
            top_k: None,
            top_p: None,
            min_p: None,
            repeat_penalty: None,
            repeat_last_n: None,
            frequency_penalty: None,
            presence_penalty: None,
            seed: None,
        }
    }
}

/// Why a request failed.
#[derive(Debug)]
pub enum RequestError {
    /// The guest answered with a typed WIT error.
    Guest(GuestError),
    /// The instance trapped, ran out of time or hit a limit (or instantiation
    /// failed). Only this request is affected.
    Trap(anyhow::Error),
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestError::Guest(e) => write!(f, "{e}"),
            RequestError::Trap(e) => write!(f, "the component failed: {e:#}"),
        }
    }
}

impl std::error::Error for RequestError {}

impl From<wasmtime::Error> for RequestError {
    fn from(e: wasmtime::Error) -> Self {
        let what = match e.downcast_ref::<wasmtime::Trap>() {
            Some(wasmtime::Trap::Interrupt) => Some("the request exceeded its time limit"),
            Some(wasmtime::Trap::UnreachableCodeReached) => Some("the guest panicked or aborted"),
            _ => None,
        };
        let e = anyhow::Error::from(e);
        RequestError::Trap(match what {
            Some(what) => e.context(what),
            None => e,
        })
    }
}

impl From<anyhow::Error> for RequestError {
    fn from(e: anyhow::Error) -> Self {
        RequestError::Trap(e)
    }
}

impl From<GuestError> for RequestError {
    fn from(e: GuestError) -> Self {
        RequestError::Guest(e)
    }
}

pub type RequestResult<T> = std::result::Result<T, RequestError>;

/// The result of a non-streaming generation.
#[derive(Clone, Debug, PartialEq)]
pub struct Generated {
    pub text: String,
    pub usage: Usage,
    pub finish: FinishReason,
}

/// Per-request limits.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest size any one linear memory of an instance may grow to (memory 0 is
    /// 32-bit and so capped at 4 GiB anyway; the model goes to memory 0 up to 1 GiB,
    /// to the weights memory beyond).
    pub max_memory_bytes: u64,
    /// Wall-clock budget of one request (instantiation, model load and call).
    pub timeout: Duration,
    /// Lowers the size up to which the guest reads a model into memory 0, where its
    /// kernels read it in place (the guest's bound, 1 GiB, when `None`); larger models
    /// go to the 64-bit weights memory. `Some(0)` always uses the weights memory.
    pub resident_max_bytes: Option<u64>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_memory_bytes: MAX_MEMORY_BYTES,
            timeout: Duration::from_secs(600),
            resident_max_bytes: None,
        }
    }
}

/// Timings of the last engine construction.
#[derive(Clone, Debug, Default)]
pub struct LoadStats {
    /// Time to obtain the compiled component (compile or load the `.cwasm`).
    pub component_load: Duration,
    /// Whether the compiled component came from the on-disk cache.
    pub from_cache: bool,
    pub cache_path: Option<PathBuf>,
}

/// What the host saw of one request's memories.
#[derive(Clone, Debug, Default)]
pub struct MemoryReport {
    /// The largest size (bytes) any memory was grown to.
    pub largest_memory: u64,
    /// Every growth: (from, to) in bytes.
    pub grows: Vec<(u64, u64)>,
}

/// `anyhow::Context` for Wasmtime's own error type: Wasmtime 48's `wasmtime::Error`
/// is not an `anyhow::Error` (nor a `std::error::Error`), so `anyhow::Context` does
/// not apply to its results; `result.ctx("what")` does.
pub trait WtContext<T> {
    fn ctx(self, what: &'static str) -> Result<T>;
}

impl<T> WtContext<T> for std::result::Result<T, wasmtime::Error> {
    fn ctx(self, what: &'static str) -> Result<T> {
        self.map_err(|e| anyhow::Error::from(e).context(what))
    }
}

const EPOCH_TICK: Duration = Duration::from_millis(10);

/// The largest linear memory an instance may have (the weights memory of a model up
/// to 16 GiB); every memory's address-space reservation, so pool slots can hold it.
pub const MAX_MEMORY_BYTES: u64 = 16 << 30;

/// Instances of one [`ComponentEngine`] alive at once.
const POOL_INSTANCES: u32 = 16;

/// The Wasmtime configuration of [`ComponentEngine`]: a component precompiled
/// (`chord pack --precompile`) must use the same one to load.
pub fn wasmtime_config() -> wasmtime::Config {
    let mut config = wasmtime::Config::new();
    config.memory_reservation(MAX_MEMORY_BYTES);
    config.wasm_component_model(true);
    config.wasm_memory64(true);
    config.wasm_multi_memory(true);
    config.wasm_simd(true);
    config.wasm_relaxed_simd(true);
    config.epoch_interruption(true);
    // `CHORD_PERFMAP=1 perf record chord ...` names the guest's compiled functions
    // (Wasmtime writes `/tmp/perf-PID.map`), for profiling the component.
    if std::env::var_os("CHORD_PERFMAP").is_some() {
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    config
}

/// Per-request instances come from a pool of preallocated slots (address space
/// reserved once, memories reset between uses) instead of fresh mappings.
fn pooling() -> wasmtime::PoolingAllocationConfig {
    let mut pool = wasmtime::PoolingAllocationConfig::default();
    pool.total_component_instances(POOL_INSTANCES);
    // The engine module, WASI glue and, in a packed component, one per shard.
    pool.total_core_instances(16 * POOL_INSTANCES);
    pool.max_core_instance_size(16 << 20);
    // Memory 0 and the weights memory, or memory 0 and the shard memories.
    pool.max_memories_per_module(2);
    pool.max_memories_per_component(16);
    pool.total_memories(8 * POOL_INSTANCES);
    pool.max_memory_size(MAX_MEMORY_BYTES as usize);
    pool.total_tables(16 * POOL_INSTANCES);
    pool
}

/// Whether `path` is a component with a model built in (`chord pack`: a `.wasm`
/// component or its precompiled `.cwasm`) rather than a GGUF file to serve.
pub fn is_packed_component(path: &Path) -> bool {
    let mut magic = [0u8; 4];
    let read = std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic))
        .is_ok();
    read && (&magic == b"\0asm" || &magic == b"\x7fELF")
}

/// The component, compiled once, instantiated per request.
pub struct ComponentEngine {
    engine: wasmtime::Engine,
    pre: bindings::EnginePre<host::HostState>,
    models: HashMap<String, Arc<ModelFile>>,
    limits: Limits,
    stats: LoadStats,
    ticker_stop: Arc<AtomicBool>,
}

impl Drop for ComponentEngine {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

impl ComponentEngine {
    /// Loads (compiling, or reading the compiled cache next to it) the component.
    pub fn new(component_path: impl AsRef<Path>) -> Result<Self> {
        let component_path = component_path.as_ref();
        let mut config = wasmtime_config();
        config.allocation_strategy(pooling());
        let engine = wasmtime::Engine::new(&config).ctx("creating the Wasmtime engine")?;

        let t0 = Instant::now();
        let (component, from_cache, cache_path) = cache::load_component(&engine, component_path)?;
        let stats = LoadStats {
            component_load: t0.elapsed(),
            from_cache,
            cache_path,
        };

        let mut linker = Linker::<host::HostState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).ctx("adding WASI to the linker")?;
        bindings::Engine::add_to_linker::<_, wasmtime::component::HasSelf<_>>(&mut linker, |s| s)
            .ctx("adding the weights interface to the linker")?;
        let pre = linker
            .instantiate_pre(&component)
            .ctx("the component's imports cannot be satisfied")?;
        let pre =
            bindings::EnginePre::new(pre).ctx("the component does not export the engine world")?;

        // Epoch ticker for request deadlines; stops when the engine is dropped.
        let ticker_stop = Arc::new(AtomicBool::new(false));
        {
            let stop = ticker_stop.clone();
            let engine = engine.weak();
            std::thread::Builder::new()
                .name("chord-epoch".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(EPOCH_TICK);
                        match engine.upgrade() {
                            Some(e) => e.increment_epoch(),
                            None => break,
                        }
                    }
                })
                .context("starting the epoch thread")?;
        }

        Ok(Self {
            engine,
            pre,
            models: HashMap::new(),
            limits: Limits::default(),
            stats,
            ticker_stop,
        })
    }

    /// Makes `gguf_path` the default model (name ""), the one requests use.
    pub fn load_model(&mut self, gguf_path: impl AsRef<Path>) -> Result<()> {
        self.add_model("", gguf_path)
    }

    /// Makes a model available under `name` (for `select-model`). Fails if the model
    /// cannot fit the current memory limit or the machine's available RAM.
    pub fn add_model(&mut self, name: &str, gguf_path: impl AsRef<Path>) -> Result<()> {
        let file = ModelFile::open(gguf_path.as_ref())?;
        fit::check_model(file.path(), file.len(), self.limits.max_memory_bytes)?;
        self.models.insert(name.to_string(), Arc::new(file));
        Ok(())
    }

    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    pub fn load_stats(&self) -> &LoadStats {
        &self.stats
    }

    pub fn wasmtime_engine(&self) -> &wasmtime::Engine {
        &self.engine
    }

    /// A fresh instance: several calls on the same instance share the loaded model
    /// (one weights load), e.g. for a CLI run or a benchmark.
    pub fn instance(&self) -> RequestResult<Instance> {
        let t0 = Instant::now();
        let state = host::HostState::new(self.models.clone(), &self.limits);
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        let ticks = (self.limits.timeout.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64;
        store.set_epoch_deadline(ticks);
        store.epoch_deadline_trap();
        let bindings = self
            .pre
            .instantiate(&mut store)
            .ctx("instantiating the component")?;
        Ok(Instance {
            store,
            bindings,
            instantiate_time: t0.elapsed(),
        })
    }

    /// Runs `f` on a fresh instance (one request).
    pub fn request<R>(
        &self,
        f: impl FnOnce(&mut Instance) -> RequestResult<R>,
    ) -> RequestResult<R> {
        let mut instance = self.instance()?;
        f(&mut instance)
    }

    pub fn info(&self) -> RequestResult<ModelInfo> {
        self.request(|i| i.info())
    }

    pub fn tokenize(
        &self,
        text: &str,
        add_special: bool,
        parse_special: bool,
    ) -> RequestResult<Vec<u32>> {
        self.request(|i| i.tokenize(text, add_special, parse_special))
    }

    pub fn detokenize(&self, tokens: &[u32]) -> RequestResult<String> {
        self.request(|i| i.detokenize(tokens))
    }

    pub fn generate(&self, prompt: &str, params: &SamplingParams) -> RequestResult<Generated> {
        self.request(|i| i.generate(prompt, params))
    }

    /// Streams the generation: `on_chunk` is called with each piece of text as soon
    /// as the guest produces it; returning `false` cancels the generation.
    pub fn stream(
        &self,
        prompt: &str,
        params: &SamplingParams,
        on_chunk: impl FnMut(&str) -> bool,
    ) -> RequestResult<(Usage, Option<FinishReason>)> {
        self.request(|i| i.stream(prompt, params, on_chunk))
    }

    pub fn embed(&self, texts: &[String], options: EmbedOptions) -> RequestResult<Embeddings> {
        self.request(|i| i.embed(texts, options))
    }

    pub fn logits(&self, ids: &[u32], greedy_steps: u32, top_k: u32) -> RequestResult<EvalResult> {
        self.request(|i| i.logits(ids, greedy_steps, top_k))
    }
}

/// One live instance of the component (one `Store`).
pub struct Instance {
    store: Store<host::HostState>,
    bindings: bindings::Engine,
    /// Store creation + instantiation time.
    pub instantiate_time: Duration,
}

fn guest<T>(r: wasmtime::Result<std::result::Result<T, GuestError>>) -> RequestResult<T> {
    match r {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(RequestError::Guest(e)),
        Err(trap) => Err(trap.into()),
    }
}

impl Instance {
    /// Chooses the model (by the name given to [`ComponentEngine::add_model`]).
    pub fn select_model(&mut self, name: &str) -> RequestResult<ModelInfo> {
        let r = self
            .bindings
            .wasm_chord_llm_inference()
            .call_select_model(&mut self.store, name);
        guest(r)
    }

    pub fn info(&mut self) -> RequestResult<ModelInfo> {
        let r = self
            .bindings
            .wasm_chord_llm_inference()
            .call_info(&mut self.store);
        guest(r)
    }

    pub fn tokenize(
        &mut self,
        text: &str,
        add_special: bool,
        parse_special: bool,
    ) -> RequestResult<Vec<u32>> {
        let r = self.bindings.wasm_chord_llm_inference().call_tokenize(
            &mut self.store,
            text,
            add_special,
            parse_special,
        );
        guest(r)
    }

    pub fn detokenize(&mut self, tokens: &[u32]) -> RequestResult<String> {
        let r = self
            .bindings
            .wasm_chord_llm_inference()
            .call_detokenize(&mut self.store, tokens);
        guest(r)
    }

    pub fn generate(&mut self, prompt: &str, params: &SamplingParams) -> RequestResult<Generated> {
        let r = self.bindings.wasm_chord_llm_inference().call_generate(
            &mut self.store,
            prompt,
            *params,
        );
        let out = guest(r)?;
        Ok(Generated {
            text: out.text,
            usage: out.usage,
            finish: out.finish_reason,
        })
    }

    pub fn stream(
        &mut self,
        prompt: &str,
        params: &SamplingParams,
        mut on_chunk: impl FnMut(&str) -> bool,
    ) -> RequestResult<(Usage, Option<FinishReason>)> {
        let inf = self.bindings.wasm_chord_llm_inference();
        let generation = guest(inf.call_start_generation(&mut self.store, prompt, *params))?;
        let res = inf.generation();
        let result = (|| {
            while let Some(chunk) = guest(res.call_next_chunk(&mut self.store, generation))? {
                if !on_chunk(&chunk) {
                    break;
                }
            }
            let usage = res.call_usage(&mut self.store, generation)?;
            let finish = res.call_finish_reason(&mut self.store, generation)?;
            Ok((usage, finish))
        })();
        // Dropping the resource cancels the generation (ignore failures after a trap).
        let _ = generation.resource_drop(&mut self.store);
        result
    }

    pub fn embed(&mut self, texts: &[String], options: EmbedOptions) -> RequestResult<Embeddings> {
        let r =
            self.bindings
                .wasm_chord_llm_inference()
                .call_embed(&mut self.store, texts, options);
        guest(r)
    }

    pub fn logits(
        &mut self,
        ids: &[u32],
        greedy_steps: u32,
        top_k: u32,
    ) -> RequestResult<EvalResult> {
        let r = self.bindings.wasm_chord_llm_parity().call_logits(
            &mut self.store,
            ids,
            greedy_steps,
            top_k,
        );
        guest(r)
    }

    /// `chord bench`'s workload (see `chord_core::throughput::run_tokens`).
    pub fn run_tokens(&mut self, ids: &[u32], steps: u32) -> RequestResult<u32> {
        let r =
            self.bindings
                .wasm_chord_llm_diagnostics()
                .call_run_tokens(&mut self.store, ids, steps);
        guest(r)
    }

    /// Memory sizes as the guest sees them (memory 0, weights memory).
    pub fn memory_sizes(&mut self) -> RequestResult<MemorySizes> {
        Ok(self
            .bindings
            .wasm_chord_llm_diagnostics()
            .call_get_memory_sizes(&mut self.store)?)
    }

    /// FNV-1a 64 of the guest's weights memory bytes `offset..offset+len`.
    pub fn weights_checksum(&mut self, offset: u64, len: u64) -> RequestResult<u64> {
        let r = self
            .bindings
            .wasm_chord_llm_diagnostics()
            .call_weights_checksum(&mut self.store, offset, len);
        guest(r)
    }

    /// What the host's resource limiter saw of this instance's memories.
    pub fn memory_report(&self) -> MemoryReport {
        self.store.data().limiter.report()
    }
}

#[allow(dead_code)]
fn _assert_send_sync() {
    fn f<T: Send + Sync>() {}
    f::<ComponentEngine>();
}

/// The raw generated bindings, for users that need more than this API.
pub use bindings::Engine as RawBindings;

/// FNV-1a 64, the checksum `weights-checksum` computes in the guest.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}
