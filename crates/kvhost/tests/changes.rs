//! Change feeds (`kvhost::changes`) on the backends that keep change logs (memory, embedded
//! immediate and relaxed, Redis, Redis Cluster): every committed change once, in commit order
//! per key; a mirror built from the feed equals the bucket under concurrent writers (on Redis,
//! writers are separate clients that configure no change log, as other kvhost processes
//! would); retention tells a slow reader it fell behind; positions survive a reopen.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kvhost::backend::embedded::EmbeddedStore;
use kvhost::backend::memory::MemoryBucket;
use kvhost::backend::redis::{RedisBucket, RedisTarget};
use kvhost::changes::ChangeRead;
use kvhost::{Bucket, Durability};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap()
}

/// Reads every change from `after` until `idle` passes with none, applying them to `mirror`.
async fn drain(
    bucket: &dyn Bucket,
    mut after: Option<Vec<u8>>,
    mirror: &mut BTreeMap<String, Vec<u8>>,
    idle: Duration,
) -> (Option<Vec<u8>>, usize) {
    let mut seen = 0;
    loop {
        match bucket.changes(after.clone(), 500, idle).await.unwrap() {
            ChangeRead::Changes { changes, next } => {
                if changes.is_empty() {
                    return (after, seen);
                }
                seen += changes.len();
                for change in changes {
                    match change.value {
                        Some(value) => mirror.insert(change.key, value),
                        None => mirror.remove(&change.key),
                    };
                }
                after = Some(next);
            }
            ChangeRead::FellBehind => panic!("fell behind with a large retention"),
        }
    }
}

async fn contents(bucket: &dyn Bucket) -> BTreeMap<String, Vec<u8>> {
    let mut all = BTreeMap::new();
    let mut position = None;
    loop {
        let page = bucket
            .list_keys(position, kvhost::Limits::default().page_budget())
            .await
            .unwrap();
        for (key, value) in bucket.get_many(page.keys).await.unwrap() {
            all.insert(key, value.unwrap());
        }
        match page.next {
            Some(next) => position = Some(next),
            None => return all,
        }
    }
}

