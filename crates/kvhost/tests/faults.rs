//! Injected storage failures, through redb's `StorageBackend` seam.
//!
//! A backend that wraps redb's file backend fails writes or fsyncs on demand (a full disk, a
//! failing device). The promise under test: the failing call returns `other`, the store then
//! refuses every write while the fault lasts (it never acknowledges on top of a failed
//! fsync), reads keep working, writes resume by themselves once the storage works again, and
//! a reopen shows every write that was acknowledged (relaxed ones included) and none that
//! was refused.

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
    /// The disk is full: growing the file fails with ENOSPC (writes within it work, as on a
    /// real file system).
    disk_full: AtomicBool,
    /// The device fails: every fsync fails.
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

fn no_space() -> io::Error {
    io::Error::from_raw_os_error(libc::ENOSPC)
}

impl StorageBackend for Faulty {
    fn len(&self) -> Result<u64, io::Error> {
        self.inner.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
        self.inner.read(offset, out)
    }
    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        if self.switches.disk_full.load(Ordering::SeqCst) && len > self.inner.len()? {
            return Err(no_space());
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
        let end = offset + data.len() as u64;
        if self.switches.disk_full.load(Ordering::SeqCst) && end > self.inner.len()? {
            return Err(no_space());
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

/// A store on `Faulty` backends: each reopen (after an I/O error) gets a new one over the
/// same file, obeying the same switches.
fn open_faulty(dir: &Path) -> (EmbeddedStore, Arc<Switches>) {
    let switches = Arc::new(Switches::default());
    let path = dir.join("kvhost.redb");
    let shared = Arc::clone(&switches);
    let make = move || {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        Ok(Faulty {
            inner: FileBackend::new(file).map_err(io::Error::other)?,
            switches: Arc::clone(&shared),
        })
    };
    (
        EmbeddedStore::open_with_backends(dir, make).unwrap(),
        switches,
    )
}

fn bucket(store: &EmbeddedStore) -> kvhost::backend::embedded::EmbeddedBucket {
    store
        .bucket("faults", Durability::Immediate, Duration::from_millis(100))
        .unwrap()
}

/// While the storage fails: the failing write and every write after it get `other` naming
/// the error, reads go on. Once it works again: writes resume by themselves (within a
/// second), with no reopen, and a reopen later shows every acknowledged write and no refused
/// one.
/// Every acknowledged key reads back and is listed.
async fn check_reads(b: &kvhost::backend::embedded::EmbeddedBucket) {
    for i in 0..20 {
        assert_eq!(
            b.get(&format!("acked-{i}")).await.unwrap(),
            Some(format!("v{i}").into_bytes()),
            "acked-{i} unreadable"
        );
    }
    let budget = kvhost::PageBudget {
        max_keys: 100,
        max_bytes: 1 << 20,
    };
    let listed = b.list_keys(None, budget).await.unwrap();
    assert!(listed.keys.len() >= 21, "{:?}", listed.keys);
}

/// `cause` is what the failing write's error names; `reads_during_fault` whether reads must
/// go on while the fault lasts (a full disk still lets kvhost reopen the store in place; a
/// device whose every fsync fails does not).
async fn check_failure_mode(fail: impl Fn(&Switches, bool), cause: &str, reads_during_fault: bool) {
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
    // Large enough that the file must grow.
    let err = b
        .set("during".into(), vec![b'x'; 8 << 20])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Other(m) if m.contains(cause)),
        "{err:?}"
    );
    // The fault lasts: writes are refused, saying why; reads and listing go on.
    for attempt in [
        b.set("refused".into(), b"y".to_vec()).await.map(drop),
        b.increment("counter".into(), 1).await.map(drop),
        b.delete("acked-0".into()).await,
    ] {
        let err = attempt.unwrap_err();
        assert!(
            matches!(&err, Error::Other(m) if m.contains(cause) && m.contains("refused while")),
            "{err:?}"
        );
    }
    assert!(store.poisoned().is_some());
    if reads_during_fault {
        check_reads(&b).await;
    }

    // The storage works again: writes resume without a restart.
    fail(&switches, false);
    let mut resumed = false;
    for _ in 0..40 {
        if b.set("after".into(), b"y".to_vec()).await.is_ok() {
            resumed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(resumed, "writes did not resume within 4 s");
    assert!(store.poisoned().is_none());
    check_reads(&b).await;
    assert_eq!(b.increment("counter".into(), 1).await.unwrap(), 8);
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
    assert_eq!(b.get("counter").await.unwrap(), Some(b"8".to_vec()));
    assert_eq!(b.get("after").await.unwrap(), Some(b"y".to_vec()));
    for refused in ["during", "refused"] {
        assert_eq!(
            b.get(refused).await.unwrap(),
            None,
            "a refused write appeared"
        );
    }
}

#[tokio::test]
async fn a_failed_fsync_refuses_writes_until_the_storage_works_again() {
    check_failure_mode(
        |s, on| s.fail_syncs.store(on, Ordering::SeqCst),
        "injected fsync failure",
        false,
    )
    .await;
}

#[tokio::test]
async fn a_full_disk_refuses_writes_keeps_reads_and_heals_by_itself() {
    check_failure_mode(
        |s, on| s.disk_full.store(on, Ordering::SeqCst),
        "No space left on device",
        true,
    )
    .await;
}

/// Relaxed writes are acknowledged before their commit. When that commit meets a full disk,
/// they are not lost: readers keep seeing them, and they are committed by themselves once
/// there is room again.
#[tokio::test]
async fn relaxed_writes_acknowledged_before_a_full_disk_are_committed_once_it_has_room() {
    let dir = tempfile::tempdir().unwrap();
    let (store, switches) = open_faulty(dir.path());
    let b = store
        .bucket("relaxed", Durability::Relaxed, Duration::from_millis(20))
        .unwrap();
    switches.disk_full.store(true, Ordering::SeqCst);
    // Acknowledged from memory until the first commit meets the full disk; refused after.
    let mut acked = 0;
    for i in 0..64 {
        match b.set(format!("r-{i}"), vec![b'r'; 1 << 20]).await {
            Ok(()) => acked += 1,
            Err(err) => {
                assert!(
                    matches!(&err, Error::Other(m) if m.contains("refused while")),
                    "{err:?}"
                );
                break;
            }
        }
    }
    assert!(acked > 0);
    let faulted = wait_until(|| store.poisoned().is_some()).await;
    assert!(faulted, "the commits did not meet the full disk");
    for i in 0..acked {
        let value = b.get(&format!("r-{i}")).await.unwrap();
        assert_eq!(value, Some(vec![b'r'; 1 << 20]), "r-{i} unreadable");
    }
    let err = b.set("refused".into(), b"x".to_vec()).await.unwrap_err();
    assert!(
        matches!(&err, Error::Other(m) if m.contains("refused while")),
        "{err:?}"
    );

    switches.disk_full.store(false, Ordering::SeqCst);
    let healed = wait_until(|| store.poisoned().is_none()).await;
    assert!(healed, "the store did not commit the waiting writes");
    drop(b);
    drop(store);

    let store = EmbeddedStore::open(dir.path()).unwrap();
    let b = store
        .bucket("relaxed", Durability::Relaxed, Duration::from_millis(20))
        .unwrap();
    for i in 0..acked {
        assert_eq!(
            b.get(&format!("r-{i}")).await.unwrap(),
            Some(vec![b'r'; 1 << 20]),
            "r-{i} lost"
        );
    }
    assert_eq!(b.get("refused").await.unwrap(), None);
}

/// Polls `condition` for up to 5 s.
async fn wait_until(condition: impl Fn() -> bool) -> bool {
    for _ in 0..100 {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}
