//! Shared by tests/damaged.rs and the fuzz target (fuzz/fuzz_targets/open_and_walk.rs): a
//! pristine store to damage, and a walk that reads all of a (damaged) store.
// Each user needs a different part.
#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use kvhost::backend::embedded::EmbeddedStore;
use kvhost::{Bucket, Durability, PageBudget};
use redb::backends::InMemoryBackend;
use redb::StorageBackend;

pub const BUCKETS: [&str; 3] = ["alpha", "beta", "gamma"];
pub const KEYS: usize = 1500;

/// A cleanly closed store of [`BUCKETS`] x [`KEYS`] entries, as bytes.
pub fn pristine() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let runtime = runtime();
    {
        let store = EmbeddedStore::open(dir).unwrap();
        for name in BUCKETS {
            let bucket = store
                .bucket(name, Durability::Immediate, Duration::ZERO)
                .unwrap();
            let entries = (0..KEYS)
                .map(|n| (format!("{name}-{n:05}"), vec![b'v'; 40 + n % 200]))
                .collect();
            runtime.block_on(bucket.set_many(entries)).unwrap();
        }
    }
    std::fs::read(dir.join("kvhost.redb")).unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

/// Opens `bytes` as a store (in memory) and reads every key of every bucket, then writes one
/// key to each; returns the entries read, or the first error as text.
pub fn walk(bytes: &[u8]) -> Result<usize, String> {
    let backend = InMemoryBackend::new();
    backend
        .set_len(bytes.len() as u64)
        .map_err(|err| err.to_string())?;
    backend.write(0, bytes).map_err(|err| err.to_string())?;
    let store = EmbeddedStore::open_with_backend(Path::new("fuzzed"), backend)
        .map_err(|err| err.to_string())?;
    let runtime = runtime();
    let mut read = 0;
    for name in BUCKETS {
        let bucket = store
            .bucket(name, Durability::Immediate, Duration::ZERO)
            .map_err(|err| err.to_string())?;
        let budget = PageBudget {
            max_keys: 500,
            max_bytes: 1 << 20,
        };
        let mut position = None;
        loop {
            let page = runtime
                .block_on(bucket.list_keys(position, budget))
                .map_err(|err| err.to_string())?;
            for key in &page.keys {
                runtime
                    .block_on(bucket.get(key))
                    .map_err(|err| err.to_string())?;
                read += 1;
            }
            position = page.next;
            if position.is_none() {
                break;
            }
        }
        runtime
            .block_on(bucket.set("written-after".into(), b"x".to_vec()))
            .map_err(|err| err.to_string())?;
    }
    Ok(read)
}
