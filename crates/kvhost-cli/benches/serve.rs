//! Serve benchmark: HTTP requests per second through `kvhost serve`, side by side with the
//! anchor, `wasmtime serve` (wasmtime-cli 48.0.8), from one run.
//!
//! ```text
//! ./scripts/install-anchors.sh              # once: wasmtime-cli 48.0.8 into target/anchors
//! cargo bench -p kvhost-cli --bench serve   # add `-- --quick` for one short round
//! ```
//!
//! (a) The minimal handler (guests/hello/hello.wat: 200 "hello\n") under both hosts: what
//!     a host adds per request. Target: kvhost >= 0.9x wasmtime serve.
//! (b) The Spin Python app (guests/spin/app.py) doing one `set` and one `get` per request
//!     (`POST /hit/KEY`) on an embedded bucket, durable (`immediate`) and `relaxed`. No other
//!     host runs this app unchanged, so (b) has no anchor column.
//!
//! Each configuration runs with 1 and 32 keep-alive clients (the load generator of
//! tests/support/http.rs, in this process) for `SECONDS` after a warm-up; configurations are
//! interleaved round by round and the table shows the median round. Both hosts create one
//! instance per request from a pooling allocator.

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::http::{load, LoadReport};
use support::{cache_dir, guest, repo_root, KVHOST};

const ANCHOR_VERSION: &str = "wasmtime 48.0.8";
const CLIENTS: [usize; 2] = [1, 32];

