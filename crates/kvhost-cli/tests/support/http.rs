//! A minimal HTTP/1.1 client over hyper, one connection per [`Client`], and a load generator
//! that drives many clients at once and reports throughput and latency.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use tokio::net::TcpStream;

/// One keep-alive connection.
pub struct Client {
    sender: SendRequest<Full<Bytes>>,
    host: String,
}

/// A response: status and whole body.
#[derive(Debug)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// The body.
    pub body: Bytes,
}

impl Reply {
    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl Client {
    /// Connects to `address`.
    pub async fn connect(address: SocketAddr) -> std::io::Result<Client> {
        let stream = TcpStream::connect(address).await?;
        stream.set_nodelay(true)?;
        let io = wasmtime_wasi_http::io::TokioIo::new(stream);
        let (sender, connection) = http1::handshake(io).await.map_err(std::io::Error::other)?;
        tokio::spawn(connection);
        Ok(Client {
            sender,
            host: address.to_string(),
        })
    }

    /// Sends `method path` with `body`; waits for the whole response.
    pub async fn send(&mut self, method: &str, path: &str, body: &[u8]) -> Result<Reply, String> {
        let request = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, &self.host)
            .body(Full::new(Bytes::copy_from_slice(body)))
            .map_err(|err| err.to_string())?;
        self.sender.ready().await.map_err(|err| err.to_string())?;
        let response = self
            .sender
            .send_request(request)
            .await
            .map_err(|err| format!("{method} {path}: {err}"))?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|err| format!("{method} {path}: reading the body: {err}"))?
            .to_bytes();
        Ok(Reply { status, body })
    }
}

/// What a load run measured.
#[derive(Debug, Clone)]
pub struct LoadReport {
    /// Requests answered 2xx.
    pub ok: u64,
    /// Requests that failed or were answered otherwise (the first few errors are kept).
    pub failed: u64,
    /// The first errors seen.
    pub errors: Vec<String>,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// Median latency.
    pub p50: Duration,
    /// 99th percentile latency.
    pub p99: Duration,
}

impl LoadReport {
    /// Successful requests per second.
    pub fn rps(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }
}

/// Runs `clients` connections against `address` for `duration`, each sending the requests
/// `request(client_index, sequence_number)` returns, one after another.
pub async fn load(
    address: SocketAddr,
    clients: usize,
    duration: Duration,
    request: impl Fn(usize, u64) -> (&'static str, String, Vec<u8>) + Send + Sync + Clone + 'static,
) -> LoadReport {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for index in 0..clients {
        let request = request.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = Vec::new();
            let mut client = match Client::connect(address).await {
                Ok(client) => client,
                Err(err) => return (latencies, vec![format!("connect: {err}")]),
            };
            let mut sequence = 0;
            while start.elapsed() < duration {
                let (method, path, body) = request(index, sequence);
                sequence += 1;
                let sent = Instant::now();
                match client.send(method, &path, &body).await {
                    Ok(reply) if (200..300).contains(&reply.status) => {
                        latencies.push(sent.elapsed());
                    }
                    Ok(reply) => errors.push(format!(
                        "{method} {path}: {} {}",
                        reply.status,
                        reply.text()
                    )),
                    Err(err) => {
                        errors.push(err);
                        break;
                    }
                }
            }
            (latencies, errors)
        }));
    }
    let mut latencies = Vec::new();
    let mut errors = Vec::new();
    for task in tasks {
        let (mut l, mut e) = task.await.expect("load task");
        latencies.append(&mut l);
        errors.append(&mut e);
    }
    let elapsed = start.elapsed();
    latencies.sort();
    #[allow(
        clippy::cast_possible_truncation,
        reason = "a rank in 0..len, rounded down on purpose"
    )]
    let percentile = |p: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * p) as usize)
            .copied()
            .unwrap_or_default()
    };
    LoadReport {
        ok: latencies.len() as u64,
        failed: errors.len() as u64,
        p50: percentile(0.5),
        p99: percentile(0.99),
        errors: errors.into_iter().take(5).collect(),
        elapsed,
    }
}

/// Releases `clients` tasks at once with a barrier; each connects its own client to
/// `address` and runs `work(index, client)`; the errors of the clients that failed.
///
/// The clients connect after the barrier, not before: a connection held idle at the barrier
/// would meet the server's `--header-timeout` if connecting them all took that long.
pub async fn clients_at_once<F, Fut>(address: SocketAddr, clients: usize, work: F) -> Vec<String>
where
    F: Fn(usize, Client) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = Result<(), String>> + Send,
{
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(clients));
    let mut tasks = Vec::new();
    for i in 0..clients {
        let (start, work) = (std::sync::Arc::clone(&start), work.clone());
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            let client = Client::connect(address)
                .await
                .map_err(|err| format!("client {i}: connect: {err}"))?;
            work(i, client).await
        }));
    }
    let mut failures = Vec::new();
    for task in tasks {
        if let Err(err) = task.await.expect("client task") {
            failures.push(err);
        }
    }
    failures
}
