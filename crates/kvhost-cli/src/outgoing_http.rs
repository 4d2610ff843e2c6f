//! Outgoing HTTP from a component (`wasi:http/outgoing-handler`, `wasi:http/client`): refused.
//!
//! kvhost links `wasi:http` so that components built with it (Spin apps; componentize-js
//! builds, whose `fetch` imports it) link and run, but it serves and runs components, it does
//! not proxy for them: every request a guest sends fails with `HTTP-request-denied`.

use wasmtime_wasi_http::WasiHttpHooks;

/// The `wasi:http` hooks of every instance, for `run` and `serve`: outgoing requests are
/// refused.
pub fn outgoing_http_hooks() -> &'static mut dyn WasiHttpHooks {
    // A zero-sized value: leaking it allocates nothing.
    Box::leak(Box::new(DenyOutgoingHttp))
}

struct DenyOutgoingHttp;

/// A future `wasmtime_wasi_http` hands to or takes from `send_request`.
type HttpFuture<T> = Box<dyn std::future::Future<Output = wasmtime_wasi_http::Result<T>> + Send>;

impl WasiHttpHooks for DenyOutgoingHttp {
    fn send_request(
        &mut self,
        _request: http::Request<wasmtime_wasi_http::WasiBody>,
        _options: Option<wasmtime_wasi_http::RequestOptions>,
        _fut: HttpFuture<()>,
    ) -> HttpFuture<(http::Response<wasmtime_wasi_http::WasiBody>, HttpFuture<()>)> {
        Box::new(std::future::ready(Err(
            wasmtime_wasi_http::Error::HttpRequestDenied,
        )))
    }
}
