//! `cargo bench -p kvhost --bench store`: the embedded store against its anchors, in one run.
//!
//! Anchors, measured in the same process on the same disk:
//! * **SQLite, Spin-style**: one table `spin_key_value(store, key, value)` with primary key
//!   `(store, key)`, one prepared statement per operation, SQLite's defaults (rollback journal,
//!   `synchronous=FULL`), one connection behind a mutex: how Spin's default key-value store
//!   uses SQLite.
//! * **raw redb**: one write transaction (and fsync) per write, one read transaction per read.
//!
//! Prints a Markdown table (ops/s; higher is better) with ratios, then the target checks.
//! `--quick` shrinks every workload for a smoke run.

mod anchors;
mod report;

use std::sync::Arc;
use std::time::{Duration, Instant};

use kvhost::backend::embedded::EmbeddedStore;
use kvhost::backend::memory::MemoryBucket;
use kvhost::{BucketHandle, Durability, Limits};

use crate::anchors::{RedbAnchor, SqliteAnchor};
use crate::report::{Report, Row};

/// Workload sizes.
struct Sizes {
    preload: usize,
    gets: usize,
    sync_sets: usize,
    relaxed_sets: usize,
    list_keys: usize,
    concurrent_window: Duration,
}

const VALUE: [u8; 100] = [b'v'; 100];

fn key(i: usize) -> String {
    format!("key-{i:08}")
}

/// A pseudo-random permutation walk over `n` keys (deterministic, no RNG state).
fn scattered(i: usize, n: usize) -> usize {
    (i.wrapping_mul(2_654_435_761)) % n
}

