//! The admin API from the tests: a running `kvhost admin`, and requests that carry (or do
//! not carry) the token.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};

use super::KVHOST;

/// A running `kvhost admin`, killed on drop if a test did not stop it.
pub struct Admin {
    child: Child,
    /// Where the API listens.
    pub address: SocketAddr,
    /// The data dir.
    pub data_dir: PathBuf,
    log: mpsc::Receiver<String>,
}

/// Starts `kvhost admin` in `dir` (data dir `dir/data`) on an ephemeral loopback port.
pub fn admin(dir: &Path, extra: &[&str]) -> Admin {
    let data_dir = dir.join("data");
    let mut child = Command::new(KVHOST)
        .arg("admin")
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data_dir)
        .args(extra)
        .current_dir(dir)
        .env("KVHOST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kvhost admin starts");
    let (lines, log) = mpsc::channel();
    let stderr = child.stderr.take().expect("stderr is piped");
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("[kvhost admin] {line}");
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let mut admin = Admin {
        child,
        address: SocketAddr::from(([127, 0, 0, 1], 0)),
        data_dir,
        log,
    };
    admin.address = admin_address(&admin.log);
    admin
}

/// Waits for the log line saying where the admin API listens.
pub fn admin_address(log: &mpsc::Receiver<String>) -> SocketAddr {
    let marker = "admin console and API on http://";
    loop {
        let line = log
            .recv_timeout(Duration::from_secs(300))
            .expect("kvhost says where the admin API listens");
        if let Some(at) = line.find(marker) {
            let rest = &line[at + marker.len()..];
            return rest
                .split('/')
                .next()
                .and_then(|address| address.parse().ok())
                .expect("an address");
        }
    }
}

impl Admin {
    /// The token, from the discovery file.
    pub fn token(&self) -> String {
        token_in(&self.data_dir)
    }

    /// Kills it (SIGKILL) and waits for it: no clean-up runs.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM, waits for the exit; returns the rest of the log.
    pub fn stop(mut self) -> (std::process::ExitStatus, Vec<String>) {
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid fits");
        // SAFETY: kill(2) on our own child's pid; it has not been reaped yet.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
        let status = self.child.wait().expect("kvhost admin exits");
        (status, self.log.try_iter().collect())
    }
}

impl Drop for Admin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The token in `data_dir`'s discovery file.
pub fn token_in(data_dir: &Path) -> String {
    let text = std::fs::read_to_string(data_dir.join("admin.json")).expect("admin.json exists");
    let json: serde_json::Value = serde_json::from_str(&text).expect("admin.json is JSON");
    json["token"].as_str().expect("a token").to_string()
}

/// An answer: status, headers, body.
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// The headers.
    pub headers: hyper::HeaderMap,
    /// The body.
    pub body: Bytes,
}

impl Answer {
    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|err| {
            panic!("not JSON ({err}): {}", String::from_utf8_lossy(&self.body))
        })
    }
}

/// Sends one request to `address`, with `Authorization: Bearer TOKEN` if `token` is given.
pub async fn call(
    address: SocketAddr,
    token: Option<&str>,
    method: &str,
    path: &str,
    body: &[u8],
) -> Answer {
    let stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connects");
    let io = wasmtime_wasi_http::io::TokioIo::new(stream);
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .expect("handshake");
    tokio::spawn(connection);
    let mut request = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header(hyper::header::HOST, address.to_string());
    if let Some(token) = token {
        request = request.header(hyper::header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let request = request
        .body(Full::new(Bytes::copy_from_slice(body)))
        .expect("request");
    let response = sender.send_request(request).await.expect("an answer");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("a whole body")
        .to_bytes();
    Answer {
        status,
        headers,
        body,
    }
}

/// A key as a query value: every byte but `A-Z a-z 0-9` percent-encoded.
pub fn encode(text: &str) -> String {
    text.bytes()
        .map(|byte| {
            if byte.is_ascii_alphanumeric() {
                (byte as char).to_string()
            } else {
                format!("%{byte:02X}")
            }
        })
        .collect()
}
