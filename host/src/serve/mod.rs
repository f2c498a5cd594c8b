//! `chord serve`: the HTTP variant of the component (`target/wasm-chord-http.wasm`,
//! the `wasi:http/proxy` world) served by Wasmtime with `wasmtime-wasi-http`.
//!
//! One instance per request from a pooling allocator; requests run concurrently on
//! a multi-threaded tokio runtime. Each request has a deadline (epoch interruption:
//! the guest yields to other requests every tick and traps once past its deadline)
//! and a memory cap. The model file's directory is preopened read-only at
//! [`GUEST_MODEL_DIR`], the file named by `WASM_CHORD_MODEL`.

mod state;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use hyper::server::conn::http1;
use tokio::net::TcpListener;
use wasmtime::component::Linker;
use wasmtime::{Store, UpdateDeadline};
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::WasiHttpView;

use crate::runtime::{cache, WtContext};
use state::State;

/// Where the model's directory appears inside the guest.
pub const GUEST_MODEL_DIR: &str = "/models";

const EPOCH_TICK: Duration = Duration::from_millis(10);

#[derive(Clone, Debug)]
pub struct Options {
    /// The HTTP component (`target/wasm-chord-http.wasm`).
    pub component: PathBuf,
    /// The GGUF model.
    pub model: PathBuf,
    pub listen: SocketAddr,
    /// Wall-clock budget of one request, response body included.
    pub timeout: Duration,
    /// Largest size any one linear memory of an instance may reach (memory 0 or the
    /// 64-bit weights memory holds the whole model file).
    pub max_memory_bytes: u64,
    /// Instances alive at once (the pooling allocator's slots).
    pub max_instances: u32,
}

struct Inner {
    pre: ProxyPre<State>,
    model_dir: PathBuf,
    guest_model_path: String,
    timeout: Duration,
    max_memory_bytes: u64,
}

pub struct Server {
    inner: Arc<Inner>,
    listener: TcpListener,
    engine: wasmtime::Engine,
}

fn wasmtime_config(opts: &Options) -> Result<wasmtime::Config> {
    let mut config = wasmtime::Config::new();
    config.wasm_component_model(true);
    config.wasm_memory64(true);
    config.wasm_multi_memory(true);
    config.wasm_simd(true);
    config.wasm_relaxed_simd(true);
    config.epoch_interruption(true);
    let mut pool = wasmtime::PoolingAllocationConfig::default();
    let n = opts.max_instances.max(1);
    pool.total_component_instances(n);
    // Memory 0 and the weights memory per instance.
    pool.total_memories(2 * n);
    pool.max_memories_per_module(2);
    pool.total_core_instances(8 * n);
    pool.total_tables(8 * n);
    pool.total_stacks(n);
    pool.max_memory_size(
        usize::try_from(opts.max_memory_bytes).context("--max-memory does not fit usize")?,
    );
    // Reused slots keep this much of memory 0 resident: no page faults for the
    // heap of the next request, bounded RSS.
    pool.linear_memory_keep_resident(64 << 20);
    // Pool slots must be able to hold memories of the full cap.
    config.memory_reservation(opts.max_memory_bytes);
    config.allocation_strategy(pool);
    Ok(config)
}

