//! One HTTP request: admission, the handler call, and what the client gets when the component
//! fails.
//!
//! The life of a request:
//! 1. **Admission** ([`Admission`]): a slot (one of `--max-concurrency`) is taken at once if
//!    free; otherwise the request waits in a bounded queue (`--max-queued`); past that it is
//!    answered 503 without touching the component.
//! 2. **Handler**: Spin's `spin-*` headers are set, then the request goes to the component's
//!    handler ([`Handler`]): a fresh instance for a WASIp2 handler ([`super::p2`]), a reused
//!    one for a WASIp3 handler ([`super::p3`]). Either way `--request-timeout` bounds it.
//! 3. **Answer**: the response head goes to the client as soon as the component gives it; the
//!    body streams afterwards. The slot is held until the body is done (WASIp3) or the
//!    instance ends (WASIp2). A component that fails before answering gets a 500 (504 past
//!    the deadline) whose body says why, naming the interface when it called one that kvhost
//!    does not provide.

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
use wasmtime::Trap;
use wasmtime_wasi_http::handler::ProxyHandler;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use super::body::RequestBody;
use super::instance::Instances;
use super::p3::Workers;
use super::stubs::Unprovided;
use crate::host::{HostState, MemoryLimit};
use crate::metrics::Metrics;

/// A request as the component gets it: its body capped at `--max-request-body`.
pub type ServedRequest = Request<RequestBody<Incoming>>;

/// The component's HTTP handler, by the `wasi:http` generation it exports.
pub enum Handler {
    /// `wasi:http/incoming-handler@0.2.x`: a fresh instance per request.
    P2(ProxyPre<HostState>),
    /// `wasi:http/handler@0.3.x`: reused instances, several requests at once.
    P3(ProxyHandler<Workers>),
}

/// Everything a request needs, shared by all of them.
pub struct Server {
    /// The handler.
    pub handler: Handler,
    /// Store set-up (buckets, component, memory cap, environment).
    pub instances: Arc<Instances>,
    /// Slots and queue.
    pub admission: Admission,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// `--request-timeout`.
    pub request_timeout: Duration,
    /// `--max-request-body`, in bytes.
    pub max_request_body: u64,
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
        metrics.queued.fetch_add(1, Ordering::Relaxed);
        let _waiting = Waiting(&self.waiting, metrics);
        Arc::clone(&self.slots).acquire_owned().await.ok()
    }

    /// Stops admitting: requests waiting now and later get 503.
    pub fn close(&self) {
        self.slots.close();
    }
}

/// A request waiting for a slot: it leaves the queue however its future ends (also when the
/// client goes away).
struct Waiting<'a>(&'a AtomicU32, &'a Metrics);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
        self.1.queued.fetch_sub(1, Ordering::Relaxed);
    }
}

/// How an instance ended, when it ended badly.
pub enum Failure {
    /// Past `--request-timeout`.
    Deadline(Duration),
    /// It tried to grow its memory past `--max-memory` or `--max-total-memory`.
    Memory(MemoryLimit),
    /// It called an import kvhost does not provide.
    Unprovided(Unprovided),
    /// Anything else (a trap, an instantiation failure).
    Error(wasmtime::Error),
    /// It returned without giving a response.
    NoResponse,
}

impl Failure {
    /// What became of an instance that ended with `err`.
    pub fn classify(
        err: wasmtime::Error,
        memory_limit_hit: Option<MemoryLimit>,
        request_timeout: Duration,
    ) -> Failure {
        if matches!(err.downcast_ref::<Trap>(), Some(Trap::Interrupt)) {
            return Failure::Deadline(request_timeout);
        }
        if let Some(limit) = memory_limit_hit {
            return Failure::Memory(limit);
        }
        match err.downcast::<Unprovided>() {
            Ok(unprovided) => Failure::Unprovided(unprovided),
            Err(err) => Failure::Error(err),
        }
    }

    /// The response status for this failure.
    pub fn status(&self) -> StatusCode {
        match self {
            Failure::Deadline(_) => StatusCode::GATEWAY_TIMEOUT,
            // Other instances hold the memory: a retry later may succeed.
            Failure::Memory(MemoryLimit::Total(_)) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// What the log is told: everything, a trap's wasm backtrace included.
    pub fn message(&self) -> String {
        match self {
            Failure::Deadline(timeout) => format!(
                "the component did not finish within --request-timeout {}",
                crate::units::format_duration(*timeout)
            ),
            Failure::Memory(MemoryLimit::Instance(max)) => {
                format!("the component tried to grow its memory past --max-memory ({max} bytes)")
            }
            Failure::Memory(MemoryLimit::Total(max)) => format!(
                "the component needed more memory than is left of --max-total-memory ({max} \
                 bytes, shared by all instances)"
            ),
            Failure::Unprovided(unprovided) => unprovided.to_string(),
            Failure::Error(err) => format!("the component failed: {err:#}"),
            Failure::NoResponse => "the component returned without sending a response".to_string(),
        }
    }

    /// What the client is told: as [`Failure::message`], but never a trap's details (a
    /// backtrace says too much about the component to a remote client); those are logged.
    pub fn client_message(&self) -> String {
        match self {
            Failure::Error(_) => {
                "internal error: the component failed; the kvhost log has the details".into()
            }
            _ => self.message(),
        }
    }

    /// Logs this failure at warn, with everything, prefixed by `what_became` of the instance
    /// if given. When the client had already hung up and the component failed (writing to
    /// the closed stream, most likely: not its fault), it is one info line instead, with the
    /// details at debug.
    pub fn log(&self, client_hung_up: bool, what_became: Option<&str>) {
        let message = match what_became {
            Some(what) => format!("{what}: {}", self.message()),
            None => self.message(),
        };
        if client_hung_up && matches!(self, Failure::Error(_)) {
            match what_became {
                Some(what) => tracing::info!("a client hung up before its response's end; {what}"),
                None => tracing::info!("a client hung up before its response's end"),
            }
            tracing::debug!("{message}");
        } else {
            tracing::warn!("{message}");
        }
    }

    /// A `text/plain` response with the [`Failure::client_message`].
    pub fn response(&self) -> Response<HyperOutgoingBody> {
        plain(self.status(), &format!("{}\n", self.client_message()))
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
        let declared = request
            .headers()
            .get(hyper::header::CONTENT_LENGTH)
            .and_then(|length| length.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|length| length > self.max_request_body) {
            return plain(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!(
                    "the request body is larger than --max-request-body ({} bytes)\n",
                    self.max_request_body
                ),
            );
        }
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
        let request = with_spin_headers(request, client)
            .map(|body| RequestBody::new(body, self.max_request_body));
        match &self.handler {
            Handler::P2(pre) => super::p2::respond(self, pre, request, slot).await,
            Handler::P3(handler) => super::p3::respond(self, handler, request, slot).await,
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

/// The 500 for a component that answered with a `wasi:http` `error-code` (of either
/// generation) instead of a response.
pub fn error_code_response(code: &dyn std::fmt::Debug) -> Response<HyperOutgoingBody> {
    plain(
        StatusCode::INTERNAL_SERVER_ERROR,
        &format!("the component answered with an error: {code:?}\n"),
    )
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
