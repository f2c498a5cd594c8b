//! Per-request cost of a packed component (`chord pack`) under the pooling
//! allocator with copy-on-write memory images: load time, instantiation time,
//! decode speed, and the process's memory with 1 and N live instances that have
//! all read every weight.
//!
//! `cargo run --release -p chord --example packed_instances -- PACKED.wasm|PACKED.cwasm [N] [TOKENS]`

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use chord::runtime::{wasmtime_config, RawBindings, SamplingParams};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

struct Wasi {
    ctx: WasiCtx,
    table: ResourceTable,
}

impl WasiView for Wasi {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.ctx,
            table: &mut self.table,
        }
    }
}

/// `Pss`, `Pss_Anon`, `Pss_File`, `Pss_Shmem` and `Rss` of this process, in MiB.
fn smaps() -> String {
    let text = std::fs::read_to_string("/proc/self/smaps_rollup").unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{name}:")))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
            .map_or(-1.0, |kb| kb as f64 / 1024.0)
    };
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let rss_anon = status
        .lines()
        .find(|l| l.starts_with("RssAnon:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(-1.0, |kb| kb as f64 / 1024.0);
    format!(
        "Rss {:.0} MiB, Pss {:.0} MiB (anon {:.0}, file {:.0}, shmem {:.0}), RssAnon {rss_anon:.0} MiB",
        field("Rss"),
        field("Pss"),
        field("Pss_Anon"),
        field("Pss_File"),
        field("Pss_Shmem"),
    )
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path = args
        .first()
        .context("usage: packed_instances PACKED.wasm|.cwasm [N] [TOKENS]")?;
    let n: usize = args.get(1).map_or(Ok(4), |s| s.parse())?;
    let tokens: u32 = args.get(2).map_or(Ok(8), |s| s.parse())?;

    let mut config = wasmtime_config();
    let mut pool = wasmtime::PoolingAllocationConfig::default();
    // The engine's memory 0 plus one memory per shard, per instance.
    pool.max_memories_per_component(64);
    pool.total_memories(64 * (n as u32 + 2));
    pool.max_memory_size(4 << 30);
    pool.max_core_instance_size(16 << 20);
    config.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
    let engine = Engine::new(&config).map_err(anyhow::Error::from)?;

    let t0 = Instant::now();
    let component = if path.ends_with(".cwasm") {
        // SAFETY: a file written by `chord pack --precompile` (same configuration).
        unsafe { Component::deserialize_file(&engine, path) }
    } else {
        Component::from_file(&engine, path)
    }
    .map_err(anyhow::Error::from)
    .with_context(|| format!("loading {path}"))?;
    println!("load: {:.2?}; {}", t0.elapsed(), smaps());

    let mut linker = Linker::<Wasi>::new(&engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(anyhow::Error::from)?;
    let pre = linker
        .instantiate_pre(&component)
        .map_err(anyhow::Error::from)?;
    let new_store = || {
        let mut store = Store::new(
            &engine,
            Wasi {
                ctx: WasiCtx::builder().build(),
                table: ResourceTable::new(),
            },
        );
        store.set_epoch_deadline(1 << 40);
        store
    };

    // Instantiation alone (store + instance), averaged.
    let reps = 50;
    let mut total = Duration::ZERO;
    for _ in 0..reps {
        let mut store = new_store();
        let t = Instant::now();
        pre.instantiate(&mut store).map_err(anyhow::Error::from)?;
        total += t.elapsed();
    }
    println!("instantiate: {:.1?} mean over {reps}", total / reps);

    let params = SamplingParams {
        max_tokens: Some(tokens),
        temperature: Some(0.0),
        ..Default::default()
    };
    let mut live = Vec::new();
    for i in 0..n {
        let mut store = new_store();
        let instance = pre.instantiate(&mut store).map_err(anyhow::Error::from)?;
        let bindings = RawBindings::new(&mut store, &instance).map_err(anyhow::Error::from)?;
        let inference = bindings.wasm_chord_llm_inference();
        let t = Instant::now();
        let info = inference
            .call_info(&mut store)
            .map_err(anyhow::Error::from)?
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let t_info = t.elapsed();
        let t = Instant::now();
        let out = inference
            .call_generate(&mut store, "The capital of France is", params)
            .map_err(anyhow::Error::from)?
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let dt = t.elapsed();
        if i == 0 {
            println!(
                "model {} ({} layers, {:.0} MiB of weights); first call (header parse, engine build) {t_info:.2?}",
                info.name,
                info.layer_count,
                info.weights_bytes as f64 / 1048576.0
            );
            println!(
                "generate: {} prompt + {} tokens in {dt:.2?} ({:.2} tok/s overall): {:?}",
                out.usage.prompt_tokens,
                out.usage.generated_tokens,
                f64::from(out.usage.generated_tokens) / dt.as_secs_f64(),
                out.text
            );
        }
        live.push((store, instance));
        println!("{} live instance(s) after generating: {}", i + 1, smaps());
    }
    Ok(())
}
