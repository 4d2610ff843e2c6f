//! The durable embedded backend: one redb database per data directory.
//!
//! [`EmbeddedStore::open`] opens (or creates) `<data_dir>/kvhost.redb`, checks its format
//! version and starts the writer thread; [`EmbeddedStore::bucket`] makes one table per bucket.
//! Reads run on the caller's thread against a redb snapshot shared until the next commit
//! (cheap, never blocked by writers); writes are queued to the writer thread, which
//! group-commits them (see `writer`). A `relaxed` bucket's plain writes are acknowledged once
//! queued and held in an overlay that reads consult until they are committed (see `overlay`).
//! Opening is in `open`; after an I/O error the database is reopened through `handle`, and
//! every call into redb is guarded by `damage` against damaged files. `layout` is the file
//! format: tables, records (a version and a value) and the format version.
//!
//! Guarantees:
//! * linearizable: a write is answered after its commit (immediate) or after it entered the
//!   overlay (relaxed), and every read after that sees it;
//! * `immediate` buckets: answered after the data is on disk; `relaxed` buckets: answered
//!   from memory, on disk within `flush_interval` (plus the time the write waits in the queue,
//!   microseconds unless the disk is saturated); a crash loses at most that window, and redb's
//!   copy-on-write commits mean it never corrupts the file;
//! * each `set_many` / `delete_many` is one transaction: all of it or none of it;
//! * a second process opening the same directory gets [`OpenError::InUse`], naming it;
//! * a full disk or failing device refuses writes, not reads, and heals by itself (`writer`);
//! * a damaged file gives "store damaged" errors, never a panic (`damage`).

mod changes;
mod damage;
mod handle;
mod layout;
mod open;
mod overlay;
mod read_cache;
mod writer;

use std::path::PathBuf;
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::Mutex;
use redb::ReadableDatabase;
use tokio::sync::oneshot;

use self::damage::contain;
pub use self::damage::containing_panic;
use self::handle::DbHandle;
use self::layout::{FORMAT_VERSION, META, META_SEQ};
use self::overlay::{Lookup, Overlay};
use self::read_cache::{ReadCache, Snapshot};
use self::writer::{Action, Job, Reply};
use super::ordered_page;
use crate::changes::{wait_for_changes, ChangeRead};
use crate::cursor::ordered_position;
use crate::{Bucket, CasToken, Durability, Error, KeyPage, PageBudget, Result, Swap};

/// Why an embedded store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The data directory could not be created or its file opened.
    #[error("cannot open data dir {}: {error}", dir.display())]
    Io {
        /// The data directory.
        dir: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// Another process has the directory open.
    #[error("data dir {} is in use by another process (its kvhost.redb is locked); stop that process or choose another directory with --data-dir", dir.display())]
    InUse {
        /// The data directory.
        dir: PathBuf,
    },
    /// The directory was written by a kvhost with another on-disk format.
    #[error("data dir {} has format version {found}, but this kvhost reads only format {FORMAT_VERSION}; use the kvhost release that wrote it (or a newer one), and `kvhost kv export` to move data between versions", dir.display())]
    Format {
        /// The data directory.
        dir: PathBuf,
        /// The version found.
        found: u64,
    },
    /// The file is a redb database that kvhost did not write.
    #[error("data dir {} holds a kvhost.redb that kvhost did not create (it has no format version); move it away or choose another --data-dir", dir.display())]
    Foreign {
        /// The data directory.
        dir: PathBuf,
    },
    /// redb refused the file (damaged, not a database, I/O error).
    #[error("cannot open the store in data dir {}: {message}", dir.display())]
    Storage {
        /// The data directory.
        dir: PathBuf,
        /// redb's message.
        message: String,
    },
}

/// An open embedded store; cheap to clone. The writer thread stops, after making every
/// acknowledged write durable, when the store and all its buckets are dropped.
#[derive(Clone)]
pub struct EmbeddedStore {
    inner: Arc<Inner>,
}

struct Inner {
    db: Arc<DbHandle>,
    /// The data directory, for messages.
    dir: PathBuf,
    /// "embedded store <dir>", the prefix of messages.
    label: String,
    /// `None` only while dropping.
    jobs: Option<Sender<Job>>,
    writer: Option<JoinHandle<()>>,
    poison: Arc<Mutex<Option<String>>>,
    read_cache: Arc<ReadCache>,
    /// Sent the version of every commit that logged a change (see `writer`).
    committed: Arc<tokio::sync::watch::Sender<u64>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

impl EmbeddedStore {
    /// The bucket `name`, creating its table if needed.
    pub fn bucket(
        &self,
        name: &str,
        durability: Durability,
        flush_interval: Duration,
    ) -> Result<EmbeddedBucket, OpenError> {
        let table: Arc<str> = layout::table_name(name).into();
        self.create_tables(|txn| {
            txn.open_table(layout::bucket_table(&table))?;
            Ok(())
        })?;
        let durable = durability == Durability::Immediate;
        Ok(EmbeddedBucket {
            store: Arc::clone(&self.inner),
            table,
            durable,
            flush_within: flush_interval,
            overlay: (!durable).then(|| Arc::new(Overlay::default())),
            change_log: None,
        })
    }

