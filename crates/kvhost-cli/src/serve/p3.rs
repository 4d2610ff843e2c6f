//! WASIp3 handlers (`wasi:http/handler@0.3`): instances that take several requests, one after
//! another and at the same time.
//!
//! wasmtime's [`ProxyHandler`] runs the instances ("workers"); kvhost says how: [`Workers`]
//! makes an instance, [`Worker`] decides which requests it takes (`--instance-max-requests`
//! in its life, `--instance-max-concurrent` at once) and how long each may take
//! (`--request-timeout`), and [`Expiration`] retires it (idle past
//! `--instance-idle-timeout`; or busy past the request timeout, the guard for a guest that
//! computes without yielding).
//!
//! Invariants:
//! - A trapped instance is never reused: a trap ends its worker (wasmtime stops the store's
//!   event loop), and every request it held fails with the cause ([`Worker::drop`] fills each
//!   request's [`Verdict`]).
//! - A timed-out instance takes no new request: once one of its requests expires the worker
//!   stops accepting, lets the others finish or expire, and ends.
//! - Every worker holds a clone of the server's `in_flight` sender, so shutdown waits for
//!   instances still running after their responses (post-return work may write to buckets).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use hyper::{Response, StatusCode};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use wasmtime::component::GuestTaskId;
use wasmtime::{Store, StoreContextMut};
use wasmtime_wasi_http::handler::{
    ExpirationError, HandlerState, Instance, Proxy, ProxyHandler, ShouldAccept, TrapOrPanicError,
    WorkerExpiration, WorkerState, WorkerStatus,
};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::p3::bindings::http::types::ErrorCode;
use wasmtime_wasi_http::p3::bindings::ServicePre;
use wasmtime_wasi_http::WasiHttpView;

use super::body::ResponseBody;
use super::instance::Instances;
use super::request::{error_code_response, plain, Failure, ServedRequest, Server};
use crate::cli::ReuseArgs;
use crate::host::HostState;

/// What a request and the instance that takes it tell each other.
pub type Verdict = Arc<RequestState>;

/// The state behind a [`Verdict`].
#[derive(Default)]
pub struct RequestState {
    /// What the request hears when its instance fails before answering it: the status and
    /// message of the failure, set by the worker that ran it.
    failure: Mutex<Option<(StatusCode, String)>>,
    /// Set (by the worker that takes the request) to that worker's hang-up flag, which the
    /// response body sets if the client goes away before the body's end.
    hung_up: OnceLock<Arc<AtomicBool>>,
}

/// How instances are made and reused; the state behind the server's `ProxyHandler`.
pub struct Workers {
    /// The component, linked for WASIp3.
    pub pre: ServicePre<HostState>,
    /// Store set-up.
    pub instances: Arc<Instances>,
    /// `--instance-*` flags.
    pub reuse: ReuseArgs,
    /// `--request-timeout`.
    pub request_timeout: Duration,
    /// Cloned into every worker (see the module invariants).
    pub in_flight: mpsc::Sender<()>,
    /// One permit per instance the pooling allocator holds (`--max-concurrency`): a worker
    /// takes one before instantiating and keeps it for life, so a burst waits for an
    /// instance instead of failing on a full pool (idle workers retire within
    /// `--instance-idle-timeout`).
    pub permits: Arc<Semaphore>,
    /// Turns true at shutdown: idle instances retire at once instead of after their idle time.
    pub stopping: watch::Receiver<bool>,
}

impl HandlerState for Workers {
    type StoreData = HostState;
    type WorkerExpiration = Expiration;
    type WorkerState = Worker;

    async fn instantiate(&self) -> wasmtime::Result<Instance<HostState, Expiration, Worker>> {
        let permit = tokio::time::timeout(
            self.request_timeout,
            Arc::clone(&self.permits).acquire_owned(),
        )
        .await
        .map_err(|_| {
            wasmtime::Error::msg(
                "no instance became free within --request-timeout (all --max-concurrency \
                 instances are busy)",
            )
        })?
        .map_err(|_| wasmtime::Error::msg("kvhost is shutting down"))?;
        let mut store = self.instances.store(self.pre.engine(), None);
        let service =
            tokio::time::timeout(self.request_timeout, self.pre.instantiate_async(&mut store))
                .await
                .map_err(|_| {
                    wasmtime::Error::msg(
                        "instantiating the component took longer than --request-timeout",
                    )
                })??;
        Ok(Instance {
            store,
            proxy: Proxy::P3(service),
            view: <HostState as WasiHttpView>::http,
            expiration: Expiration {
                idle: self.reuse.instance_idle_timeout,
                busy: self.request_timeout,
                timer: Box::pin(tokio::time::sleep(Duration::from_secs(86_400))),
                stop: {
                    let mut stopping = self.stopping.clone();
                    Box::pin(async move {
                        let _ = stopping.wait_for(|stop| *stop).await;
                    })
                },
                stopped: false,
            },
            state: Worker {
                max_requests: self.reuse.instance_max_requests as usize,
                max_concurrent: self.reuse.instance_max_concurrent as usize,
                request_timeout: self.request_timeout,
                requests: Mutex::new(Vec::new()),
                hung_up: Arc::default(),
                _in_flight: self.in_flight.clone(),
                _permit: permit,
            },
        })
    }
}

