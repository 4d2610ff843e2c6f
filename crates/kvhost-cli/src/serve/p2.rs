//! WASIp2 handlers (`wasi:http/incoming-handler@0.2.x`): a fresh instance per request.
//!
//! The instance gets its own `Store` and a deadline enforced twice: by epoch interruption for
//! a guest that computes, and by a timer for one that waits in a host call. The response head
//! goes out as soon as the guest calls `response-outparam.set`; the body streams while the
//! instance keeps running, and the admission slot is held until the instance ends.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use http_body_util::BodyExt;
use hyper::{Response, StatusCode};
use tokio::sync::OwnedSemaphorePermit;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::WasiHttpView;

use super::body::ResponseBody;
use super::request::{error_code_response, plain, Failure, ServedRequest, Server};
use crate::host::HostState;

/// Answers `request` with a fresh instance of `pre`, holding `slot` until the instance ends.
pub async fn respond(
    server: &Arc<Server>,
    pre: &ProxyPre<HostState>,
    request: ServedRequest,
    slot: OwnedSemaphorePermit,
) -> Response<HyperOutgoingBody> {
    let deadline = Instant::now() + server.request_timeout;
    let mut store = server.instances.store(pre.engine(), Some(deadline));

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

    let server = Arc::clone(server);
    let pre = pre.clone();
    let hung_up = Arc::new(AtomicBool::new(false));
    let client_gone = Arc::clone(&hung_up);
    let task = tokio::spawn(async move {
        let _in_flight = server.in_flight.clone();
        server.metrics.in_flight.fetch_add(1, Ordering::Relaxed);
        let called = tokio::time::timeout(server.request_timeout, async {
            let proxy = pre.instantiate_async(&mut store).await?;
            proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut store, request, out)
                .await
        })
        .await;
        server.metrics.in_flight.fetch_sub(1, Ordering::Relaxed);
        let failure = match called {
            Ok(Ok(())) => None,
            Err(_elapsed) => Some(Failure::Deadline(server.request_timeout)),
            Ok(Err(err)) => Some(Failure::classify(
                err,
                store.data().memory_cap.hit,
                server.request_timeout,
            )),
        };
        // Invariant: the instance is back in the pool before its admission slot is freed.
        // Freed first (as a local dropped before the captured store), a request admitted on
        // the slot could find the pool still full and fail ("maximum concurrent limit").
        drop(store);
        drop(slot);
        if let Some(failure) = &failure {
            failure.log(client_gone.load(Ordering::Acquire), None);
        }
        failure
    });

    match receiver.await {
        Ok(Ok(response)) => {
            response.map(|body| ResponseBody::new(body, hung_up, ()).boxed_unsync())
        }
        Ok(Err(code)) => error_code_response(&code),
        // The instance ended without answering: say why.
        Err(_) => match task.await {
            Ok(Some(failure)) => failure.response(),
            Ok(None) => Failure::NoResponse.response(),
            Err(join) => Failure::Error(wasmtime::Error::msg(join.to_string())).response(),
        },
    }
}
