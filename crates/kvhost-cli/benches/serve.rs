//! Serve benchmark: HTTP requests per second through `kvhost serve`, side by side with its
//! anchors from one run: `wasmtime serve` (wasmtime-cli 48.0.8) and, when `SPIN_BIN` names a
//! `spin` binary, `spin up` (nothing in the project builds or downloads Spin).
//!
//! ```text
//! ./scripts/install-anchors.sh              # once: wasmtime-cli 48.0.8 into target/anchors
//! cargo bench -p kvhost-cli --bench serve   # add `-- --quick` for one short round
//! SPIN_BIN=/path/to/spin cargo bench -p kvhost-cli --bench serve   # adds `spin up`
//! ```
//!
//! (a) The minimal WASIp2 handler (guests/hello/hello.wat: 200 "hello\n") under both hosts,
//!     one instance per request: what a host adds per request. Target: >= 0.9x.
//! (b) The spin-sdk 3.4.1 app (guests/spin/app.py) doing one `set` and one `get` per request
//!     (`POST /hit/KEY`) on an embedded bucket, durable (`immediate`) and `relaxed`.
//! (c) The spin-sdk 5.0.0 app (guests/spinp3/app.py) doing the same through
//!     `spin_sdk.key_value` (`spin:key-value@3.0.0`), instances reused (the default) and fresh
//!     per request (`--instance-max-requests 1`), against (b)'s durable figure. Target: the
//!     reused app >= 5x the 3.4.1 app at 32 clients.
//! (d) The minimal WASIp3 handler (guests/hellop3/app.py) under kvhost serve and under
//!     `wasmtime serve -Scli -Wcomponent-model-async -Sp3`, both reusing instances (their
//!     defaults; `-Scli` because the Python runtime imports wasi:cli).
//!     Target: >= 1.0x. A third row adds `-Wtimeout=30s` to wasmtime serve: the same epoch
//!     interruption kvhost always has for `--request-timeout` (wasmtime serve without a
//!     timeout has none, and cannot stop a guest that loops), so like is compared with like.
//! (e) With SPIN_BIN: the spin-sdk 3.4.1 and 4.0.0 apps under `spin up` (a default
//!     key-value store) next to kvhost serving them. Target: >= 1.5x `spin up` at 32 clients.
//!
//! `KVHOST_BENCH_ONLY=TEXT` runs only the servers whose name contains TEXT (e.g. `p3 hello`).
//!
//! Each configuration runs with 1 and 32 keep-alive clients (the load generator of
//! tests/support/http.rs, in this process) for `SECONDS` after a warm-up; configurations are
//! interleaved round by round and the table shows the median round.

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
    /// The server its ratio is taken against (the same component on another host, or the
    /// same work on another app), if any.
    versus: Option<&'static str>,
    start: Box<dyn Fn(&Path) -> Running>,
}