impl Server {
    /// Compiles (or loads the compiled cache of) the component and binds the port.
    pub async fn bind(opts: &Options) -> Result<Self> {
        let model = opts
            .model
            .canonicalize()
            .with_context(|| format!("model {}", opts.model.display()))?;
        let (Some(model_dir), Some(file_name)) =
            (model.parent(), model.file_name().and_then(|f| f.to_str()))
        else {
            bail!("model path {} has no file name", model.display());
        };
        if !opts.component.exists() {
            bail!(
                "component {} not found: build it with `cargo xtask build --release`",
                opts.component.display()
            );
        }
        let engine =
            wasmtime::Engine::new(&wasmtime_config(opts)?).ctx("creating the Wasmtime engine")?;
        let (component, _, _) = cache::load_component(&engine, &opts.component)?;
        let mut linker = Linker::<State>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).ctx("adding WASI to the linker")?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
            .ctx("adding wasi:http to the linker")?;
        let pre = linker
            .instantiate_pre(&component)
            .ctx("the component's imports cannot be satisfied")?;
        let pre = ProxyPre::new(pre).ctx("the component is not a wasi:http/proxy component")?;
        let listener = TcpListener::bind(opts.listen)
            .await
            .with_context(|| format!("listening on {}", opts.listen))?;
        Ok(Self {
            inner: Arc::new(Inner {
                pre,
                model_dir: model_dir.to_path_buf(),
                guest_model_path: format!("{GUEST_MODEL_DIR}/{file_name}"),
                timeout: opts.timeout,
                max_memory_bytes: opts.max_memory_bytes,
            }),
            listener,
            engine,
        })
    }

    pub fn local_addr(&self) -> Result<SocketAddr> {
        Ok(self.listener.local_addr()?)
    }

    /// Serves until `shutdown` completes, then stops accepting, lets the requests in
    /// flight finish (at most one request timeout) and returns.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<()> {
        let ticker = tokio::spawn(tick_epochs(self.engine.clone()));
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let mut connections = tokio::task::JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = self.listener.accept() => {
                    let (socket, _) = match accepted {
                        Ok(a) => a,
                        Err(e) => {
                            eprintln!("chord serve: accept failed: {e}");
                            continue;
                        }
                    };
                    let inner = self.inner.clone();
                    let mut stop = stop_rx.clone();
                    connections.spawn(async move {
                        let service = hyper::service::service_fn(move |req| {
                            let inner = inner.clone();
                            async move { inner.handle(req).await }
                        });
                        let conn = http1::Builder::new()
                            .keep_alive(true)
                            .serve_connection(TokioIo::new(socket), service);
                        tokio::pin!(conn);
                        let result = tokio::select! {
                            r = conn.as_mut() => r,
                            _ = stop.changed() => {
                                conn.as_mut().graceful_shutdown();
                                conn.await
                            }
                        };
                        if let Err(e) = result {
                            if !e.is_incomplete_message() {
                                eprintln!("chord serve: connection error: {e}");
                            }
                        }
                    });
                }
                // Reap finished connections so the set stays small.
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
        let _ = stop_tx.send(true);
        let grace = self.inner.timeout + Duration::from_secs(1);
        if tokio::time::timeout(grace, async {
            while connections.join_next().await.is_some() {}
        })
        .await
        .is_err()
        {
            eprintln!("chord serve: requests still running after {grace:?}; stopping them");
            connections.shutdown().await;
        }
        ticker.abort();
        Ok(())
    }
}

async fn tick_epochs(engine: wasmtime::Engine) {
    let mut interval = tokio::time::interval(EPOCH_TICK);
    loop {
        interval.tick().await;
        engine.increment_epoch();
    }
}

impl Inner {
    async fn handle(
        self: Arc<Self>,
        req: hyper::Request<hyper::body::Incoming>,
    ) -> Result<hyper::Response<HyperOutgoingBody>> {
        let state = State::new(
            &self.model_dir,
            GUEST_MODEL_DIR,
            &self.guest_model_path,
            self.max_memory_bytes,
        )?;
        let mut store = Store::new(self.pre.engine(), state);
        store.limiter(|s| &mut s.limits);
        let deadline = Instant::now() + self.timeout;
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            if Instant::now() >= deadline {
                Err(wasmtime::Trap::Interrupt.into())
            } else {
                // Let the other requests on this worker thread run.
                Ok(UpdateDeadline::Yield(1))
            }
        });
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let req = store
            .data_mut()
            .http()
            .new_incoming_request(Scheme::Http, req)
            .map_err(anyhow::Error::from)?;
        let out = store
            .data_mut()
            .http()
            .new_response_outparam(sender)
            .map_err(anyhow::Error::from)?;
        let pre = self.pre.clone();
        // The guest keeps running after it has sent the headers (streaming).
        let task = tokio::spawn(async move {
            let proxy = pre.instantiate_async(&mut store).await?;
            proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut store, req, out)
                .await
        });
        match receiver.await {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(code)) => Err(anyhow::anyhow!(
                "the component failed the request: {code:?}"
            )),
            Err(_) => {
                let why = match task.await {
                    Ok(Ok(())) => anyhow::anyhow!("the component sent no response"),
                    Ok(Err(e)) => anyhow::Error::from(e),
                    Err(e) => e.into(),
                };
                eprintln!("chord serve: request failed: {why:#}");
                Ok(internal_error(&why))
            }
        }
    }
}

/// The 500 answered for a trap (deadline, memory cap, guest bug) before headers.
fn internal_error(e: &anyhow::Error) -> hyper::Response<HyperOutgoingBody> {
    use http_body_util::BodyExt;
    let body = serde_json::json!({"error": {
        "message": format!("the request failed inside the component: {e:#}"),
        "type": "server_error", "param": null, "code": null,
    }})
    .to_string();
    let body = http_body_util::Full::new(hyper::body::Bytes::from(body))
        .map_err(|never| match never {})
        .boxed_unsync();
    let mut resp = hyper::Response::new(body);
    *resp.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    resp
}

/// The default component next to this repository's build.
pub fn default_component() -> PathBuf {
    std::env::var_os("WASM_CHORD_HTTP_COMPONENT")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::built_component("wasm-chord-http.wasm"))
}
