//! `kvhost serve`: serve a `wasi:http` component over HTTP/1.1: a WASIp2 handler
//! (`wasi:http/incoming-handler@0.2.x`) or a WASIp3 one (`wasi:http/handler@0.3.0`, or the
//! `0.3.0-rc-2026-03-15` release candidate, see [`crate::wit_versions`]).
//!
//! Set-up ([`serve`]): buckets and the compiled component as for `run`, an engine with a
//! pooling instance allocator, and a linker with WASI 0.2 and 0.3, `wasi:http` 0.2 and 0.3 and
//! every key-value interface of `kvhost-wasi`; every other import of the component (Spin's
//! `fermyon:spin/*` and `spin:*`, `wasi:config/store`, `wasi:otel`, ...) is linked as a stub
//! that fails the call, so such a component loads and only the requests that use those
//! interfaces fail ([`request`] turns that into a 500 naming the interface).
//!
//! Then the accept loop: one task per connection; each request goes to the handler
//! ([`request::Server::handle`]): a fresh instance per request for WASIp2 ([`p2`]), reused
//! instances for WASIp3 ([`p3`]), both from [`instance::Instances`]. On SIGINT or SIGTERM the
//! loop stops accepting, open connections finish the request they are on and close, and once
//! every instance has ended (or `--shutdown-timeout` passed) the buckets are flushed and
//! kvhost exits 0.

mod body;
mod conn;
mod instance;
mod p2;
mod p3;
mod request;
mod stubs;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use hyper::server::conn::http1;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use wasmtime::component::{Component, Linker};
use wasmtime::Engine;
use wasmtime_wasi_http::handler::ProxyHandler;
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p3::bindings::ServicePre;

use crate::cli::ServeArgs;
use crate::host::{wasm_error, HostState, MemoryBudget, Prepared};
use crate::metrics::Metrics;
use crate::{engine, Outcome};

use self::conn::Connections;
use self::instance::Instances;
use self::p3::Workers;
use self::request::{Admission, Handler, Server};

/// The exports that make a component servable (prefixes of the export name).
const HANDLER_EXPORTS: [&str; 2] = ["wasi:http/incoming-handler@0.2", "wasi:http/handler@0.3.0"];