const WASMTIME_HELLO: &str = "wasmtime serve, hello";
const KVHOST_HELLO: &str = "kvhost serve, hello";
const SPIN3_IMMEDIATE: &str = "spin-sdk 3.4.1 app";
const SPIN5_REUSED: &str = "spin-sdk 5.0.0 app, reused";
const WASMTIME_HELLO_P3: &str = "wasmtime serve, p3 hello";
const KVHOST_HELLO_P3: &str = "kvhost serve, p3 hello";
const WASMTIME_TIMEOUT_HELLO_P3: &str = "wasmtime -Wtimeout, p3 hello";
const SPIN_UP_3: &str = "spin up, spin-sdk 3.4.1 app";
const SPIN_UP_4: &str = "spin up, spin-sdk 4.0.0 app";
const SPIN4_REUSED: &str = "spin-sdk 4.0.0 app, reused";

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
    let work = tempfile::tempdir().expect("temp dir");

    let kvhost = |component: &PathBuf, extra: &'static [&'static str]| {
        let component = component.clone();
        Box::new(move |dir: &Path| start_kvhost(dir, &component, extra))
            as Box<dyn Fn(&Path) -> Running>
    };
    let wasmtime_serve = |component: &PathBuf, extra: &'static [&'static str]| {
        let (wasmtime, component) = (wasmtime.clone(), component.clone());
        Box::new(move |_dir: &Path| start_wasmtime(&wasmtime, &component, extra))
            as Box<dyn Fn(&Path) -> Running>
    };
    let (spin3, spin5, spin4) = (guest("spin"), guest("spin5"), guest("spin4"));
    let hello_p3 = guest("hellop3");
    let server = |name, request, versus, start| Server {
        name,
        request,
        versus,
        start,
    };
    let mut servers = vec![
        server(
            WASMTIME_HELLO,
            hello,
            None,
            wasmtime_serve(&hello_wasm, &[]),
        ),
        server(
            KVHOST_HELLO,
            hello,
            Some(WASMTIME_HELLO),
            kvhost(&hello_wasm, &[]),
        ),
        server(SPIN3_IMMEDIATE, hit, None, kvhost(&spin3, &[])),
        server(
            "spin-sdk 3.4.1 app, relaxed",
            hit,
            Some(SPIN3_IMMEDIATE),
            Box::new(move |dir: &Path| {
                std::fs::write(
                    dir.join("kvhost.toml"),
                    "[buckets.default]\ndurability = \"relaxed\"\n",
                )
                .expect("config written");
                start_kvhost(dir, &spin3, &["--config", "kvhost.toml"])
            }),
        ),
        server(
            SPIN5_REUSED,
            hit,
            Some(SPIN3_IMMEDIATE),
            kvhost(&spin5, &[]),
        ),
        server(
            "spin-sdk 5.0.0 app, fresh",
            hit,
            Some(SPIN3_IMMEDIATE),
            kvhost(&spin5, &["--instance-max-requests", "1"]),
        ),
        server(
            WASMTIME_HELLO_P3,
            hello,
            None,
            wasmtime_serve(&hello_p3, &["-Scli", "-Wcomponent-model-async", "-Sp3"]),
        ),
        server(
            KVHOST_HELLO_P3,
            hello,
            Some(WASMTIME_HELLO_P3),
            kvhost(&hello_p3, &[]),
        ),
        server(
            WASMTIME_TIMEOUT_HELLO_P3,
            hello,
            None,
            wasmtime_serve(
                &hello_p3,
                &["-Scli", "-Wcomponent-model-async", "-Sp3", "-Wtimeout=30s"],
            ),
        ),
    ];
    if let Some(spin) = std::env::var_os("SPIN_BIN").map(PathBuf::from) {
        let spin_up = |component: &PathBuf| {
            let (spin, component) = (spin.clone(), component.clone());
            Box::new(move |dir: &Path| start_spin(&spin, dir, &component))
                as Box<dyn Fn(&Path) -> Running>
        };
        let spin3 = guest("spin");
        servers.push(server(SPIN_UP_3, hit, None, spin_up(&spin3)));
        servers.push(server(SPIN_UP_4, hit, None, spin_up(&spin4)));
        servers.push(server(
            SPIN4_REUSED,
            hit,
            Some(SPIN_UP_4),
            kvhost(&spin4, &[]),
        ));
        // kvhost serving the 3.4.1 app, against spin up serving it.
        servers.push(server(
            "spin-sdk 3.4.1 app vs spin up",
            hit,
            Some(SPIN_UP_3),
            kvhost(&spin3, &[]),
        ));
    }

    if let Ok(only) = std::env::var("KVHOST_BENCH_ONLY") {
        servers.retain(|server| server.name.contains(&only));
    }
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
        "kvhost serve vs {ANCHOR_VERSION} serve (and spin up with SPIN_BIN): median of \
         {rounds} round(s) of {seconds} s, keep-alive clients on loopback"
    );
    println!(
        "{:<30} {:>7} {:>9} {:>10} {:>10} {:>9}  versus",
        "server", "clients", "req/s", "p50", "p99", "ratio"
    );
    let rps = |name: &str, clients| results.get(&(name, clients)).map(|r| median(r).rps());
    let ratio = |name: &str, versus: &str, clients| -> f64 {
        match (rps(name, clients), rps(versus, clients)) {
            (Some(ours), Some(theirs)) => ours / theirs,
            _ => f64::NAN,
        }
    };
    for server in servers {
        for clients in CLIENTS {
            let report = median(&results[&(server.name, clients)]);
            let (ratio, versus) = match server.versus {
                Some(versus) => (
                    format!("{:.2}x", ratio(server.name, versus, clients)),
                    versus,
                ),
                None => ("-".to_string(), ""),
            };
            println!(
                "{:<30} {:>7} {:>9.0} {:>10.2?} {:>10.2?} {:>9}  {versus}",
                server.name,
                clients,
                report.rps(),
                report.p50,
                report.p99,
                ratio
            );
        }
    }
    println!(
        "target (a): kvhost serve >= 0.9x wasmtime serve, WASIp2 hello: 1 client {:.2}x, 32 clients {:.2}x",
        ratio(KVHOST_HELLO, WASMTIME_HELLO, 1),
        ratio(KVHOST_HELLO, WASMTIME_HELLO, 32)
    );
    println!(
        "target (c): reused spin-sdk 5.0.0 app >= 5x the spin-sdk 3.4.1 app at 32 clients: {:.2}x",
        ratio(SPIN5_REUSED, SPIN3_IMMEDIATE, 32)
    );
    println!(
        "target (d): kvhost serve >= 1.0x wasmtime serve, WASIp3 hello: 1 client {:.2}x, 32 clients {:.2}x",
        ratio(KVHOST_HELLO_P3, WASMTIME_HELLO_P3, 1),
        ratio(KVHOST_HELLO_P3, WASMTIME_HELLO_P3, 32)
    );
    println!(
        "        like for like (wasmtime serve -Wtimeout=30s: epoch interruption as in kvhost): \
         1 client {:.2}x, 32 clients {:.2}x",
        ratio(KVHOST_HELLO_P3, WASMTIME_TIMEOUT_HELLO_P3, 1),
        ratio(KVHOST_HELLO_P3, WASMTIME_TIMEOUT_HELLO_P3, 32)
    );
    if results.contains_key(&(SPIN_UP_4, 32)) {
        println!(
            "target (e): kvhost >= 1.5x spin up at 32 clients: spin-sdk 4.0.0 app {:.2}x, 3.4.1 app {:.2}x",
            ratio(SPIN4_REUSED, SPIN_UP_4, 32),
            ratio("spin-sdk 3.4.1 app vs spin up", SPIN_UP_3, 32)
        );
    } else {
        println!("target (e): not measured (set SPIN_BIN to a spin binary to add spin up)");
    }
}

