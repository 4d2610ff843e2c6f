//! Relaxed buckets acknowledge plain writes from an in-memory overlay before they commit.
//! These tests race many writers on few keys and check that what readers saw before shutdown
//! is exactly what is on disk after reopening: the overlay and redb never disagree about which
//! write was last.

use std::sync::Arc;
use std::time::Duration;

use kvhost::backend::embedded::EmbeddedStore;
use kvhost::{Bucket, Durability};

const WRITERS: usize = 8;
const ROUNDS: usize = 400;
const KEYS: usize = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_relaxed_writers_agree_with_disk_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut seen = Vec::new();
    {
        let store = EmbeddedStore::open(dir.path()).unwrap();
        let bucket = Arc::new(
            store
                .bucket("b", Durability::Relaxed, Duration::from_millis(50))
                .unwrap(),
        );
        let tasks: Vec<_> = (0..WRITERS)
            .map(|writer| {
                let bucket = Arc::clone(&bucket);
                tokio::spawn(async move {
                    for round in 0..ROUNDS {
                        let key = format!("k{}", (writer + round) % KEYS);
                        if round % 7 == 3 {
                            bucket.delete(key.clone()).await.unwrap();
                        } else if round % 5 == 0 {
                            let entries = (0..KEYS)
                                .map(|k| {
                                    (
                                        format!("k{k}"),
                                        format!("{writer}/{round}/many").into_bytes(),
                                    )
                                })
                                .collect();
                            bucket.set_many(entries).await.unwrap();
                        } else {
                            let value = format!("{writer}/{round}").into_bytes();
                            bucket.set(key.clone(), value.clone()).await.unwrap();
                        }
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        for k in 0..KEYS {
            seen.push(bucket.get(&format!("k{k}")).await.unwrap());
        }
        // Read-your-writes for one writer, right after acknowledgement.
        for n in 0..200 {
            let value = format!("own/{n}").into_bytes();
            bucket.set("own".into(), value.clone()).await.unwrap();
            assert_eq!(bucket.get("own").await.unwrap(), Some(value));
            assert!(bucket.exists("own").await.unwrap());
        }
        bucket.delete("own".into()).await.unwrap();
        assert_eq!(bucket.get("own").await.unwrap(), None);
        assert!(!bucket.exists("own").await.unwrap());
    }
    // Dropping the store committed everything; reopen and compare.
    let store = EmbeddedStore::open(dir.path()).unwrap();
    let bucket = store
        .bucket("b", Durability::Relaxed, Duration::from_millis(50))
        .unwrap();
    for (k, before) in seen.iter().enumerate() {
        let after = bucket.get(&format!("k{k}")).await.unwrap();
        assert_eq!(&after, before, "key k{k}");
    }
    assert_eq!(bucket.get("own").await.unwrap(), None);
}

#[tokio::test]
async fn listing_and_cas_see_writes_acknowledged_just_before() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    let bucket = store
        .bucket("b", Durability::Relaxed, Duration::from_secs(10))
        .unwrap();
    for n in 0..50 {
        bucket.set(format!("key{n:02}"), vec![n]).await.unwrap();
        let page = bucket
            .list_keys(
                None,
                kvhost::PageBudget {
                    max_keys: 1000,
                    max_bytes: 1 << 20,
                },
            )
            .await
            .unwrap();
        assert_eq!(page.keys.len(), n as usize + 1, "listing after set {n}");
        let token = bucket.cas_begin(format!("key{n:02}")).await.unwrap();
        assert_eq!(token.current(), Some(&[n][..]));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_writes_never_change_their_outcome_after_the_race() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    let bucket = Arc::new(
        store
            .bucket("b", Durability::Relaxed, Duration::from_secs(10))
            .unwrap(),
    );
    for round in 0..1000 {
        let racers: Vec<_> = (0..2)
            .map(|racer| {
                let bucket = Arc::clone(&bucket);
                tokio::spawn(async move {
                    let value = format!("{round}/{racer}").into_bytes();
                    bucket.set("contended".into(), value).await.unwrap();
                })
            })
            .collect();
        for racer in racers {
            racer.await.unwrap();
        }
        // Both writes were acknowledged: whichever won, it must stay the winner.
        let winner = bucket.get("contended").await.unwrap();
        bucket.flush().await.unwrap();
        assert_eq!(
            bucket.get("contended").await.unwrap(),
            winner,
            "round {round}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_many_reads_its_own_relaxed_writes() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    let bucket = store
        .bucket("b", Durability::Relaxed, Duration::from_secs(10))
        .unwrap();
    for n in 0..20_000u32 {
        let value = n.to_le_bytes().to_vec();
        bucket.set("k".into(), value.clone()).await.unwrap();
        let got = bucket.get_many(vec!["k".into()]).await.unwrap();
        assert_eq!(got, vec![("k".to_string(), Some(value))], "round {n}");
    }
}