/// Runs `kvhost serve` until SIGINT or SIGTERM.
pub async fn serve(args: ServeArgs) -> Result<Outcome> {
    let metrics = Arc::new(Metrics::default());
    check_servable(&args.component)?;
    // One instance per watcher and watched bucket, beside the app's.
    let config = crate::setup::configure_host(&args.host, &crate::watch::watched(&args.watchers))?;
    let watcher_instances = crate::watch::configured_and(&config, &args.watchers)
        .iter()
        .map(|spec| spec.buckets.len())
        .sum::<usize>();
    let watcher_instances = u32::try_from(watcher_instances).unwrap_or(u32::MAX);
    let engine = engine::serving_engine(
        args.max_concurrency.saturating_add(watcher_instances),
        args.host.max_memory,
    )?;
    let prepared = Prepared::new(
        config,
        &args.host,
        &engine,
        &args.component,
        Some(metrics.clone()),
    )?;
    let linked = link(&engine, &prepared.component, &args.component)?;
    engine::start_epoch_ticker(&engine);

    let listener = conn::listen(args.listen)
        .with_context(|| format!("cannot listen on {} (--listen)", args.listen))?;
    let address = listener.local_addr()?;
    if let Some(metrics_address) = args.metrics {
        let listener = TcpListener::bind(metrics_address)
            .await
            .with_context(|| format!("cannot listen on {metrics_address} (--metrics)"))?;
        tracing::info!("metrics on http://{}/metrics", listener.local_addr()?);
        tokio::spawn(serve_metrics(listener, metrics.clone()));
    }

    let admin = match args.admin {
        Some(listen) => {
            let settings = crate::admin::AdminSettings {
                listen,
                token_file: args.admin_token_file.clone(),
            };
            let registry = Arc::clone(&prepared.registry);
            Some(crate::admin::start(&settings, &prepared.config, registry, metrics.clone()).await?)
        }
        None => None,
    };

    let specs = crate::watch::configured_and(&prepared.config, &args.watchers);
    let watchers = if specs.is_empty() {
        None
    } else {
        let cache = engine::cache_dir(args.host.no_cache, args.host.cache_dir.as_deref());
        Some(crate::watch::start(
            &specs,
            &crate::watch::Setting {
                engine: &engine,
                registry: &prepared.registry,
                grants: &prepared.grants,
                max_memory: args.host.max_memory,
                cache: cache.as_deref(),
                metrics: &metrics,
            },
        )?)
    };

    let (in_flight, mut all_done) = mpsc::channel::<()>(1);
    let (stop, stopping) = watch::channel(false);
    let registry = prepared.registry.clone();
    let instances = Arc::new(Instances {
        prepared,
        max_memory: args.host.max_memory,
        env: args.host.env.clone(),
        metrics: Arc::clone(&metrics),
        budget: Arc::new(MemoryBudget::new(
            args.max_total_memory
                .unwrap_or_else(MemoryBudget::default_limit),
        )),
    });
    let (handler, generation) = match linked {
        Linked::P2(pre) => (
            Handler::P2(pre),
            "WASIp2, a fresh instance per request".to_string(),
        ),
        Linked::P3(pre) => (
            Handler::P3(ProxyHandler::new(Workers {
                pre,
                instances: Arc::clone(&instances),
                reuse: args.reuse,
                request_timeout: args.request_timeout,
                in_flight: in_flight.clone(),
                permits: Arc::new(tokio::sync::Semaphore::new(args.max_concurrency as usize)),
                stopping: stopping.clone(),
            })),
            format!(
                "WASIp3, up to {} requests per instance, {} at once",
                args.reuse.instance_max_requests, args.reuse.instance_max_concurrent
            ),
        ),
    };
    let server = Arc::new(Server {
        handler,
        instances,
        admission: Admission::new(args.max_concurrency, args.max_queued),
        metrics,
        request_timeout: args.request_timeout,
        max_request_body: args.max_request_body as u64,
        in_flight,
    });
    tracing::info!(
        "serving {} ({generation}) on http://{address}/ (buckets: {})",
        args.component.display(),
        registry.names().collect::<Vec<_>>().join(", ")
    );

    let connections = Connections::new(args.max_connections, args.header_timeout);
    let signal = crate::signals::stop_requested();
    tokio::pin!(signal);
    loop {
        tokio::select! {
            signal = &mut signal => {
                tracing::info!("{}: finishing in-flight requests, then exiting", signal.name());
                break;
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, client)) => connections.accepted(stream, client, &server, &stopping),
                // Running out of file descriptors and the like: wait, do not spin.
                Err(err) => {
                    connections.accept_failed(&err);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }

    drop(listener);
    drop(admin);
    let _ = stop.send(true);
    server.admission.close();
    drop(server);
    // Every connection and instance holds a clone of the sender: `recv` ends when all are gone.
    let finished = tokio::time::timeout(args.shutdown_timeout, all_done.recv()).await;
    if finished.is_err() {
        tracing::warn!(
            "requests still running after --shutdown-timeout {}; exiting anyway",
            crate::units::format_duration(args.shutdown_timeout)
        );
    }
    if let Some(watchers) = watchers {
        watchers.stop().await;
    }
    registry
        .flush()
        .await
        .context("cannot flush the buckets on shutdown")?;
    tracing::info!("buckets flushed; bye");
    Ok(Outcome::Done)
}

/// Refuses, naming the exports it looked for, a file that is not a component exporting one
/// of [`HANDLER_EXPORTS`]. Looks at the binary itself, before compiling (seconds for a
/// Python component), so a wrong file is refused at once.
fn check_servable(path: &Path) -> Result<()> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read the component {}", path.display()))?;
    let Some(exports) = top_level_exports(&bytes) else {
        // Not a component at all: load_component says so, with advice.
        return Ok(());
    };
    if exports.iter().any(|name| {
        HANDLER_EXPORTS
            .iter()
            .any(|handler| name.starts_with(handler))
    }) {
        return Ok(());
    }
    let listed = if exports.is_empty() {
        "none".to_string()
    } else {
        exports.join(", ")
    };
    anyhow::bail!(
        "{} cannot be served: it exports neither wasi:http/incoming-handler@0.2.x nor \
         wasi:http/handler@0.3.0 (its exports: {listed}).\n\
         kvhost serve serves wasi:http components, e.g. Spin apps (spin-sdk 3.x, 4.x, 5.x); a \
         wasi:cli/run component is run with `kvhost run` instead.",
        path.display()
    )
}