    /// The bucket `name` with a change log keeping its last `retention` changes for watchers
    /// (see [`crate::changes`]), creating its tables if needed.
    pub fn bucket_with_change_log(
        &self,
        name: &str,
        durability: Durability,
        flush_interval: Duration,
        retention: u64,
    ) -> Result<EmbeddedBucket, OpenError> {
        let mut bucket = self.bucket(name, durability, flush_interval)?;
        self.create_tables(|txn| changes::create(txn, &bucket.table))?;
        bucket.change_log = Some(retention.max(1));
        Ok(bucket)
    }

    /// Runs `create` in a write transaction of its own and commits it.
    fn create_tables(
        &self,
        create: impl FnOnce(&redb::WriteTransaction) -> Result<(), redb::Error>,
    ) -> Result<(), OpenError> {
        let db = self
            .inner
            .db
            .get(&self.inner.label)
            .map_err(|err| open::storage(&self.inner.dir, err))?;
        let created = || -> Result<(), redb::Error> {
            let txn = db.begin_write()?;
            create(&txn)?;
            txn.commit()?;
            Ok(())
        };
        contain(&self.inner.label, || {
            created().map_err(|err| Error::other(err.to_string()))
        })
        .map_err(|err| OpenError::Storage {
            dir: self.inner.dir.clone(),
            message: err.to_string(),
        })
    }

    /// The storage error in force, if any: writes are refused until a commit succeeds again.
    pub fn poisoned(&self) -> Option<String> {
        self.inner.poison.lock().clone()
    }
}

/// One bucket (table) of an [`EmbeddedStore`].
pub struct EmbeddedBucket {
    store: Arc<Inner>,
    table: Arc<str>,
    durable: bool,
    flush_within: Duration,
    /// Relaxed buckets only: acknowledged writes not yet committed.
    overlay: Option<Arc<Overlay>>,
    /// With a change log: how many changes it keeps.
    change_log: Option<u64>,
}

impl EmbeddedBucket {
    fn job(&self, action: Action) -> (Job, oneshot::Receiver<Result<Reply>>) {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            table: Arc::clone(&self.table),
            durable: self.durable || matches!(action, Action::Flush),
            flush_within: self.flush_within,
            action,
            reply,
            settle: None,
            change_log: self.change_log,
        };
        (job, answer)
    }

    fn stopped(&self) -> Error {
        Error::other(format!("{}: the writer has stopped", self.store.label))
    }

    fn queue(&self, job: Job) -> Result<()> {
        let jobs = self.store.jobs.as_ref().ok_or_else(|| self.stopped())?;
        jobs.send(job).map_err(|_| self.stopped())
    }

    /// Queues `action` and waits for the commit that holds it.
    async fn write(&self, action: Action) -> Result<Reply> {
        let (job, answer) = self.job(action);
        self.queue(job)?;
        answer.await.map_err(|_| self.stopped())?
    }

    /// A plain write (`Set`, `Delete`, `SetMany`, `DeleteMany`): on a relaxed bucket,
    /// acknowledged as soon as it is in the overlay and queued; otherwise as [`Self::write`].
    async fn put(&self, action: Action) -> Result<()> {
        let Some(overlay) = &self.overlay else {
            return self.write(action).await.map(drop);
        };
        if let Some(reason) = self.store.poison.lock().clone() {
            return Err(Error::other(writer::refusal(&self.store.label, &reason)));
        }
        let writes = action.overlay_entries();
        let (mut job, answer) = self.job(action);
        let full = overlay.stage(writes, |ticket| {
            job.settle = Some((Arc::clone(overlay), ticket));
            self.queue(job)
        })?;
        if full {
            // Backpressure: the disk is behind by more than the overlay may hold.
            answer.await.map_err(|_| self.stopped())??;
        }
        Ok(())
    }

    /// Waits until every relaxed write queued so far is committed, if any is pending.
    async fn settle_overlay(&self) -> Result<()> {
        match &self.overlay {
            Some(overlay) if !overlay.is_empty() => self.write(Action::Barrier).await.map(drop),
            _ => Ok(()),
        }
    }

    /// The pending relaxed state of `key`, if any.
    fn pending(&self, key: &str) -> Lookup {
        match &self.overlay {
            Some(overlay) => overlay.lookup(key),
            None => Lookup::Unknown,
        }
    }