fn start_kvhost(dir: &Path, component: &Path, extra: &[&str]) -> Running {
    let address = free_port();
    let mut command = Command::new(KVHOST);
    command
        .args(["serve", "--listen", &address.to_string(), "--cache-dir"])
        .arg(cache_dir())
        .args(extra)
        .arg(component)
        .current_dir(dir)
        // Per-request log lines would measure the log, not the host (wasmtime serve logs
        // nothing per request either).
        .env("KVHOST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    started(&mut command, address)
}

fn start_wasmtime(wasmtime: &Path, component: &Path, extra: &[&str]) -> Running {
    let address = free_port();
    let mut command = Command::new(wasmtime);
    command
        .arg("serve")
        .args(extra)
        .arg("--addr")
        .arg(address.to_string())
        .arg(component)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    started(&mut command, address)
}

/// `spin up` serving `component` as an HTTP app with the default key-value store (Spin's own
/// SQLite file in `dir`), from a manifest written into `dir`.
fn start_spin(spin: &Path, dir: &Path, component: &Path) -> Running {
    let address = free_port();
    let manifest = format!(
        "spin_manifest_version = 2\n\
         [application]\nname = \"kvhost-bench\"\n\
         [[trigger.http]]\nroute = \"/...\"\ncomponent = \"app\"\n\
         [component.app]\nsource = {source:?}\nkey_value_stores = [\"default\"]\n",
        source = component.display().to_string()
    );
    std::fs::write(dir.join("spin.toml"), manifest).expect("spin.toml written");
    let mut command = Command::new(spin);
    command
        .args(["up", "--listen", &address.to_string(), "--from"])
        .arg(dir.join("spin.toml"))
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    started(&mut command, address)
}

/// Spawns `command` and waits until it listens on `address`.
fn started(command: &mut Command, address: SocketAddr) -> Running {
    let child = command
        .spawn()
        .unwrap_or_else(|err| panic!("cannot start {:?}: {err}", command.get_program()));
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