/// The names a component exports at its top level; `None` if `bytes` is not a component.
fn top_level_exports(bytes: &[u8]) -> Option<Vec<String>> {
    let mut exports = Vec::new();
    let mut depth = 0usize;
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        match payload.ok()? {
            wasmparser::Payload::Version { encoding, .. } => {
                if depth == 0 && encoding != wasmparser::Encoding::Component {
                    return None;
                }
                depth += 1;
            }
            wasmparser::Payload::End(_) => depth = depth.saturating_sub(1),
            wasmparser::Payload::ComponentExportSection(section) if depth == 1 => {
                for export in section {
                    exports.push(export.ok()?.name.name.to_string());
                }
            }
            _ => {}
        }
    }
    Some(exports)
}

/// A component linked for serving, by the handler it exports.
enum Linked {
    P2(ProxyPre<HostState>),
    P3(ServicePre<HostState>),
}

/// Links `component` for serving: WASI, `wasi:http`, key-value, stubs for the rest.
fn link(engine: &Engine, component: &Component, path: &Path) -> Result<Linked> {
    let linker_error =
        |err: wasmtime::Error| wasm_error("cannot set up the component linker", &err);
    let mut linker = Linker::<HostState>::new(engine);
    // All of WASI 0.2 and 0.3 (a component may import wasi:filesystem even if it never uses
    // it; its instance has no preopened directories), plus wasi:http 0.2 and 0.3.
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(linker_error)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).map_err(linker_error)?;
    wasmtime_wasi::p3::add_to_linker(&mut linker).map_err(linker_error)?;
    wasmtime_wasi_http::p3::add_to_linker(&mut linker).map_err(linker_error)?;
    kvhost_wasi::add_to_linker_for(&mut linker, component).map_err(linker_error)?;
    let stubbed = stubs::define_stubs(&mut linker, component, engine).map_err(linker_error)?;
    if !stubbed.is_empty() {
        tracing::info!(
            "not provided, calls fail the request: {}",
            stubbed.join(", ")
        );
    }
    let pre = linker
        .instantiate_pre(component)
        .map_err(|err| wasm_error(&format!("cannot link {}", path.display()), &err))?;
    if let Ok(service) = ServicePre::new(pre.clone()) {
        return Ok(Linked::P3(service));
    }
    ProxyPre::new(pre)
        .map(Linked::P2)
        .map_err(|err| wasm_error(&format!("cannot serve {}", path.display()), &err))
}

/// Answers `GET /metrics` on `listener` with the Prometheus text format.
async fn serve_metrics(listener: TcpListener, metrics: Arc<Metrics>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of file descriptors and the like: wait, do not spin.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let metrics = Arc::clone(&metrics);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request: hyper::Request<_>| {
                let response = if request.uri().path() == "/metrics" {
                    let mut response = request::plain(hyper::StatusCode::OK, &metrics.render());
                    response.headers_mut().insert(
                        hyper::header::CONTENT_TYPE,
                        hyper::header::HeaderValue::from_static("text/plain; version=0.0.4"),
                    );
                    response
                } else {
                    request::plain(hyper::StatusCode::NOT_FOUND, "metrics are at /metrics\n")
                };
                std::future::ready(Ok::<_, std::convert::Infallible>(response))
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