/// One instance's policy and the requests it has taken.
pub struct Worker {
    max_requests: usize,
    max_concurrent: usize,
    request_timeout: Duration,
    /// The verdicts of the requests this instance took (dead ones are pruned on the way).
    requests: Mutex<Vec<Weak<RequestState>>>,
    /// Set when a client of this instance hung up before its response's end.
    hung_up: Arc<AtomicBool>,
    _in_flight: mpsc::Sender<()>,
    /// Freed when the worker ends (after its store is dropped).
    _permit: OwnedSemaphorePermit,
}

impl WorkerState for Worker {
    type StoreData = HostState;
    type RequestData = Verdict;

    fn should_accept_request(&self, concurrent: usize, total: usize) -> ShouldAccept {
        if total >= self.max_requests {
            ShouldAccept::Never
        } else if concurrent >= self.max_concurrent {
            ShouldAccept::No
        } else {
            ShouldAccept::Yes
        }
    }

    fn on_request_start(
        &self,
        _store: StoreContextMut<'_, HostState>,
        verdict: Verdict,
        _task: GuestTaskId,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + Sync>> {
        let _ = verdict.hung_up.set(Arc::clone(&self.hung_up));
        if let Ok(mut requests) = self.requests.lock() {
            requests.retain(|request| request.strong_count() > 0);
            requests.push(Arc::downgrade(&verdict));
        }
        Box::pin(tokio::time::sleep(self.request_timeout))
    }

    fn drop(&self, store: Store<HostState>, result: wasmtime::Result<()>) {
        let Err(err) = result else {
            return;
        };
        let failure = Failure::classify(err, store.data().memory_cap.hit, self.request_timeout);
        failure.log(
            self.hung_up.load(Ordering::Acquire),
            Some("instance discarded"),
        );
        let verdict = (failure.status(), failure.client_message());
        drop(store);
        let Ok(requests) = self.requests.lock() else {
            return;
        };
        for request in requests.iter().filter_map(Weak::upgrade) {
            if let Ok(mut slot) = request.failure.lock() {
                slot.get_or_insert_with(|| verdict.clone());
            }
        }
    }
}

/// When an instance is retired: idle longer than `idle` (or idle at all once kvhost is
/// shutting down), or with a request (or post-return work) older than `busy`.
pub struct Expiration {
    idle: Duration,
    busy: Duration,
    timer: Pin<Box<tokio::time::Sleep>>,
    /// Resolves at shutdown.
    stop: Pin<Box<dyn Future<Output = ()> + Send + Sync>>,
    stopped: bool,
}

impl WorkerExpiration for Expiration {
    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        status: WorkerStatus,
        start: Instant,
    ) -> Poll<()> {
        if !self.stopped && self.stop.as_mut().poll(cx).is_ready() {
            self.stopped = true;
        }
        if self.stopped && status == WorkerStatus::Idle {
            return Poll::Ready(());
        }
        let limit = match status {
            WorkerStatus::Idle => self.idle,
            WorkerStatus::Requests | WorkerStatus::PostReturn => self.busy,
        };
        let Some(deadline) = start.checked_add(limit) else {
            return Poll::Pending;
        };
        let deadline = tokio::time::Instant::from_std(deadline);
        if self.timer.deadline() != deadline {
            self.timer.as_mut().reset(deadline);
        }
        self.timer.as_mut().poll(cx)
    }
}

/// Answers `request` through `handler` (an idle or new instance), holding `slot` until the
/// response body is done.
pub async fn respond(
    server: &Arc<Server>,
    handler: &ProxyHandler<Workers>,
    request: ServedRequest,
    slot: OwnedSemaphorePermit,
) -> Response<HyperOutgoingBody> {
    let verdict = Verdict::default();
    let request = request.map(http_body_util::BodyExt::boxed_unsync);
    let in_flight = InFlight::new(server, slot);
    let handled = tokio::time::timeout(
        server.request_timeout,
        handler.handle(Arc::clone(&verdict), request),
    )
    .await;
    let err = match handled {
        Ok(Ok(response)) => {
            let hung_up = verdict.hung_up.get().cloned().unwrap_or_default();
            return response.map(|body| ResponseBody::new(body, hung_up, in_flight).boxed_unsync());
        }
        Ok(Err(err)) => err,
        Err(_elapsed) => return Failure::Deadline(server.request_timeout).response(),
    };
    let failure = if err.is::<ExpirationError>() {
        Failure::Deadline(server.request_timeout)
    } else if err.is::<TrapOrPanicError>() {
        // The worker filled in the cause when it dropped the instance.
        if let Some((status, message)) = verdict.failure.lock().ok().and_then(|slot| slot.clone()) {
            return plain(status, &format!("{message}\n"));
        }
        Failure::Error(err)
    } else if let Some(code) = err.downcast_ref::<ErrorCode>() {
        return error_code_response(code);
    } else {
        Failure::Error(err)
    };
    tracing::warn!("{}", failure.message());
    failure.response()
}

/// A request between admission and the end of its response body: holds the admission slot
/// and counts as in flight.
struct InFlight {
    server: Arc<Server>,
    _slot: OwnedSemaphorePermit,
}

impl InFlight {
    fn new(server: &Arc<Server>, slot: OwnedSemaphorePermit) -> Self {
        server.metrics.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight {
            server: Arc::clone(server),
            _slot: slot,
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.server
            .metrics
            .in_flight
            .fetch_sub(1, Ordering::Relaxed);
    }
}
