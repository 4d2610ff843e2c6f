//! One HTTP request: admission, a fresh component instance, the call, and what the client
//! gets when the component fails.
//!
//! The life of a request:
//! 1. **Admission** ([`Admission`]): a slot (one of `--max-concurrency`) is taken at once if
//!    free; otherwise the request waits in a bounded queue (`--max-queued`); past that it is
//!    answered 503 without touching the component.
//! 2. **Instance**: a new `Store` with the request's own WASI, HTTP and key-value state, an
//!    instance from the pre-linked component, and a deadline (`--request-timeout`) enforced
//!    twice: by epoch interruption for a guest that computes, and by a timer for one that
//!    waits. The instance yields to other requests every epoch tick.
//! 3. **Answer**: the component's response head goes to the client as soon as it calls
//!    `response-outparam.set`; the body streams while the instance keeps running. The slot is
//!    held until the instance ends. A component that fails before answering gets a 500 (504
//!    past the deadline) whose body says why, naming the interface when it called one that
//!    kvhost does not provide.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use hyper::{Request, Response, StatusCode};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use wasmtime::{Store, Trap, UpdateDeadline};
use wasmtime_wasi::WasiCtx;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::WasiHttpView;

use super::metrics::Metrics;
use super::stubs::Unprovided;
use crate::host::{HostState, Prepared};

/// Everything a request needs, shared by all of them.
pub struct Server {
    /// The component, linked and ready to instantiate.
    pub pre: ProxyPre<HostState>,
    /// Buckets and component.
    pub prepared: Prepared,
    /// Slots and queue.
    pub admission: Admission,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// `--request-timeout`.
    pub request_timeout: Duration,
    /// `--max-memory`.
    pub max_memory: usize,
    /// `--env` entries.
    pub env: Vec<(String, String)>,
    /// Cloned into every running instance; shutdown waits until all clones are gone.
    pub in_flight: mpsc::Sender<()>,
}

/// Bounded concurrency with a bounded queue in front of it.
pub struct Admission {
    slots: Arc<Semaphore>,
    waiting: AtomicU32,
    max_waiting: u32,
}

impl Admission {
    /// `slots` requests at once, `max_waiting` more waiting for one.
    pub fn new(slots: u32, max_waiting: u32) -> Self {
        Admission {
            slots: Arc::new(Semaphore::new(slots as usize)),
            waiting: AtomicU32::new(0),
            max_waiting,
        }
    }

    /// A slot, waiting for one if the queue has room; `None` when it has not.
    async fn enter(&self, metrics: &Metrics) -> Option<OwnedSemaphorePermit> {
        if let Ok(permit) = Arc::clone(&self.slots).try_acquire_owned() {
            return Some(permit);
        }
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.max_waiting {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        // Leaves the queue however this future ends (also when the client goes away).
        struct Waiting<'a>(&'a AtomicU32, &'a Metrics);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::AcqRel);
                self.1.queued.fetch_sub(1, Ordering::Relaxed);
            }
        }
        metrics.queued.fetch_add(1, Ordering::Relaxed);
        let _waiting = Waiting(&self.waiting, metrics);
        Arc::clone(&self.slots).acquire_owned().await.ok()
    }

    /// Stops admitting: requests waiting now and later get 503.
    pub fn close(&self) {
        self.slots.close();
    }
}

/// How an instance ended, when it ended badly.
enum Failure {
    /// Past `--request-timeout`.
    Deadline(Duration),
    /// It tried to grow its memory past `--max-memory`.
    MemoryCap(usize),
    /// It called an import kvhost does not provide.
    Unprovided(Unprovided),
    /// Anything else (a trap, an instantiation failure).
    Error(wasmtime::Error),
    /// It returned without calling `response-outparam.set`.
    NoResponse,
}

