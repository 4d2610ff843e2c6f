//! Injected storage failures, through redb's `StorageBackend` seam.
//!
//! A backend that wraps redb's file backend fails writes or fsyncs on demand. The promise
//! under test: the failing call returns `other`, the store then refuses every write until it is
//! reopened (it never acknowledges on top of a failed fsync), reads keep working, and a reopen
//! shows every write that was acknowledged.

use std::fs::OpenOptions;
use std::io;
use std::ops::Bound;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kvhost::backend::embedded::EmbeddedStore;
use kvhost::{Bucket, Durability, Error};
use redb::backends::FileBackend;
use redb::{BackendError, StorageBackend};

#[derive(Debug, Default)]
struct Switches {
    fail_writes: AtomicBool,
    fail_syncs: AtomicBool,
}

#[derive(Debug)]
struct Faulty {
    inner: FileBackend,
    switches: Arc<Switches>,
}

fn injected(what: &str) -> io::Error {
    io::Error::other(format!("injected {what} failure"))
}

impl StorageBackend for Faulty {
    fn len(&self) -> Result<u64, io::Error> {
        self.inner.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
        self.inner.read(offset, out)
    }
    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        if self.switches.fail_writes.load(Ordering::SeqCst) {
            return Err(injected("write"));
        }
        self.inner.set_len(len)
    }
    fn sync_data(&self) -> Result<(), io::Error> {
        if self.switches.fail_syncs.load(Ordering::SeqCst) {
            return Err(injected("fsync"));
        }
        self.inner.sync_data()
    }
    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        if self.switches.fail_writes.load(Ordering::SeqCst) {
            return Err(injected("write"));
        }
        self.inner.write(offset, data)
    }
    fn close(&self) -> Result<(), io::Error> {
        self.inner.close()
    }
    fn try_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.try_lock_range(start, end)
    }
    fn try_lock_shared_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<bool, BackendError> {
        self.inner.try_lock_shared_range(start, end)
    }
    fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.lock_range(start, end)
    }
    fn lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.lock_shared_range(start, end)
    }
    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.unlock_range(start, end)
    }
    fn query_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.query_lock_range(start, end)
    }
}

fn open_faulty(dir: &Path) -> (EmbeddedStore, Arc<Switches>) {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(dir.join("kvhost.redb"))
        .unwrap();
    let switches = Arc::new(Switches::default());
    let backend = Faulty {
        inner: FileBackend::new(file).unwrap(),
        switches: Arc::clone(&switches),
    };
    (
        EmbeddedStore::open_with_backend(dir, backend).unwrap(),
        switches,
    )
}

fn bucket(store: &EmbeddedStore) -> kvhost::backend::embedded::EmbeddedBucket {
    store
        .bucket("faults", Durability::Immediate, Duration::from_millis(100))
        .unwrap()
}

async fn check_failure_mode(fail: impl Fn(&Switches, bool)) {
    let dir = tempfile::tempdir().unwrap();
    let (store, switches) = open_faulty(dir.path());
    let b = bucket(&store);
    for i in 0..20 {
        b.set(format!("acked-{i}"), format!("v{i}").into_bytes())
            .await
            .unwrap();
    }
    b.increment("counter".into(), 7).await.unwrap();

    fail(&switches, true);
    let err = b.set("during".into(), b"x".to_vec()).await.unwrap_err();
    assert!(
        matches!(&err, Error::Other(m) if m.contains("injected")),
        "{err:?}"
    );
    fail(&switches, false);

    // Poisoned: the device works again, but nothing more is acknowledged.
    for attempt in [
        b.set("after".into(), b"y".to_vec()).await.map(drop),
        b.increment("counter".into(), 1).await.map(drop),
        b.delete("acked-0".into()).await,
        b.flush().await,
    ] {
        let err = attempt.unwrap_err();
        assert!(
            matches!(&err, Error::Other(m) if m.contains("refusing writes")),
            "{err:?}"
        );
    }
    assert!(store.poisoned().is_some());
    assert_eq!(
        b.get("acked-3").await.unwrap(),
        Some(b"v3".to_vec()),
        "reads still work"
    );
    drop(b);
    drop(store);

    let store = EmbeddedStore::open(dir.path()).expect("reopens after the failure");
    let b = bucket(&store);
    for i in 0..20 {
        let want = format!("v{i}").into_bytes();
        assert_eq!(
            b.get(&format!("acked-{i}")).await.unwrap(),
            Some(want),
            "acked-{i} lost"
        );
    }
    assert_eq!(b.get("counter").await.unwrap(), Some(b"7".to_vec()));
    assert_eq!(
        b.get("after").await.unwrap(),
        None,
        "a refused write appeared"
    );
    b.set("after".into(), b"y".to_vec())
        .await
        .expect("writable after reopen");
    assert_eq!(b.get("after").await.unwrap(), Some(b"y".to_vec()));
}

#[tokio::test]
async fn a_failed_fsync_is_reported_and_poisons_until_reopen() {
    check_failure_mode(|s, on| s.fail_syncs.store(on, Ordering::SeqCst)).await;
}

#[tokio::test]
async fn a_failed_write_is_reported_and_poisons_until_reopen() {
    check_failure_mode(|s, on| s.fail_writes.store(on, Ordering::SeqCst)).await;
}
