//! `cargo bench -p kvhost --bench redis`: kvhost's Redis backend against `redis-benchmark`,
//! on the same `redis-server`, in one run.
//!
//! Both sides do the same work: SET and GET of 100-byte values over 100,000 keys, with 1 and
//! with 50 requests in flight. The anchor is `redis-benchmark` (C, one connection per client,
//! no pipelining: `-c N -P 1`); kvhost runs N tasks on one `RedisBucket` through
//! `BucketHandle` (limits checked, as a guest's call would be), which shares one multiplexed
//! connection. kvhost's SET is a Lua script that also updates the bucket's index and versions
//! (see `backend::redis::scripts`), so it asks more of Redis than a bare SET.
//!
//! Rounds alternate anchor and kvhost; the table shows each side's median and the ratio.
//! Target (issue 6): kvhost >= 0.8x redis-benchmark at 50 clients. `--quick`: short rounds.
//!
//! `--load set|get CLIENTS OPS URL` instead runs exactly OPS operations on an existing server
//! and exits, the counterpart of `redis-benchmark -c CLIENTS -n OPS`, for timing both whole
//! commands from outside (e.g. with `farm-bench --vs`).

use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kvhost::backend::redis::{RedisBucket, RedisTarget, DEFAULT_TIMEOUT};
use kvhost::{BucketHandle, Limits};
use kvhost_testkit::RedisServer;

const KEYS: u64 = 100_000;
const VALUE_BYTES: usize = 100;

#[derive(Clone, Copy, PartialEq)]
enum Op {
    Set,
    Get,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Set => "SET",
            Op::Get => "GET",
        }
    }
}

/// `redis-benchmark` ops/s for `op` with `clients` connections and `requests` requests.
fn anchor(port: u16, op: Op, clients: usize, requests: u64) -> f64 {
    let output = Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-c", &clients.to_string(), "-n", &requests.to_string()])
        .args(["-r", &KEYS.to_string(), "-d", &VALUE_BYTES.to_string()])
        .args(["-P", "1", "-t", &op.name().to_lowercase(), "--csv"])
        .output()
        .expect("redis-benchmark runs (./scripts/setup-redis.sh installs it)");
    assert!(output.status.success(), "redis-benchmark failed");
    // CSV: "test","rps",... then "SET","123456.78",...
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split(',').map(|field| field.trim_matches('"'));
            (fields.next()? == op.name()).then(|| fields.next()?.parse().ok())?
        })
        .next()
        .unwrap_or_else(|| {
            panic!(
                "no {} figure in redis-benchmark's output:\n{text}",
                op.name()
            )
        })
}

/// The key and operation `client` does `n`th (a deterministic scatter over `KEYS`).
async fn one_op(bucket: &BucketHandle, op: Op, client: u64, n: u64) {
    let i = client
        .wrapping_mul(7919)
        .wrapping_add(n)
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1);
    let key = format!("key:{:012}", (i >> 33) % KEYS);
    match op {
        Op::Set => bucket.set(key, vec![b'x'; VALUE_BYTES]).await.unwrap(),
        Op::Get => {
            bucket.get(&key).await.unwrap();
        }
    }
}

/// Exactly `ops` operations split over `clients` tasks (the `--load` mode).
async fn load(bucket: &BucketHandle, op: Op, clients: u64, ops: u64) {
    let tasks: Vec<_> = (0..clients)
        .map(|client| {
            let bucket = bucket.clone();
            let share = ops / clients + u64::from(client < ops % clients);
            tokio::spawn(async move {
                for n in 0..share {
                    one_op(&bucket, op, client, n).await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("a load task");
    }
}

/// kvhost ops/s for `op` with `clients` concurrent tasks for `window`.
async fn kvhost(bucket: &BucketHandle, op: Op, clients: usize, window: Duration) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients as u64)
        .map(|client| {
            let bucket = bucket.clone();
            let (done, stop) = (Arc::clone(&done), Arc::clone(&stop));
            tokio::spawn(async move {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    one_op(&bucket, op, client, n).await;
                    n += 1;
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    tokio::time::sleep(window).await;
    stop.store(true, Ordering::Relaxed);
    let ops = done.load(Ordering::Relaxed);
    let elapsed = started.elapsed();
    for task in tasks {
        task.await.expect("a benchmark task");
    }
    ops as f64 / elapsed.as_secs_f64()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn bucket_at(url: String) -> BucketHandle {
    let target = RedisTarget::Standalone {
        url,
        replicas: Vec::new(),
    };
    let bucket = RedisBucket::new("bench", &target, DEFAULT_TIMEOUT, "bench").expect("a bucket");
    BucketHandle::new("bench", Arc::new(bucket), Arc::new(Limits::default()))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|arg| arg == "--load") {
        let usage = "usage: --load set|get CLIENTS OPS redis://HOST:PORT";
        let [op, clients, ops, url] = &args[at + 1..] else {
            panic!("{usage}");
        };
        let op = match op.as_str() {
            "set" => Op::Set,
            "get" => Op::Get,
            _ => panic!("{usage}"),
        };
        let (clients, ops) = (clients.parse().expect(usage), ops.parse().expect(usage));
        let bucket = bucket_at(url.clone());
        runtime().block_on(load(&bucket, op, clients, ops));
        return;
    }
    let quick = args.iter().any(|arg| arg == "--quick");
    let (rounds, window) = if quick {
        (1, Duration::from_millis(300))
    } else {
        (3, Duration::from_secs(2))
    };
    let server = RedisServer::start();
    let runtime = runtime();
    let bucket = bucket_at(server.url());

    println!("kvhost Redis backend vs redis-benchmark (redis-server {}), {VALUE_BYTES}-byte values, {KEYS} keys, median of {rounds} rounds", server.cli(&["INFO", "server"]).lines().find_map(|l| l.strip_prefix("redis_version:")).unwrap_or("?"));
    println!();
    println!("| op  | clients | redis-benchmark ops/s | kvhost ops/s | kvhost / anchor |");
    println!("|-----|--------:|----------------------:|-------------:|----------------:|");
    let mut misses = Vec::new();
    for clients in [1, 50] {
        for op in [Op::Set, Op::Get] {
            let (mut ours, mut theirs) = (Vec::new(), Vec::new());
            for _ in 0..rounds {
                let measured = runtime.block_on(kvhost(&bucket, op, clients, window));
                ours.push(measured);
                // Size the anchor's run to about the same window.
                #[allow(
                    clippy::cast_possible_truncation,
                    reason = "a request count, rounded down"
                )]
                let requests = (measured * window.as_secs_f64()).max(1000.0) as u64;
                theirs.push(anchor(server.port(), op, clients, requests));
            }
            let (ours, theirs) = (median(ours), median(theirs));
            let ratio = ours / theirs;
            println!(
                "| {} | {clients:>7} | {theirs:>21.0} | {ours:>12.0} | {ratio:>14.2}x |",
                op.name()
            );
            if clients == 50 && ratio < 0.8 {
                misses.push(format!("{} at 50 clients: {ratio:.2}x", op.name()));
            }
        }
    }
    println!();
    if misses.is_empty() {
        println!("target (>= 0.8x redis-benchmark at 50 clients): met");
    } else {
        println!(
            "target (>= 0.8x redis-benchmark at 50 clients): NOT met ({})",
            misses.join("; ")
        );
    }
}
