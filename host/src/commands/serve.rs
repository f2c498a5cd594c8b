//! `chord serve`: the OpenAI-compatible HTTP API, served by the `wasi:http`
//! component in Wasmtime (see `chord::serve`).

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use chord::serve::{self, Server};

#[derive(clap::Args)]
pub struct Args {
    /// GGUF model (default: SmolLM2-135M-Instruct from the model cache).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Address to listen on (port 0 picks a free port; the address is printed).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// The HTTP component (default: $WASM_CHORD_HTTP_COMPONENT, else
    /// target/wasm-chord-http.wasm built by `cargo xtask build --release`).
    #[arg(long)]
    component: Option<PathBuf>,
    /// Per-request deadline in seconds, response included.
    #[arg(long, default_value_t = 300)]
    timeout_secs: u64,
    /// Memory cap per instance memory, in MiB (memory 0 or the weights memory holds the model).
    #[arg(long, default_value_t = 8192)]
    max_memory_mib: u64,
    /// Instances alive at once.
    #[arg(long, default_value_t = 32)]
    max_instances: u32,
}

pub fn run(a: Args) -> Result<()> {
    let model = match a.model {
        Some(m) => m,
        None => chord::models::default_model()?,
    };
    if !model.exists() {
        anyhow::bail!(
            "model {} not found: run scripts/fetch-models.sh smollm2, or pass --model",
            model.display()
        );
    }
    let opts = serve::Options {
        component: a.component.unwrap_or_else(serve::default_component),
        model,
        listen: a.listen,
        timeout: Duration::from_secs(a.timeout_secs),
        max_memory_bytes: a.max_memory_mib << 20,
        max_instances: a.max_instances,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    runtime.block_on(async {
        let server = Server::bind(&opts).await?;
        // Tests and scripts read this line to find the port.
        println!("chord serve: listening on http://{}", server.local_addr()?);
        std::io::stdout().flush()?;
        server
            .run(async {
                let _ = tokio::signal::ctrl_c().await;
                eprintln!("chord serve: shutting down (finishing requests in flight)");
            })
            .await
    })
}