    /// Refuses change-feed calls on a bucket without a change log.
    fn logged(&self) -> Result<()> {
        match self.change_log {
            Some(_) => Ok(()),
            None => Err(crate::changes::no_change_log()),
        }
    }

    /// Runs `read` with a panic inside redb turned into a "store damaged" error.
    fn contained<T>(&self, read: impl FnOnce() -> Result<T>) -> Result<T> {
        contain(&self.store.label, read)
    }

    /// The one wording of a failed read.
    fn read_failed(&self, err: impl Into<redb::Error>) -> Error {
        Error::other(format!("{}: read failed: {}", self.store.label, err.into()))
    }

    /// `key`'s version and value in `table`.
    fn value_of(
        &self,
        table: &redb::ReadOnlyTable<&'static str, &'static [u8]>,
        key: &str,
    ) -> Result<Option<(u64, Vec<u8>)>> {
        match table.get(key).map_err(|e| self.read_failed(e))? {
            Some(guard) => {
                let (version, value) = layout::decode(guard.value())?;
                Ok(Some((version, value.to_vec())))
            }
            None => Ok(None),
        }
    }

    /// A new read transaction and this bucket's table in it.
    fn begin_read(
        &self,
    ) -> Result<(
        redb::ReadTransaction,
        redb::ReadOnlyTable<&'static str, &'static [u8]>,
    )> {
        let txn = self
            .store
            .db
            .get(&self.store.label)?
            .begin_read()
            .map_err(|e| self.read_failed(e))?;
        let table = txn
            .open_table(layout::bucket_table(&self.table))
            .map_err(|e| self.read_failed(e))?;
        Ok((txn, table))
    }

    /// A snapshot of this bucket's table, shared with other readers until the next commit.
    fn snapshot(&self) -> Result<Snapshot> {
        let (generation, cached) = self.store.read_cache.get(&self.table);
        self.snapshot_from(generation, cached)
    }

    /// `cached`, or a new snapshot, cached unless a commit happened since `generation`.
    fn snapshot_from(&self, generation: u64, cached: Option<Snapshot>) -> Result<Snapshot> {
        if let Some(snapshot) = cached {
            return Ok(snapshot);
        }
        let (_, table) = self.begin_read()?;
        let snapshot = Arc::new(table);
        self.store
            .read_cache
            .store(generation, &self.table, &snapshot);
        Ok(snapshot)
    }

    /// `answer` applied to `key`'s committed value (`None`: absent): from the hot values,
    /// else from the shared snapshot, and then held for the next reader (see `read_cache`).
    fn committed_value<T>(&self, key: &str, answer: impl FnOnce(Option<&[u8]>) -> T) -> Result<T> {
        let cache = &self.store.read_cache;
        let found = cache.lookup(&self.table, key);
        if let Some(hot) = found.hot {
            return Ok(answer(hot.as_deref()));
        }
        let snapshot = self.snapshot_from(found.generation, found.snapshot)?;
        let guard = snapshot.get(key).map_err(|e| self.read_failed(e))?;
        let value = match &guard {
            Some(guard) => Some(layout::decode(guard.value())?.1),
            None => None,
        };
        cache.remember(found.generation, &self.table, key, value);
        Ok(answer(value))
    }

    /// Runs `read` on a fresh snapshot of this bucket's table and its transaction.
    fn read_txn<T>(
        &self,
        read: impl FnOnce(
            &redb::ReadOnlyTable<&'static str, &'static [u8]>,
            &redb::ReadTransaction,
        ) -> Result<T>,
    ) -> Result<T> {
        let (txn, table) = self.begin_read()?;
        read(&table, &txn)
    }
}

fn unexpected(reply: &Reply) -> Error {
    let what = match reply {
        Reply::Done => "done",
        Reply::Counter(_) => "a counter",
        Reply::Swap(_) => "a swap",
    };
    Error::other(format!(
        "embedded store: internal error: unexpected reply ({what})"
    ))
}