/// A server under test.
struct Server {
    name: &'static str,
    /// The requests each client sends: (method, path, body) for (client, sequence number).
    request: fn(usize, u64) -> (&'static str, String, Vec<u8>),
    /// Whether it serves the same component as the anchor, so a ratio means something.
    same_as_anchor: bool,
    start: Box<dyn Fn(&Path) -> Running>,
}

/// A started server process, killed on drop.
struct Running {
    child: Child,
    address: SocketAddr,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn hello(_client: usize, _sequence: u64) -> (&'static str, String, Vec<u8>) {
    ("GET", "/".to_string(), Vec::new())
}

fn hit(client: usize, sequence: u64) -> (&'static str, String, Vec<u8>) {
    let key = format!("/hit/c{client}-{}", sequence % 1000);
    ("POST", key, vec![b'v'; 100])
}

fn main() {
    let quick = std::env::args().any(|arg| arg == "--quick");
    let (rounds, seconds) = if quick { (1, 2) } else { (3, 5) };
    let root = repo_root();
    let wasmtime = find_anchor(&root);
    let hello_wasm = support::hello::hello_component();
    let spin_wasm = guest("spin");
    let work = tempfile::tempdir().expect("temp dir");

    let servers = vec![
        Server {
            name: "wasmtime serve (anchor)",
            request: hello,
            same_as_anchor: true,
            start: {
                let (wasmtime, component) = (wasmtime.clone(), hello_wasm.clone());
                Box::new(move |_dir: &Path| start_wasmtime(&wasmtime, &component))
            },
        },
        Server {
            name: "kvhost serve",
            request: hello,
            same_as_anchor: true,
            start: {
                let component = hello_wasm.clone();
                Box::new(move |dir: &Path| start_kvhost(dir, &component, &[]))
            },
        },
        Server {
            name: "spin app, immediate",
            request: hit,
            same_as_anchor: false,
            start: {
                let component = spin_wasm.clone();
                Box::new(move |dir: &Path| start_kvhost(dir, &component, &[]))
            },
        },
        Server {
            name: "spin app, relaxed",
            request: hit,
            same_as_anchor: false,
            start: {
                let component = spin_wasm.clone();
                Box::new(move |dir: &Path| {
                    std::fs::write(
                        dir.join("kvhost.toml"),
                        "[buckets.default]\ndurability = \"relaxed\"\n",
                    )
                    .expect("config written");
                    start_kvhost(dir, &component, &["--config", "kvhost.toml"])
                })
            },
        },
    ];

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut results: BTreeMap<(&str, usize), Vec<LoadReport>> = BTreeMap::new();
    for round in 1..=rounds {
        for server in &servers {
            let dir = tempfile::tempdir_in(work.path()).expect("temp dir");
            let running = (server.start)(dir.path());
            for clients in CLIENTS {
                let request = server.request;
                let address = running.address;
                // Warm-up: connections, page cache, the pool's warm slots.
                runtime.block_on(load(address, clients, Duration::from_secs(1), request));
                let report = runtime.block_on(load(
                    address,
                    clients,
                    Duration::from_secs(seconds),
                    request,
                ));
                eprintln!(
                    "round {round}: {} with {clients} clients: {:.0} req/s, p50 {:?}, p99 {:?}, {} failed",
                    server.name,
                    report.rps(),
                    report.p50,
                    report.p99,
                    report.failed
                );
                assert_eq!(report.failed, 0, "{}: {:?}", server.name, report.errors);
                results
                    .entry((server.name, clients))
                    .or_default()
                    .push(report);
            }
        }
    }
    print_table(&servers, &results, rounds, seconds);
}

fn median(reports: &[LoadReport]) -> &LoadReport {
    let mut sorted: Vec<&LoadReport> = reports.iter().collect();
    sorted.sort_by(|a, b| a.rps().total_cmp(&b.rps()));
    sorted[sorted.len() / 2]
}

fn print_table(
    servers: &[Server],
    results: &BTreeMap<(&str, usize), Vec<LoadReport>>,
    rounds: usize,
    seconds: u64,
) {
    println!();
    println!(
        "kvhost serve vs {ANCHOR_VERSION} serve: median of {rounds} round(s) of {seconds} s, \
         keep-alive clients on loopback, one instance per request"
    );
    println!(
        "{:<26} {:>7} {:>11} {:>10} {:>10} {:>9}",
        "server", "clients", "req/s", "p50", "p99", "vs anchor"
    );
    for server in servers {
        for clients in CLIENTS {
            let report = median(&results[&(server.name, clients)]);
            let anchor = median(&results[&("wasmtime serve (anchor)", clients)]);
            let ratio = if server.same_as_anchor {
                format!("{:.2}x", report.rps() / anchor.rps())
            } else {
                "-".to_string()
            };
            println!(
                "{:<26} {:>7} {:>11.0} {:>10.2?} {:>10.2?} {:>9}",
                server.name,
                clients,
                report.rps(),
                report.p50,
                report.p99,
                ratio
            );
        }
    }
    let target = |clients| {
        let ours = median(&results[&("kvhost serve", clients)]).rps();
        let anchor = median(&results[&("wasmtime serve (anchor)", clients)]).rps();
        ours / anchor
    };
    println!(
        "target (a): kvhost serve >= 0.9x wasmtime serve: 1 client {:.2}x, 32 clients {:.2}x",
        target(1),
        target(32)
    );
}

fn start_kvhost(dir: &Path, component: &Path, extra: &[&str]) -> Running {
    let address = free_port();
    let child = Command::new(KVHOST)
        .args(["serve", "--listen", &address.to_string(), "--cache-dir"])
        .arg(cache_dir())
        .args(extra)
        .arg(component)
        .current_dir(dir)
        // Per-request log lines would measure the log, not the host (wasmtime serve logs
        // nothing per request either).
        .env("KVHOST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("kvhost serve starts");
    let running = Running { child, address };
    wait_for(address);
    running
}

fn start_wasmtime(wasmtime: &Path, component: &Path) -> Running {
    let address = free_port();
    let child = Command::new(wasmtime)
        .arg("serve")
        .arg("--addr")
        .arg(address.to_string())
        .arg(component)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("wasmtime serve starts");
    let running = Running { child, address };
    wait_for(address);
    running
}

fn free_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("an ephemeral port");
    listener.local_addr().expect("its address")
}

fn wait_for(address: SocketAddr) {
    let start = Instant::now();
    while TcpStream::connect(address).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "nothing listens on {address}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn find_anchor(root: &Path) -> PathBuf {
    let path = root.join("target/anchors/bin/wasmtime");
    let version = Command::new(&path).arg("--version").output();
    match version {
        Ok(output) if String::from_utf8_lossy(&output.stdout).starts_with(ANCHOR_VERSION) => path,
        _ => panic!(
            "the anchor {ANCHOR_VERSION} is not at {}; run ./scripts/install-anchors.sh first",
            path.display()
        ),
    }
}