impl Failure {
    fn status(&self) -> StatusCode {
        match self {
            Failure::Deadline(_) => StatusCode::GATEWAY_TIMEOUT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn message(&self) -> String {
        match self {
            Failure::Deadline(timeout) => format!(
                "the component did not finish within --request-timeout {}",
                crate::units::format_duration(*timeout)
            ),
            Failure::MemoryCap(max) => {
                format!("the component tried to grow its memory past --max-memory ({max} bytes)")
            }
            Failure::Unprovided(unprovided) => unprovided.to_string(),
            Failure::Error(err) => format!("the component failed: {err:#}"),
            Failure::NoResponse => "the component returned without sending a response".to_string(),
        }
    }
}

impl Server {
    /// Handles one request from `client`. Never fails: every failure becomes a response.
    pub async fn handle(
        self: Arc<Self>,
        request: Request<Incoming>,
        client: SocketAddr,
    ) -> Result<Response<HyperOutgoingBody>, Infallible> {
        let start = Instant::now();
        let (method, path) = (request.method().clone(), request.uri().path().to_string());
        let response = self.respond(request, client).await;
        let status = response.status();
        let latency = start.elapsed();
        self.metrics.request(status.as_u16(), latency);
        tracing::info!(
            %method,
            path,
            status = status.as_u16(),
            latency_ms = latency.as_secs_f64() * 1e3,
            "request"
        );
        Ok(response)
    }

    async fn respond(
        self: &Arc<Self>,
        request: Request<Incoming>,
        client: SocketAddr,
    ) -> Response<HyperOutgoingBody> {
        let Some(slot) = self.admission.enter(&self.metrics).await else {
            self.metrics.rejected.fetch_add(1, Ordering::Relaxed);
            let mut response = plain(
                StatusCode::SERVICE_UNAVAILABLE,
                "kvhost is at --max-concurrency with a full queue (--max-queued); retry later\n",
            );
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static("1"));
            return response;
        };
        let request = with_spin_headers(request, client);

        let mut wasi = WasiCtx::builder();
        wasi.inherit_stdout().inherit_stderr();
        for (name, value) in &self.env {
            wasi.env(name, value);
        }
        let state = self.prepared.instance_state(wasi.build(), self.max_memory);
        let mut store = Store::new(self.pre.engine(), state);
        store.limiter(|state| &mut state.memory_cap);
        let deadline = Instant::now() + self.request_timeout;
        store.epoch_deadline_callback(move |_| {
            if Instant::now() >= deadline {
                Err(Trap::Interrupt.into())
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });
        store.set_epoch_deadline(1);

        let (sender, receiver) = tokio::sync::oneshot::channel();
        let resources = store
            .data_mut()
            .http()
            .new_incoming_request(Scheme::Http, request);
        let resources = resources.and_then(|request| {
            let out = store.data_mut().http().new_response_outparam(sender)?;
            Ok((request, out))
        });
        let (request, out) = match resources {
            Ok(resources) => resources,
            Err(err) => return plain(StatusCode::BAD_REQUEST, &format!("bad request: {err}\n")),
        };

        let server = Arc::clone(self);
        let task = tokio::spawn(async move {
            let _slot = slot;
            let _in_flight = server.in_flight.clone();
            server.metrics.in_flight.fetch_add(1, Ordering::Relaxed);
            let called = tokio::time::timeout(server.request_timeout, async {
                let proxy = server.pre.instantiate_async(&mut store).await?;
                proxy
                    .wasi_http_incoming_handler()
                    .call_handle(&mut store, request, out)
                    .await
            })
            .await;
            server.metrics.in_flight.fetch_sub(1, Ordering::Relaxed);
            let failure = match called {
                Ok(Ok(())) => return None,
                Err(_elapsed) => Failure::Deadline(server.request_timeout),
                Ok(Err(err)) => server.classify(err, store.data().memory_cap.hit),
            };
            tracing::warn!("{}", failure.message());
            Some(failure)
        });

        match receiver.await {
            Ok(Ok(response)) => response,
            Ok(Err(code)) => plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("the component answered with an error: {code:?}\n"),
            ),
            // The instance ended without answering: say why.
            Err(_) => {
                let failure = match task.await {
                    Ok(Some(failure)) => failure,
                    Ok(None) => Failure::NoResponse,
                    Err(join) => Failure::Error(wasmtime::Error::msg(join.to_string())),
                };
                plain(failure.status(), &format!("{}\n", failure.message()))
            }
        }
    }

    fn classify(&self, err: wasmtime::Error, memory_cap_hit: bool) -> Failure {
        if matches!(err.downcast_ref::<Trap>(), Some(Trap::Interrupt)) {
            return Failure::Deadline(self.request_timeout);
        }
        if memory_cap_hit {
            return Failure::MemoryCap(self.max_memory);
        }
        match err.downcast::<Unprovided>() {
            Ok(unprovided) => Failure::Unprovided(unprovided),
            Err(err) => Failure::Error(err),
        }
    }
}

/// The request as Spin would hand it to a component: Spin's `spin-*` headers set from the
/// request (an app may read `spin-path-info` or `spin-full-url`). Headers of these names sent
/// by the client are replaced, as Spin does.
fn with_spin_headers(mut request: Request<Incoming>, client: SocketAddr) -> Request<Incoming> {
    let path_and_query = request
        .uri()
        .path_and_query()
        .map_or("/", |path| path.as_str())
        .to_string();
    let path = request.uri().path().to_string();
    let host = request
        .headers()
        .get(hyper::header::HOST)
        .and_then(|host| host.to_str().ok())
        .unwrap_or("localhost")
        .to_string();
    let headers = request.headers_mut();
    let mut set = |name: &'static str, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    };
    set("spin-full-url", format!("http://{host}{path_and_query}"));
    set("spin-path-info", path);
    set("spin-matched-route", "/...".into());
    set("spin-raw-component-route", "/...".into());
    set("spin-component-route", String::new());
    set("spin-base-path", "/".into());
    set("spin-client-addr", client.to_string());
    request
}

/// A `text/plain` response.
pub fn plain(status: StatusCode, body: &str) -> Response<HyperOutgoingBody> {
    let mut response = Response::new(
        Full::new(Bytes::from(body.to_string()))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
