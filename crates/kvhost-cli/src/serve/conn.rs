//! Client connections: how many may be open, how long a client may take to send a request,
//! and how one connection is served until it closes or kvhost shuts down.
//!
//! Invariants:
//! - The listener's accept queue holds [`LISTEN_BACKLOG`] connections (the kernel may cap it
//!   lower, at `net.core.somaxconn`), so a burst of thousands of clients connecting at once
//!   waits to be accepted instead of having its SYNs dropped and retried seconds later.
//! - At most `--max-connections` connections are served at once; one more is answered 503
//!   and closed (it costs a file descriptor for the few milliseconds that takes), so an
//!   idle-connection flood never starves kvhost of file descriptors.
//! - A client has `--header-timeout` to send a request's head, the first one and each one
//!   after on a kept-alive connection: a slowloris or idle connection is closed after that.
//! - At shutdown a connection that has not sent a complete request is closed at once; one
//!   that has finishes the request it is on.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::server::conn::http1;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use wasmtime_wasi_http::io::TokioIo;

use super::request::Server;
use crate::hyper_timer::TokioTimer;

/// What a connection turned away at `--max-connections` reads before it is closed.
const TOO_MANY_CONNECTIONS: &str = "kvhost has --max-connections connections open; retry later\n";

/// File descriptors kept free for everything but client connections (the store, the
/// listener, compile cache files, Redis connections).
const RESERVED_FDS: u64 = 256;

/// Connections the kernel may hold, fully open, for kvhost to accept (tokio's `bind` asks
/// for 1,024).
const LISTEN_BACKLOG: u32 = 4_096;

/// Listens on `address` with an accept queue of [`LISTEN_BACKLOG`] connections.
pub fn listen(address: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match address {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    // As tokio's own `bind`: a restarted server may listen while old connections linger.
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(LISTEN_BACKLOG)
}

/// The open connections and the rules they are served by.
pub struct Connections {
    permits: Arc<Semaphore>,
    header_timeout: Duration,
    /// When an accept failure was last logged, and how many were not logged since.
    accept_failures: parking_lot::Mutex<(Option<Instant>, u64)>,
}

impl Connections {
    /// At most `max` connections at once (lowered, with a warning, to what the process's
    /// file-descriptor limit allows after raising it as far as it may go), each with
    /// `header_timeout` to send a request's head.
    pub fn new(max: u32, header_timeout: Duration) -> Self {
        let wanted = u64::from(max) + RESERVED_FDS;
        let allowed = raise_fd_limit(wanted);
        let max = if allowed < wanted {
            let fitting = allowed.saturating_sub(RESERVED_FDS).max(1);
            tracing::warn!(
                "the open-file limit ({allowed}) allows only {fitting} connections, not \
                 --max-connections {max}; raise it with `ulimit -n`"
            );
            fitting
        } else {
            u64::from(max)
        };
        Connections {
            permits: Arc::new(Semaphore::new(usize::try_from(max).unwrap_or(usize::MAX))),
            header_timeout,
            accept_failures: parking_lot::Mutex::new((None, 0)),
        }
    }

    /// Serves `stream` from `client` on a task of its own, or answers it 503 and closes it
    /// when `--max-connections` are open.
    pub fn accepted(
        &self,
        stream: TcpStream,
        client: SocketAddr,
        server: &Arc<Server>,
        stopping: &watch::Receiver<bool>,
    ) {
        let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() else {
            server
                .metrics
                .connections_rejected
                .fetch_add(1, Ordering::Relaxed);
            tokio::spawn(turn_away(stream));
            return;
        };
        tokio::spawn(serve_connection(
            stream,
            client,
            Arc::clone(server),
            stopping.clone(),
            self.header_timeout,
            permit,
        ));
    }

    /// Logs a failed `accept` (out of file descriptors, and the like) at most once a second,
    /// saying how many were not logged.
    pub fn accept_failed(&self, err: &std::io::Error) {
        let mut failures = self.accept_failures.lock();
        let (last, unlogged) = &mut *failures;
        let now = Instant::now();
        if last.is_some_and(|last| now.duration_since(last) < Duration::from_secs(1)) {
            *unlogged += 1;
            return;
        }
        let more = std::mem::take(unlogged);
        *last = Some(now);
        if more > 0 {
            tracing::warn!("cannot accept a connection: {err} ({more} more failures not logged)");
        } else {
            tracing::warn!("cannot accept a connection: {err}");
        }
    }
}

/// Raises the soft open-file limit towards `wanted` (never above the hard limit); returns the
/// limit in force afterwards.
fn raise_fd_limit(wanted: u64) -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass; no other memory is touched.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return wanted;
    }
    let current = limit.rlim_cur;
    if current == libc::RLIM_INFINITY || current >= wanted {
        return wanted;
    }
    let raised = libc::rlimit {
        rlim_cur: wanted.min(limit.rlim_max),
        rlim_max: limit.rlim_max,
    };
    // SAFETY: setrlimit reads the struct we pass.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
        raised.rlim_cur
    } else {
        current
    }
}

/// Answers a connection over the cap with a 503 (if it can within a second) and closes it.
async fn turn_away(mut stream: TcpStream) {
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let response = format!(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n\
             retry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n\
             {TOO_MANY_CONNECTIONS}",
            TOO_MANY_CONNECTIONS.len()
        );
        stream.write_all(response.as_bytes()).await?;
        stream.shutdown().await
    })
    .await;
}

/// Serves one connection until it closes, or until shutdown (see the module invariants).
async fn serve_connection(
    stream: TcpStream,
    client: SocketAddr,
    server: Arc<Server>,
    mut stopping: watch::Receiver<bool>,
    header_timeout: Duration,
    _permit: OwnedSemaphorePermit,
) {
    let _in_flight = server.in_flight.clone();
    let _open = Open::new(&server);
    // Small responses should leave at once, not wait for Nagle's algorithm.
    let _ = stream.set_nodelay(true);
    let started = Arc::new(AtomicBool::new(false));
    let service = {
        let (server, started) = (Arc::clone(&server), Arc::clone(&started));
        hyper::service::service_fn(move |request| {
            started.store(true, Ordering::Relaxed);
            Arc::clone(&server).handle(request, client)
        })
    };
    let connection = http1::Builder::new()
        .timer(TokioTimer)
        .header_read_timeout(header_timeout)
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = async { drop(stopping.wait_for(|stop| *stop).await) } => {
            // hyper closes a connection idle between requests itself; one that has not sent
            // a whole request yet would be waited for, so it is dropped here.
            if !started.load(Ordering::Relaxed) {
                return;
            }
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(err) = result {
        tracing::debug!(%client, "connection ended: {err}");
    }
}

/// Counts a connection as open while it lives.
struct Open(Arc<Server>);

impl Open {
    fn new(server: &Arc<Server>) -> Self {
        server.metrics.connections.fetch_add(1, Ordering::Relaxed);
        Open(Arc::clone(server))
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.metrics.connections.fetch_sub(1, Ordering::Relaxed);
    }
}