fn rate(ops: usize, elapsed: Duration) -> f64 {
    ops as f64 / elapsed.as_secs_f64()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn embedded(dir: &std::path::Path, durability: Durability) -> (EmbeddedStore, BucketHandle) {
    let store = EmbeddedStore::open(dir).expect("open store");
    let bucket = store
        .bucket("bench", durability, Duration::from_millis(100))
        .expect("bucket");
    let handle = BucketHandle::new("bench", Arc::new(bucket), Arc::new(Limits::default()));
    (store, handle)
}

/// Writes keys `0..n` with [`VALUE`] in batches of 1,000 (untimed set-up).
fn preload(rt: &tokio::runtime::Runtime, bucket: &BucketHandle, n: usize) {
    rt.block_on(async {
        let entries: Vec<_> = (0..n).map(|i| (key(i), VALUE.to_vec())).collect();
        for chunk in entries.chunks(1000) {
            bucket.set_many(chunk.to_vec()).await.expect("preload");
        }
        // Relaxed buckets acknowledge before committing; the preload is not part of what the
        // next measurement times.
        bucket.flush().await.expect("preload flush");
    });
}

/// Reads every key in `keys`, one `get` at a time; returns gets per second.
fn timed_gets(rt: &tokio::runtime::Runtime, bucket: &BucketHandle, keys: &[String]) -> f64 {
    rt.block_on(async {
        let start = Instant::now();
        for k in keys {
            assert!(bucket.get(k).await.expect("get").is_some());
        }
        rate(keys.len(), start.elapsed())
    })
}

/// Writes keys `0..n`, one `set` at a time; returns sets per second.
fn timed_sets(rt: &tokio::runtime::Runtime, bucket: &BucketHandle, n: usize) -> f64 {
    rt.block_on(async {
        let start = Instant::now();
        for i in 0..n {
            bucket.set(key(i), VALUE.to_vec()).await.expect("set");
        }
        rate(n, start.elapsed())
    })
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let sizes = if quick {
        Sizes {
            preload: 2_000,
            gets: 20_000,
            sync_sets: 100,
            relaxed_sets: 2_000,
            list_keys: 10_000,
            concurrent_window: Duration::from_millis(300),
        }
    } else {
        Sizes {
            preload: 10_000,
            gets: 200_000,
            sync_sets: 1_000,
            relaxed_sets: 50_000,
            list_keys: 100_000,
            concurrent_window: Duration::from_secs(2),
        }
    };
    let base = tempfile::tempdir().expect("temp dir");
    let rt = runtime();
    let mut report = Report::new();

    // --- get -----------------------------------------------------------------------------
    let (store, ours) = embedded(&base.path().join("get"), Durability::Relaxed);
    let sqlite = SqliteAnchor::open(&base.path().join("get.sqlite"));
    let redb = RedbAnchor::open(&base.path().join("get.redb"));
    let memory = BucketHandle::new(
        "m",
        Arc::new(MemoryBucket::new()),
        Arc::new(Limits::default()),
    );
    preload(&rt, &ours, sizes.preload);
    preload(&rt, &memory, sizes.preload);
    sqlite.preload(sizes.preload, &VALUE);
    redb.preload(sizes.preload, &VALUE);
    let keys: Vec<String> = (0..sizes.gets)
        .map(|i| key(scattered(i, sizes.preload)))
        .collect();
    let ours_get = timed_gets(&rt, &ours, &keys);
    let memory_get = timed_gets(&rt, &memory, &keys);
    let sqlite_get = sqlite.gets(&keys);
    report.push(Row::new(
        "get (100 B values, 10k keys)",
        ours_get,
        sqlite_get,
        redb.gets(&keys),
    ));
    report.note(format!("memory backend get: {memory_get:.0} ops/s"));
    drop((ours, store));

    // --- set ------------------------------------------------------------------------------
    let (store, ours) = embedded(&base.path().join("set-immediate"), Durability::Immediate);
    let sqlite = SqliteAnchor::open(&base.path().join("set.sqlite"));
    let redb = RedbAnchor::open(&base.path().join("set.redb"));
    let ours_set = timed_sets(&rt, &ours, sizes.sync_sets);
    let (sqlite_set, redb_set) = (
        sqlite.sets(sizes.sync_sets, &VALUE),
        redb.sets(sizes.sync_sets, &VALUE),
    );
    report.push(Row::new(
        "set, immediate (fsync per write)",
        ours_set,
        sqlite_set,
        redb_set,
    ));
    drop((ours, store));

    let (store, ours) = embedded(&base.path().join("set-relaxed"), Durability::Relaxed);
    let ours_relaxed = timed_sets(&rt, &ours, sizes.relaxed_sets);
    report.push(Row::new(
        "set, relaxed (flush <= 100 ms)",
        ours_relaxed,
        sqlite_set,
        redb_set,
    ));
    drop((ours, store));

    // --- list -----------------------------------------------------------------------------
    let (store, ours) = embedded(&base.path().join("list"), Durability::Relaxed);
    let sqlite = SqliteAnchor::open(&base.path().join("list.sqlite"));
    let redb = RedbAnchor::open(&base.path().join("list.redb"));
    preload(&rt, &ours, sizes.list_keys);
    sqlite.preload(sizes.list_keys, &VALUE);
    redb.preload(sizes.list_keys, &VALUE);
    let ours_list = rt.block_on(async {
        let start = Instant::now();
        let (mut cursor, mut seen) = (None::<String>, 0);
        loop {
            let page = ours.list_keys(cursor.as_deref()).await.expect("list");
            seen += page.keys.len();
            match page.cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        assert_eq!(seen, sizes.list_keys);
        rate(seen, start.elapsed())
    });
    let label = format!(
        "list {}k keys, keys/s (pages of 1,000)",
        sizes.list_keys / 1000
    );
    report.push(Row::new(
        &label,
        ours_list,
        sqlite.list(sizes.list_keys),
        redb.list(sizes.list_keys),
    ));
    drop((ours, store));

    // --- concurrent immediate writers ------------------------------------------------------
    let (mut single, mut redb_single) = (0.0, 0.0);
    for writers in [1usize, 8, 64] {
        let dir = base.path().join(format!("concurrent-{writers}"));
        let (store, ours) = embedded(&dir, Durability::Immediate);
        let window = sizes.concurrent_window;
        let ours_rate = rt.block_on(async {
            let start = Instant::now();
            let tasks: Vec<_> = (0..writers)
                .map(|w| {
                    let bucket = ours.clone();
                    tokio::spawn(async move {
                        let mut done = 0usize;
                        while start.elapsed() < window {
                            bucket
                                .set(format!("w{w}-{done}"), VALUE.to_vec())
                                .await
                                .expect("set");
                            done += 1;
                        }
                        done
                    })
                })
                .collect();
            let mut total = 0;
            for task in tasks {
                total += task.await.expect("writer");
            }
            rate(total, start.elapsed())
        });
        let sqlite = SqliteAnchor::open(&base.path().join(format!("concurrent-{writers}.sqlite")));
        let redb = RedbAnchor::open(&base.path().join(format!("concurrent-{writers}.redb")));
        let redb_rate = redb.concurrent_sets(writers, window, &VALUE);
        if writers == 1 {
            single = ours_rate;
            redb_single = redb_rate;
        }
        report.push(Row::new(
            &format!("set, immediate, {writers} concurrent writers"),
            ours_rate,
            sqlite.concurrent_sets(writers, window, &VALUE),
            redb_rate,
        ));
        if writers == 64 {
            let ceiling = redb.batched_sets(writers, window, &VALUE);
            report.note(format!(
                "raw redb, {writers} writes per fsynced transaction: {ceiling:.0} ops/s, \
                 {:.1}x its one-write rate: the ceiling for group commit of {writers} writers",
                ceiling / redb_single
            ));
            report.target(
                "64 concurrent immediate writers vs one writer (group commit)",
                ours_rate / single,
                10.0,
            );
        }
        drop((ours, store));
    }
    report.target(
        "embedded get vs SQLite (Spin-style) get",
        ours_get / sqlite_get,
        2.0,
    );
    report.print(quick);
}