#[async_trait]
impl Bucket for EmbeddedBucket {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        if let Lookup::Pending(value) = self.pending(key) {
            return Ok(value);
        }
        self.contained(|| self.committed_value(key, |value| value.map(<[u8]>::to_vec)))
    }

    async fn set(&self, key: String, value: Vec<u8>) -> Result<()> {
        self.put(Action::Set(key, value)).await
    }

    async fn delete(&self, key: String) -> Result<()> {
        self.put(Action::Delete(key)).await
    }

    async fn exists(&self, key: &str) -> Result<bool> {
        if let Lookup::Pending(value) = self.pending(key) {
            return Ok(value.is_some());
        }
        self.contained(|| self.committed_value(key, |value| value.is_some()))
    }

    async fn list_keys(&self, position: Option<Vec<u8>>, budget: PageBudget) -> Result<KeyPage> {
        let after = position.map(ordered_position).transpose()?;
        // Listing reads redb's order; pending relaxed writes are committed first.
        self.settle_overlay().await?;
        self.contained(|| {
            let snapshot = self.snapshot()?;
            let table = &*snapshot;
            let range = match &after {
                Some(key) => table.range::<&str>((
                    std::ops::Bound::Excluded(key.as_str()),
                    std::ops::Bound::Unbounded,
                )),
                None => table.range::<&str>(..),
            }
            .map_err(|e| self.read_failed(e))?;
            let keys = range.map(|entry| {
                let (key, _) = entry.map_err(|e| self.read_failed(e))?;
                Ok(key.value().to_string())
            });
            ordered_page(keys, budget)
        })
    }

    async fn increment(&self, key: String, delta: i64) -> Result<i64> {
        match self.write(Action::Increment(key, delta)).await? {
            Reply::Counter(value) => Ok(value),
            other => Err(unexpected(&other)),
        }
    }

    async fn cas_begin(&self, key: String) -> Result<CasToken> {
        // A token needs committed versions: of this key, and for an absent key the table's
        // latest delete, which a pending delete of any key would move. So pending writes of
        // this bucket commit first.
        self.settle_overlay().await?;
        self.contained(|| {
            self.read_txn(|table, txn| match self.value_of(table, &key)? {
                Some((version, value)) => Ok(CasToken::new(key, Some(value), version)),
                None => {
                    let meta = txn.open_table(META).map_err(|e| self.read_failed(e))?;
                    let seq = meta.get(META_SEQ).map_err(|e| self.read_failed(e))?;
                    Ok(CasToken::new(key, None, seq.map_or(0, |g| g.value())))
                }
            })
        })
    }

    async fn cas_swap(&self, token: CasToken, value: Vec<u8>) -> Result<Swap> {
        match self.write(Action::Swap(token, value)).await? {
            Reply::Swap(swap) => Ok(swap),
            other => Err(unexpected(&other)),
        }
    }

    async fn get_many(&self, keys: Vec<String>) -> Result<Vec<(String, Option<Vec<u8>>)>> {
        // Overlay first, snapshot after: a key that misses the overlay was settled (committed)
        // before the miss, so only a snapshot taken after every miss is sure to hold it.
        let pending: Vec<Lookup> = keys.iter().map(|key| self.pending(key)).collect();
        self.contained(|| {
            let snapshot = self.snapshot()?;
            keys.into_iter()
                .zip(pending)
                .map(|(key, pending)| match pending {
                    Lookup::Pending(value) => Ok((key, value)),
                    Lookup::Unknown => {
                        let value = self.value_of(&snapshot, &key)?.map(|(_, value)| value);
                        Ok((key, value))
                    }
                })
                .collect()
        })
    }

    async fn set_many(&self, entries: Vec<(String, Vec<u8>)>) -> Result<()> {
        self.put(Action::SetMany(entries)).await
    }

    async fn delete_many(&self, keys: Vec<String>) -> Result<()> {
        self.put(Action::DeleteMany(keys)).await
    }

    async fn flush(&self) -> Result<()> {
        self.write(Action::Flush).await.map(drop)
    }

    async fn changes(
        &self,
        after: Option<Vec<u8>>,
        max: usize,
        wait: Duration,
    ) -> Result<ChangeRead> {
        self.logged()?;
        wait_for_changes(&self.store.committed, wait, || {
            self.contained(|| {
                let db = self.store.db.get(&self.store.label)?;
                changes::read(&db, &self.table, after.as_deref(), max)
            })
        })
        .await
    }

    async fn change_head(&self) -> Result<Vec<u8>> {
        self.logged()?;
        // The head covers every write acknowledged before it: pending relaxed ones commit first.
        self.settle_overlay().await?;
        self.contained(|| changes::head(&*self.store.db.get(&self.store.label)?, &self.table))
    }

    async fn watch_position(&self, watcher: &str) -> Result<Option<Vec<u8>>> {
        self.logged()?;
        self.contained(|| {
            let db = self.store.db.get(&self.store.label)?;
            changes::saved_position(&db, &self.table, watcher)
        })
    }

    async fn save_watch_position(&self, watcher: String, position: Vec<u8>) -> Result<()> {
        self.logged()?;
        let key = changes::position_key(&self.table, &watcher);
        let (mut job, answer) = self.job(Action::SavePosition(key, position));
        // A position lost in a crash only means redelivery from an older one (at least
        // once): never worth an fsync of its own. It is durable with the next durable commit.
        job.durable = false;
        self.queue(job)?;
        answer.await.map_err(|_| self.stopped())?.map(drop)
    }
}
