//! Watcher benchmark: what a watcher costs the writers, how fast it delivers, and how long a
//! write takes to reach its handler, side by side with the same writes and no watcher, from
//! one run.
//!
//! ```text
//! cargo bench -p kvhost-cli --bench watch            # add `-- --quick` for one short round
//! cargo bench -p kvhost-cli --bench watch -- redis   # only these rows (immediate, relaxed, redis)
//! ```
//!
//! The spin-sdk 5.0.0 app (guests/spinp3) takes `PUT /kv/KEY` from 4 keep-alive clients and
//! writes bucket `default` (embedded `immediate` or `relaxed`, or a loopback `redis-server`
//! started by the bench, emptied before every run); `kvhost serve` runs it
//! without a watcher (the anchor) and with `--watcher watcher.wasm:default` (guests/watcher,
//! which copies every change into bucket `mirror`, `relaxed`: how durable a handler's own
//! writes are is the handler's business, and one handler writing durably is bounded by one
//! fsync per change). For each kind of `default`:
//! - writes/s with and without the watcher, medians, and their ratio (target: the watcher
//!   costs writers <= 10%): the median of each round's ratio to the anchor run just before
//!   it, with the lowest and highest, as the disk's fsync time drifts over a run;
//! - events/s: changes delivered from the start of the writes until a sentinel written last
//!   reaches `mirror`;
//! - write-to-handler latency, p50 and p99: from a write's answer to its key being readable
//!   in `mirror` (polled through the admin API, so an upper bound by a poll's cost).

#[path = "../tests/support/mod.rs"]
mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use support::admin::{call, encode, token_in};
use support::http::{load, Client};
use support::served::{runtime, serve, Served};

const CLIENTS: usize = 4;
const LATENCY_SAMPLES: usize = 200;

fn write(client: usize, sequence: u64) -> (&'static str, String, Vec<u8>) {
    let key = format!("/kv/c{client}-{}", sequence % 1000);
    ("PUT", key, format!("v{sequence}").into_bytes())
}

/// Serves the app with `[buckets.default]` holding `default` (and a watcher if `watcher`).
fn start(dir: &Path, default: &str, watcher: bool) -> (Served, SocketAddr, String) {
    let config = dir.join("kvhost.toml");
    std::fs::write(
        &config,
        format!("[buckets.default]\n{default}\n[buckets.mirror]\ndurability = \"relaxed\"\n"),
    )
    .expect("config written");
    let watcher_spec = format!("{}:default", support::guest("watcher").display());
    let mut flags = vec![
        "--config",
        config.to_str().expect("utf-8 path"),
        "--admin",
        "127.0.0.1:0",
    ];
    if watcher {
        flags.extend(["--watcher", watcher_spec.as_str()]);
    }
    let served = serve(dir, &support::guest("spin5"), &flags);
    let admin = served.admin.expect("the admin address is logged");
    let token = token_in(&dir.join("data"));
    (served, admin, token)
}

/// Waits until `key` reads `value` in bucket `mirror`; returns when it did.
async fn mirrored(admin: SocketAddr, token: &str, key: &str, value: &[u8]) -> Instant {
    let path = format!("/api/v1/buckets/mirror/value?key={}", encode(key));
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let answer = call(admin, Some(token), "GET", &path, b"").await;
        if answer.status == 200 && &answer.body[..] == value {
            return Instant::now();
        }
        assert!(Instant::now() < deadline, "{key} never reached the mirror");
    }
}

/// The `percent`th percentile of `sorted` (nearest rank).
fn percentile(sorted: &[Duration], percent: usize) -> Duration {
    let index = (sorted.len() * percent).div_ceil(100).saturating_sub(1);
    sorted[index.min(sorted.len() - 1)]
}

