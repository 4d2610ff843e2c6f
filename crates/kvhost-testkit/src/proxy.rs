//! A loopback TCP proxy that injects network faults between a client and a server.
//!
//! Threads, not async: it works under any runtime (or none) and cannot be starved by the code
//! under test. Each connection gets one thread per direction reading chunks and one per
//! direction writing them when due, so a delay shifts traffic in time without reordering it.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the proxy does with traffic (applies to data read after the change).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyMode {
    /// Forward both ways at once.
    Pass,
    /// Forward both ways, each chunk this much later than it arrived.
    Delay(Duration),
    /// Accept and swallow everything; never answer (a hung server).
    Blackhole,
    /// Forward requests; when a reply comes back, drop the connection instead of delivering it
    /// (the server applied the command, the client never hears).
    CutOnReply,
}

struct Shared {
    mode: Mutex<ProxyMode>,
    stop: AtomicBool,
    streams: Mutex<Vec<TcpStream>>,
}

impl Shared {
    fn mode(&self) -> ProxyMode {
        *self
            .mode
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A running proxy; stops (and drops every connection) when dropped.
pub struct Proxy {
    port: u16,
    shared: Arc<Shared>,
}

impl Proxy {
    /// A proxy on a loopback ephemeral port forwarding to `upstream`.
    pub fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port for the proxy");
        let port = listener.local_addr().expect("the proxy's address").port();
        let shared = Arc::new(Shared {
            mode: Mutex::new(ProxyMode::Pass),
            stop: AtomicBool::new(false),
            streams: Mutex::new(Vec::new()),
        });
        let accept_shared = Arc::clone(&shared);
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if accept_shared.stop.load(Ordering::Acquire) {
                    return;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(upstream) else {
                    continue;
                };
                connect(&accept_shared, client, server);
            }
        });
        Proxy { port, shared }
    }

    /// The proxy's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Changes what happens to traffic from now on.
    pub fn set_mode(&self, mode: ProxyMode) {
        *self
            .shared
            .mode
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = mode;
    }

    /// Drops every open connection (new ones are still accepted).
    pub fn cut_all(&self) {
        let streams = std::mem::take(
            &mut *self
                .shared
                .streams
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for stream in streams {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        self.cut_all();
    }
}

fn connect(shared: &Arc<Shared>, client: TcpStream, server: TcpStream) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let clones = [client.try_clone(), server.try_clone()];
    let (Ok(client_again), Ok(server_again)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    {
        let mut streams = shared
            .streams
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        streams.extend(clones.into_iter().flatten());
    }
    pump(Arc::clone(shared), client, server_again, false);
    pump(Arc::clone(shared), server, client_again, true);
}

/// Copies `from` -> `to` under the proxy's mode. `reply` marks the server -> client direction.
fn pump(shared: Arc<Shared>, mut from: TcpStream, to: TcpStream, reply: bool) {
    let (sender, receiver) = mpsc::channel::<(Instant, Vec<u8>)>();
    let writer_to = to.try_clone();
    std::thread::spawn(move || {
        let Ok(mut to) = writer_to else { return };
        for (due, chunk) in receiver {
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            if to.write_all(&chunk).is_err() {
                return;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
    std::thread::spawn(move || {
        let mut buffer = vec![0; 64 * 1024];
        loop {
            let read = match from.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(read) => read,
            };
            let due = match shared.mode() {
                ProxyMode::Pass => Instant::now(),
                ProxyMode::Delay(delay) => Instant::now() + delay,
                ProxyMode::Blackhole => continue,
                ProxyMode::CutOnReply if reply => {
                    let _ = from.shutdown(Shutdown::Both);
                    let _ = to.shutdown(Shutdown::Both);
                    break;
                }
                ProxyMode::CutOnReply => Instant::now(),
            };
            if sender.send((due, buffer[..read].to_vec())).is_err() {
                break;
            }
        }
    });
}
