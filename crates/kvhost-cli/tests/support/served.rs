//! `kvhost serve` as a child process for the end-to-end tests: started on an ephemeral
//! loopback port with embedded buckets in a temp dir, its log echoed and kept, stopped with
//! SIGTERM (or SIGKILL when a test panics).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use super::http::Client;
use super::{cache_dir, KVHOST};

/// A running `kvhost serve`, stopped (SIGKILL) on drop if a test did not stop it.
pub struct Served {
    child: Child,
    /// Where it serves HTTP.
    pub address: SocketAddr,
    /// Where it serves metrics, with `--metrics`.
    pub metrics: Option<SocketAddr>,
    /// Where it serves the admin API, with `--admin`.
    pub admin: Option<SocketAddr>,
    log: mpsc::Receiver<String>,
}

/// Starts `kvhost serve` on an ephemeral loopback port with embedded buckets in `dir`.
pub fn serve(dir: &Path, component: &Path, extra: &[&str]) -> Served {
    let mut child = Command::new(KVHOST)
        .arg("serve")
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.join("data"))
        .arg("--cache-dir")
        .arg(cache_dir())
        .args(extra)
        .arg(component)
        .current_dir(dir)
        .env("KVHOST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kvhost serve starts");
    let (lines, log) = mpsc::channel();
    let stderr = child.stderr.take().expect("stderr is piped");
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("[kvhost] {line}");
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    // From here on, a panic kills the child (Drop).
    let mut served = Served {
        child,
        address: SocketAddr::from(([127, 0, 0, 1], 0)),
        metrics: None,
        admin: None,
        log,
    };
    loop {
        // The first start compiles the component: allow for a slow machine.
        let line = served
            .log
            .recv_timeout(Duration::from_secs(300))
            .expect("kvhost serve says where it listens");
        if let Some(address) = address_after(&line, "metrics on http://") {
            served.metrics = Some(address);
        }
        if let Some(address) = address_after(&line, "admin console and API on http://") {
            served.admin = Some(address);
        }
        if let Some(address) = address_after(&line, " on http://") {
            if line.contains("serving ") {
                served.address = address;
                return served;
            }
        }
    }
}

fn address_after(line: &str, marker: &str) -> Option<SocketAddr> {
    let rest = &line[line.find(marker)? + marker.len()..];
    rest.split('/').next()?.parse().ok()
}

impl Served {
    /// Sends SIGTERM and waits for the exit; returns the status and the rest of the log.
    pub fn stop(mut self) -> (ExitStatus, Vec<String>) {
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid fits");
        // SAFETY: kill(2) on our own child's pid; it has not been reaped yet.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
        let status = self.child.wait().expect("kvhost serve exits");
        let log = self.log.try_iter().collect();
        (status, log)
    }

    /// Stops as [`Served::stop`] and asserts a clean exit (the log is in the message if not);
    /// returns the log.
    pub fn stop_cleanly(self) -> Vec<String> {
        let (status, log) = self.stop();
        assert!(
            status.success(),
            "kvhost serve exited with {status}: {log:#?}"
        );
        log
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

pub fn kv(dir: &Path, args: &[&str]) -> Output {
    Command::new(KVHOST)
        .arg("kv")
        .arg("--data-dir")
        .arg(dir.join("data"))
        .args(args)
        .output()
        .expect("kvhost kv runs")
}

pub async fn send(address: SocketAddr, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    let mut client = Client::connect(address).await.expect("connects");
    let reply = client.send(method, path, body).await.expect("answers");
    (reply.status, reply.text())
}

/// What a server with one slot and no queue answered (see [`with_one_slot`]).
pub struct OneSlot {
    /// The slow request that held the slot.
    pub slow: (u16, String),
    /// The probe sent while it did.
    pub busy: (u16, String),
    /// The probe again, once the slow request was answered.
    pub later: (u16, String),
}

/// Serves `component` with one slot, no queue and `--request-timeout timeout`; sends
/// `GET slow`, then after `wait` `GET probe`, then the probe again once the slow request is
/// answered. Stops the server (SIGKILL) at the end.
pub fn with_one_slot(
    dir: &Path,
    component: &Path,
    timeout: &str,
    (slow, probe): (&str, &str),
    wait: Duration,
) -> OneSlot {
    let flags = [
        "--max-concurrency",
        "1",
        "--max-queued",
        "0",
        "--request-timeout",
        timeout,
    ];
    let served = serve(dir, component, &flags);
    let address = served.address;
    let (slow, probe) = (slow.to_string(), probe.to_string());
    runtime().block_on(async move {
        let slow = tokio::spawn(async move { send(address, "GET", &slow, b"").await });
        tokio::time::sleep(wait).await;
        let busy = send(address, "GET", &probe, b"").await;
        let slow = slow.await.expect("slow request");
        let later = send(address, "GET", &probe, b"").await;
        OneSlot { slow, busy, later }
    })
}