fn main() {
    let quick = std::env::args().any(|arg| arg == "--quick");
    let (rounds, seconds) = if quick { (1, 2) } else { (7, 5) };
    let duration = Duration::from_secs(seconds);
    let rt = runtime();
    println!("watcher benchmark: {CLIENTS} clients writing through the spin-sdk 5.0.0 app, {rounds} round(s) of {seconds} s, medians");
    println!("| bucket | writes/s, no watcher (anchor) | writes/s, with watcher | ratio, per round (range) | events/s delivered | write -> handler p50 | p99 |");
    println!("|---|---|---|---|---|---|---|");
    let redis = kvhost_testkit::RedisServer::start();
    let kinds = [
        ("immediate", "durability = \"immediate\"".to_string()),
        ("relaxed", "durability = \"relaxed\"".to_string()),
        (
            "redis",
            format!("backend = \"redis\"\nurl = \"{}\"", redis.url()),
        ),
    ];
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with("--"))
        .collect();
    for (kind, default) in &kinds {
        if !only.is_empty() && !only.iter().any(|wanted| wanted == kind) {
            continue;
        }
        let (mut plain, mut watched, mut ratios, mut events, mut latencies) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for _ in 0..rounds {
            // A watched Redis bucket keeps logging (see docs/consistency.md): start clean.
            redis.cli(&["FLUSHALL"]);
            let dir = tempfile::tempdir().expect("temp dir");
            let (served, _, _) = start(dir.path(), default, false);
            let report = rt.block_on(load(served.address, CLIENTS, duration, write));
            assert_eq!(report.failed, 0, "{:?}", report.errors);
            let anchor = report.rps();
            plain.push(anchor);
            drop(served);

            redis.cli(&["FLUSHALL"]);
            let dir = tempfile::tempdir().expect("temp dir");
            let (served, admin, token) = start(dir.path(), default, true);
            let address = served.address;
            let (rps, delivered, samples) = rt.block_on(async {
                let started = Instant::now();
                let report = load(address, CLIENTS, duration, write).await;
                assert_eq!(report.failed, 0, "{:?}", report.errors);
                let mut client = Client::connect(address).await.expect("connects");
                let reply = client
                    .send("PUT", "/kv/sentinel", b"last")
                    .await
                    .expect("answers");
                assert_eq!(reply.status, 204);
                let caught_up = mirrored(admin, &token, "sentinel", b"last").await;
                let delivered =
                    (report.ok + 1) as f64 / caught_up.duration_since(started).as_secs_f64();
                let mut samples = Vec::with_capacity(LATENCY_SAMPLES);
                for i in 0..LATENCY_SAMPLES {
                    let (key, value) = (format!("latency-{i}"), format!("{i}"));
                    let reply = client
                        .send("PUT", &format!("/kv/{key}"), value.as_bytes())
                        .await
                        .expect("answers");
                    assert_eq!(reply.status, 204);
                    let written = Instant::now();
                    samples.push(
                        mirrored(admin, &token, &key, value.as_bytes())
                            .await
                            .duration_since(written),
                    );
                }
                (report.rps(), delivered, samples)
            });
            // Paired with this round's anchor: the disk's fsync time drifts over a run.
            ratios.push(rps / anchor);
            watched.push(rps);
            events.push(delivered);
            latencies.extend(samples);
            drop(served);
        }
        let median = |values: &mut Vec<f64>| {
            values.sort_by(f64::total_cmp);
            values[values.len() / 2]
        };
        let (plain, watched, events) = (
            median(&mut plain),
            median(&mut watched),
            median(&mut events),
        );
        // `median` sorted the ratios: the range is their first and last.
        let ratio = median(&mut ratios);
        let (lowest, highest) = (ratios[0], ratios[ratios.len() - 1]);
        latencies.sort();
        println!(
            "| {kind} | {plain:.0} | {watched:.0} | {ratio:.2}x ({lowest:.2}-{highest:.2}) | {events:.0} | {:.2} ms | {:.2} ms |",
            percentile(&latencies, 50).as_secs_f64() * 1e3,
            percentile(&latencies, 99).as_secs_f64() * 1e3,
        );
    }
}