/// Four writers (on `writer`, the same bucket as `bucket` or another client of it) set, delete,
/// increment and swap while a reader follows `bucket`'s feed; the mirror it builds equals the
/// bucket, and every write's changes came in order (a key's last change is its final state).
async fn mirror_follows_concurrent_writers(bucket: Arc<dyn Bucket>, writer: Arc<dyn Bucket>) {
    // Taken first, so the log is on before the writers start.
    let head = bucket.change_head().await.unwrap();
    let reader = {
        let bucket = Arc::clone(&bucket);
        tokio::spawn(async move {
            let mut mirror = BTreeMap::new();
            let (_, seen) = drain(
                &*bucket,
                Some(head),
                &mut mirror,
                Duration::from_millis(1500),
            )
            .await;
            (mirror, seen)
        })
    };
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let bucket = Arc::clone(&writer);
            tokio::spawn(async move {
                for i in 0..500u32 {
                    let key = format!("k{}", (i * 7 + w) % 50);
                    match i % 5 {
                        0 => bucket.delete(key).await.unwrap(),
                        1 => drop(bucket.increment(format!("n{w}"), 1).await.unwrap()),
                        2 => bucket
                            .set_many(vec![
                                (key, w.to_le_bytes().to_vec()),
                                (format!("m{i}"), vec![1]),
                            ])
                            .await
                            .unwrap(),
                        3 => bucket
                            .delete_many(vec![format!("m{}", i - 1), key])
                            .await
                            .unwrap(),
                        _ => bucket
                            .set(key, format!("{w}:{i}").into_bytes())
                            .await
                            .unwrap(),
                    }
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    let (mirror, seen) = reader.await.unwrap();
    assert!(seen > 0);
    assert_eq!(
        mirror,
        contents(&*bucket).await,
        "the mirror equals the bucket"
    );
}

/// A feed from the head sees only later changes; a deleted missing key is no change; a
/// retention of 10 tells a reader 11 changes (of one key, so of one Redis shard) behind that
/// it fell behind.
async fn head_retention_and_positions(bucket: Arc<dyn Bucket>) {
    bucket.set("before".into(), b"x".to_vec()).await.unwrap();
    let head = bucket.change_head().await.unwrap();
    bucket.delete("never-existed".into()).await.unwrap();
    bucket.set("after".into(), b"y".to_vec()).await.unwrap();
    // A relaxed write reaches the log when it commits: wait for it.
    match bucket
        .changes(Some(head.clone()), 10, Duration::from_secs(5))
        .await
        .unwrap()
    {
        ChangeRead::Changes { changes, .. } => {
            let keys: Vec<_> = changes.iter().map(|c| c.key.as_str()).collect();
            assert_eq!(keys, ["after"]);
        }
        ChangeRead::FellBehind => panic!("not behind"),
    }
    // An empty read waits, then returns the same position.
    let now = bucket.change_head().await.unwrap();
    let started = std::time::Instant::now();
    let read = bucket
        .changes(Some(now.clone()), 10, Duration::from_millis(100))
        .await
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(90));
    assert_eq!(
        read,
        ChangeRead::Changes {
            changes: vec![],
            next: now.clone()
        }
    );
    // A write during a wait ends it (even a wait with no end).
    let waiter = {
        let bucket = Arc::clone(&bucket);
        let now = now.clone();
        tokio::spawn(async move { bucket.changes(Some(now), 10, Duration::MAX).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    bucket.set("woken".into(), b"z".to_vec()).await.unwrap();
    match tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .unwrap()
        .unwrap()
        .unwrap()
    {
        ChangeRead::Changes { changes, .. } => assert_eq!(changes[0].key, "woken"),
        ChangeRead::FellBehind => panic!("not behind"),
    }
    for i in 0..11u8 {
        bucket.set("churn".into(), vec![i]).await.unwrap();
    }
    // A relaxed write reaches the log when it commits.
    bucket.flush().await.unwrap();
    assert_eq!(
        bucket
            .changes(Some(head), 10, Duration::ZERO)
            .await
            .unwrap(),
        ChangeRead::FellBehind
    );
    assert_eq!(bucket.watch_position("w").await.unwrap(), None);
    bucket
        .save_watch_position("w".into(), now.clone())
        .await
        .unwrap();
    assert_eq!(bucket.watch_position("w").await.unwrap(), Some(now));
    assert!(bucket
        .changes(Some(b"junk".to_vec()), 1, Duration::ZERO)
        .await
        .is_err());
}

fn embedded(dir: &std::path::Path, durability: Durability, retention: u64) -> Arc<dyn Bucket> {
    let store = EmbeddedStore::open(dir).unwrap();
    Arc::new(
        store
            .bucket_with_change_log("src", durability, Duration::from_millis(20), retention)
            .unwrap(),
    )
}

#[test]
fn memory_feeds() {
    runtime().block_on(async {
        let bucket: Arc<dyn Bucket> = Arc::new(MemoryBucket::with_change_log(1_000_000));
        mirror_follows_concurrent_writers(Arc::clone(&bucket), bucket).await;
        head_retention_and_positions(Arc::new(MemoryBucket::with_change_log(10))).await;
    });
}

#[test]
fn embedded_feeds() {
    for durability in [Durability::Immediate, Durability::Relaxed] {
        let dir = tempfile::tempdir().unwrap();
        runtime().block_on(async {
            let bucket = embedded(dir.path(), durability, 1_000_000);
            mirror_follows_concurrent_writers(Arc::clone(&bucket), bucket).await;
        });
        let dir = tempfile::tempdir().unwrap();
        runtime().block_on(head_retention_and_positions(embedded(
            dir.path(),
            durability,
            10,
        )));
    }
}

/// The log and a saved position survive a reopen; the log never holds more than its
/// retention; a bucket without a log says how to get one.
#[test]
fn embedded_logs_are_durable_and_bounded() {
    let dir = tempfile::tempdir().unwrap();
    runtime().block_on(async {
        let bucket = embedded(dir.path(), Durability::Immediate, 100);
        for i in 0..1000 {
            bucket.set(format!("k{i}"), vec![0; 10]).await.unwrap();
        }
        let head = bucket.change_head().await.unwrap();
        bucket
            .save_watch_position("mirror".into(), head.clone())
            .await
            .unwrap();
        match bucket.changes(None, 10_000, Duration::ZERO).await.unwrap() {
            ChangeRead::Changes { changes, .. } => {
                assert_eq!(changes.len(), 100, "the log keeps its retention");
                assert_eq!(changes[99].key, "k999");
            }
            ChangeRead::FellBehind => panic!("None starts at the oldest kept"),
        }
    });
    runtime().block_on(async {
        let bucket = embedded(dir.path(), Durability::Immediate, 100);
        let saved = bucket
            .watch_position("mirror")
            .await
            .unwrap()
            .expect("kept");
        bucket.set("later".into(), b"v".to_vec()).await.unwrap();
        match bucket
            .changes(Some(saved), 10, Duration::ZERO)
            .await
            .unwrap()
        {
            ChangeRead::Changes { changes, .. } => {
                let keys: Vec<_> = changes.iter().map(|c| c.key.as_str()).collect();
                assert_eq!(keys, ["later"]);
            }
            ChangeRead::FellBehind => panic!("not behind"),
        }
        let store = EmbeddedStore::open(&dir.path().join("other")).unwrap();
        let plain = store
            .bucket("plain", Durability::Immediate, Duration::from_millis(5))
            .unwrap();
        let err = plain.changes(None, 1, Duration::ZERO).await.unwrap_err();
        assert!(err.to_string().contains("watch_retention"), "{err}");
    });
}

/// A client of Redis bucket `name` at `target`, keeping a change log of `retention` if given.
fn redis(target: &RedisTarget, name: &str, retention: Option<u64>) -> Arc<dyn Bucket> {
    let bucket = RedisBucket::new(name, target, Duration::from_secs(5), "test").unwrap();
    Arc::new(match retention {
        Some(retention) => bucket.with_change_log(retention),
        None => bucket,
    })
}

fn standalone() -> RedisTarget {
    RedisTarget::Standalone {
        url: kvhost_testkit::shared_server().url(),
        replicas: Vec::new(),
    }
}

fn cluster() -> RedisTarget {
    RedisTarget::Cluster {
        nodes: kvhost_testkit::shared_cluster().urls(),
    }
}

#[test]
fn redis_feeds() {
    for (target, kind) in [(standalone(), "standalone"), (cluster(), "cluster")] {
        runtime().block_on(async {
            let name = format!("feed-mirror-{kind}");
            let writer = redis(&target, &name, None);
            mirror_follows_concurrent_writers(redis(&target, &name, Some(1_000_000)), writer).await;
            let name = format!("feed-retention-{kind}");
            head_retention_and_positions(redis(&target, &name, Some(10))).await;
        });
    }
}

/// The stream keeps its retention (split over the shards), `None` starts at the oldest change
/// kept, and a saved position is read back by a new client (a restarted watcher).
#[test]
fn redis_logs_are_bounded_and_positions_kept() {
    let server = kvhost_testkit::shared_server();
    runtime().block_on(async {
        let bucket = redis(&standalone(), "feed-bounded", Some(100));
        for i in 0..1000 {
            bucket.set(format!("k{i}"), vec![0; 10]).await.unwrap();
        }
        assert_eq!(server.cli(&["XLEN", "kvhost:{feed-bounded/0}:c"]), "100");
        match bucket.changes(None, 10_000, Duration::ZERO).await.unwrap() {
            ChangeRead::Changes { changes, .. } => {
                assert_eq!(changes.len(), 100, "the log keeps its retention");
                assert_eq!(changes[99].key, "k999");
            }
            ChangeRead::FellBehind => panic!("None starts at the oldest kept"),
        }
        let head = bucket.change_head().await.unwrap();
        bucket
            .save_watch_position("mirror".into(), head.clone())
            .await
            .unwrap();
        let restarted = redis(&standalone(), "feed-bounded", Some(100));
        assert_eq!(
            restarted.watch_position("mirror").await.unwrap(),
            Some(head.clone())
        );
        let plain = redis(&standalone(), "feed-bounded", None);
        plain.delete("k999".into()).await.unwrap();
        match restarted
            .changes(Some(head), 10, Duration::ZERO)
            .await
            .unwrap()
        {
            ChangeRead::Changes { changes, .. } => assert_eq!(
                changes,
                [kvhost::changes::Change {
                    key: "k999".into(),
                    value: None
                }]
            ),
            ChangeRead::FellBehind => panic!("not behind"),
        }
        let err = plain.changes(None, 1, Duration::ZERO).await.unwrap_err();
        assert!(err.to_string().contains("watch_retention"), "{err}");
    });
}

/// Reading a watched Redis bucket read-only (`kv --read-only`) does not turn its log on: that
/// would be a write.
#[test]
fn a_read_only_registry_leaves_the_redis_log_off() {
    let server = kvhost_testkit::shared_server();
    let text = format!(
        "[buckets.feed-read-only]\nbackend = \"redis\"\nurl = \"{}\"\nwatch_retention = 10\n",
        server.url()
    );
    let config = kvhost::Config::from_toml_str(&text, "kvhost.toml").unwrap();
    let first_read = |registry: kvhost::Registry| {
        let bucket = registry
            .open("feed-read-only", &kvhost::Grants::All)
            .unwrap();
        runtime().block_on(async {
            assert_eq!(bucket.get("k").await.unwrap(), None);
            assert!(bucket.list_keys(None).await.unwrap().keys.is_empty());
        });
    };
    // Reading only writes nothing to Redis: no layout record, no change log switch.
    first_read(kvhost::Registry::from_config_read_only(&config).unwrap());
    assert_eq!(server.cli(&["KEYS", "kvhost:{feed-read-only*"]), "");
    // The same config, writable, creates the layout and turns the log on.
    first_read(kvhost::Registry::from_config(&config).unwrap());
    assert_eq!(
        server.cli(&["HGET", "kvhost:{feed-read-only/0}:m", "log"]),
        "10"
    );
}
