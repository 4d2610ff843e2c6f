//! The writer thread: every write to an embedded store goes through here, in group commits.
//!
//! redb allows one write transaction at a time, and an fsync costs milliseconds, so writers
//! queue [`Job`]s on a channel and one thread drains them: it takes every job waiting (up to
//! [`MAX_BATCH`]), applies them in arrival order inside one transaction, commits once, then
//! answers each. Concurrent writers therefore share one fsync; a lone writer pays one.
//!
//! Durability: the commit is `Immediate` (fsync before anyone is answered) if any job in the
//! batch belongs to an `immediate` bucket or is a flush; otherwise it is a non-durable commit,
//! visible to readers at once, and the thread schedules a durable commit within the smallest
//! `flush_within` of the batch. A later durable commit persists all earlier non-durable ones.
//!
//! Relaxed buckets' plain writes are acknowledged before they reach this thread (see
//! `overlay`); after committing them the thread settles their overlay entries.
//!
//! Invariants:
//! * a job is answered `Ok` only after the commit that holds it returned `Ok`;
//! * after every commit, the read cache is invalidated and overlay entries are settled before
//!   any job of the batch is answered;
//! * after any storage error the store is *faulted*: the database is reopened at once (redb
//!   refuses even reads after an I/O error; see `handle`), and writes are refused with the
//!   error until a commit succeeds again, tried at most every [`RETRY_EVERY`] when a write
//!   comes (or a relaxed write waits). Nothing is acknowledged on top of a failed fsync: the
//!   retry is a new commit of everything not yet committed.
//! * a relaxed write was acknowledged before its commit, so a failed commit keeps it: it
//!   stays in its overlay (readers see it) and in `retry`, committed first by the next
//!   attempt; a refused write never entered the overlay.
//! * versions: each batch takes the next value of the `seq` counter, stamps it on every record
//!   it writes and stores it in `kvhost_meta`; versions only grow, so A -> B -> A is visible.
//! * a bucket with a change log gets every change a job made appended to its log in the
//!   job's transaction (see `changes`); change-feed readers are signalled after the commit.

use std::collections::HashMap;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use redb::{ReadableTable, Table, WriteTransaction};
use tokio::sync::oneshot;

use super::changes;
use super::handle::DbHandle;
use super::layout::{self, META, META_SEQ};
use super::overlay::Overlay;
use super::read_cache::{Committed, ReadCache};
use crate::backend::cas_allows;
use crate::{counter, CasToken, Error, Result, Swap};

/// Most jobs in one transaction.
pub(crate) const MAX_BATCH: usize = 1024;

/// How often a faulted store tries to commit again.
pub(crate) const RETRY_EVERY: Duration = Duration::from_secs(1);

/// What a write refused by a faulted store hears.
pub(crate) fn refusal(label: &str, reason: &str) -> String {
    format!(
        "{label}: writes are refused while the store cannot write ({reason}); reads go on, and \
         writes resume by themselves once it can (retried every second)"
    )
}

/// One write request.
pub(crate) struct Job {
    /// The bucket's table name.
    pub table: Arc<str>,
    /// Whether the caller must not be answered before the write is on disk.
    pub durable: bool,
    /// For non-durable jobs: the longest the write may stay only in memory.
    pub flush_within: Duration,
    pub action: Action,
    pub reply: oneshot::Sender<Result<Reply>>,
    /// For relaxed writes acknowledged early: the overlay holding them and their ticket.
    pub settle: Option<(Arc<Overlay>, u64)>,
    /// For a bucket with a change log: how many changes it keeps.
    pub change_log: Option<u64>,
}

/// What a job does.
pub(crate) enum Action {
    Set(String, Vec<u8>),
    Delete(String),
    Increment(String, i64),
    Swap(CasToken, Vec<u8>),
    SetMany(Vec<(String, Vec<u8>)>),
    DeleteMany(Vec<String>),
    /// Writes nothing; forces a durable commit.
    Flush,
    /// Writes nothing; answered once every job queued before it is committed.
    Barrier,
    /// Saves a watcher's position (key from `changes::position_key`).
    SavePosition(String, Vec<u8>),
}

impl Action {
    /// What a plain write leaves in a relaxed bucket's overlay until it commits: each key it
    /// touches with its new value (`None`: deleted). Empty for every other action.
    pub(crate) fn overlay_entries(&self) -> Vec<(String, Option<Vec<u8>>)> {
        match self {
            Action::Set(key, value) => vec![(key.clone(), Some(value.clone()))],
            Action::Delete(key) => vec![(key.clone(), None)],
            Action::SetMany(entries) => entries
                .iter()
                .map(|(key, value)| (key.clone(), Some(value.clone())))
                .collect(),
            Action::DeleteMany(keys) => keys.iter().map(|key| (key.clone(), None)).collect(),
            _ => Vec::new(),
        }
    }

    /// What this action did to the keys of `table` once its batch committed, for the read
    /// cache: the new value of a plain write; a counter or swap is forgotten (its new value
    /// is not at hand, and a stale swap or a failed increment changed nothing).
    fn committed<'a>(&'a self, table: &'a Arc<str>) -> Vec<Committed<'a>> {
        match self {
            Action::Set(key, value) => vec![Committed::Value(table, key, Some(value))],
            Action::Delete(key) => vec![Committed::Value(table, key, None)],
            Action::SetMany(entries) => entries
                .iter()
                .map(|(key, value)| Committed::Value(table, key, Some(value)))
                .collect(),
            Action::DeleteMany(keys) => keys
                .iter()
                .map(|key| Committed::Value(table, key, None))
                .collect(),
            Action::Increment(key, _) => vec![Committed::Changed(table, key)],
            Action::Swap(token, _) => vec![Committed::Changed(table, token.key())],
            Action::Flush | Action::Barrier | Action::SavePosition(..) => Vec::new(),
        }
    }

    /// The keys a plain write touches (what its overlay entries are keyed by).
    fn written_keys(&self) -> Vec<&str> {
        match self {
            Action::Set(key, _) | Action::Delete(key) => vec![key.as_str()],
            Action::SetMany(entries) => entries.iter().map(|(key, _)| key.as_str()).collect(),
            Action::DeleteMany(keys) => keys.iter().map(String::as_str).collect(),
            _ => Vec::new(),
        }
    }
}

/// A job's answer.
pub(crate) enum Reply {
    Done,
    Counter(i64),
    Swap(Swap),
}

/// The state the thread owns.
pub(crate) struct Writer {
    pub db: Arc<DbHandle>,
    /// Relaxed writes (acknowledged already) whose commit failed: committed first next time.
    pub retry: Vec<Job>,
    /// While faulted: when the next commit may be tried.
    pub next_attempt: Option<Instant>,
    pub jobs: Receiver<Job>,
    /// The version of the latest commit.
    pub seq: u64,
    /// The storage error in force (set when a commit fails, cleared when one succeeds);
    /// shared so that relaxed writes are refused before they enter an overlay.
    pub poison: Arc<Mutex<Option<String>>>,
    /// Per table: the version of the latest delete that removed a key. Tables absent here
    /// had none since the store was opened, so they count from `opened_at`.
    pub last_delete: HashMap<Arc<str>, u64>,
    pub opened_at: u64,
    /// Describes the store in messages.
    pub label: String,
    /// Snapshots and hot values readers share; told what every commit wrote.
    pub read_cache: Arc<ReadCache>,
    /// Sent the version of every commit that logged a change, for change-feed readers.
    pub committed: Arc<tokio::sync::watch::Sender<u64>>,
}

/// Why a batch failed as a whole.
#[derive(Debug)]
pub(crate) struct Fatal(pub(crate) String);

impl From<redb::Error> for Fatal {
    fn from(err: redb::Error) -> Self {
        Fatal(err.to_string())
    }
}

macro_rules! impl_fatal_from {
    ($($ty:ty),*) => {$(
        impl From<$ty> for Fatal {
            fn from(err: $ty) -> Self {
                Fatal::from(redb::Error::from(err))
            }
        }
    )*};
}
impl_fatal_from!(
    redb::StorageError,
    redb::TableError,
    redb::TransactionError,
    redb::CommitError,
    redb::SetDurabilityError
);

impl Writer {
    /// Runs until every sender is gone, then makes pending writes durable and returns.
    pub fn run(mut self) {
        let mut flush_due: Option<Instant> = None;
        loop {
            let wake = [flush_due, self.heal_due()].into_iter().flatten().min();
            let first = match wake {
                None => match self.jobs.recv() {
                    Ok(job) => job,
                    Err(_) => break,
                },
                Some(due) => {
                    match self
                        .jobs
                        .recv_timeout(due.saturating_duration_since(Instant::now()))
                    {
                        Ok(job) => job,
                        Err(RecvTimeoutError::Timeout) => {
                            if self.commit_batch(Vec::new(), true) {
                                flush_due = None;
                            }
                            continue;
                        }
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
            };
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match self.jobs.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            let durable = batch.iter().any(|job| job.durable);
            let within = batch.iter().map(|job| job.flush_within).min();
            if self.commit_batch(batch, durable) && !durable {
                let due = Instant::now() + within.unwrap_or_default();
                flush_due = Some(flush_due.map_or(due, |current| current.min(due)));
            } else if durable {
                flush_due = None;
            }
        }
        if flush_due.is_some() || !self.retry.is_empty() {
            self.next_attempt = None;
            self.commit_batch(Vec::new(), true);
        }
    }

    /// While faulted with work waiting (relaxed writes to commit, or a database to reopen):
    /// when to try again.
    fn heal_due(&self) -> Option<Instant> {
        let waiting = !self.retry.is_empty() || self.db.get(&self.label).is_err();
        self.next_attempt.filter(|_| waiting)
    }

    /// Applies and commits one batch (after any relaxed writes waiting to be retried) and
    /// answers its jobs. Returns whether it committed.
    fn commit_batch(&mut self, batch: Vec<Job>, durable: bool) -> bool {
        let fault = self.poison.lock().clone();
        if let Some(reason) = fault {
            let now = Instant::now();
            let wait = self.next_attempt.is_some_and(|next| now < next);
            let unopened =
                || self.db.get(&self.label).is_err() && self.db.reopen(&self.read_cache).is_err();
            if wait || unopened() {
                if !wait {
                    self.next_attempt = Some(now + RETRY_EVERY);
                }
                self.refuse(batch, &refusal(&self.label, &reason));
                return false;
            }
        }
        let retried = !self.retry.is_empty();
        let mut batch = batch;
        if retried {
            let mut all = std::mem::take(&mut self.retry);
            all.append(&mut batch);
            batch = all;
        }
        let version = self.seq + 1;
        let mut deletes = Vec::new();
        // A panic inside redb (a damaged page) fails the batch as an I/O error does.
        let outcome = super::damage::contain_as(
            || self.apply(&batch, version, durable || retried, &mut deletes),
            Fatal,
        );
        match outcome {
            Ok((results, logged)) => {
                if logged {
                    self.committed.send_replace(version);
                }
                self.seq = version;
                *self.poison.lock() = None;
                self.next_attempt = None;
                for table in deletes {
                    self.last_delete.insert(table, version);
                }
                // Before anyone is answered and before the overlay lets go of these keys.
                self.read_cache.committed(
                    batch
                        .iter()
                        .flat_map(|job| job.action.committed(&job.table)),
                );
                for job in &batch {
                    if let Some((overlay, ticket)) = &job.settle {
                        overlay.settle(job.action.written_keys(), *ticket);
                    }
                }
                for (job, result) in batch.into_iter().zip(results) {
                    // A caller that gave up waiting is not an error.
                    let _ = job.reply.send(result);
                }
                true
            }
            Err(Fatal(reason)) => {
                *self.poison.lock() = Some(reason.clone());
                self.next_attempt = Some(Instant::now() + RETRY_EVERY);
                self.refuse(batch, &format!("{}: a write failed: {reason}", self.label));
                // redb refuses reads too after an I/O error: reopen now, so reads go on. If
                // that fails, it is tried again with the next commit.
                let _ = self.db.reopen(&self.read_cache);
                false
            }
        }
    }

    /// Answers `batch` with `message`, except relaxed writes (acknowledged already), which
    /// wait in `retry` for the next commit.
    fn refuse(&mut self, batch: Vec<Job>, message: &str) {
        for job in batch {
            if job.settle.is_some() {
                self.retry.push(job);
            } else {
                let _ = job.reply.send(Err(Error::other(message)));
            }
        }
    }

    fn apply(
        &self,
        batch: &[Job],
        version: u64,
        durable: bool,
        deletes: &mut Vec<Arc<str>>,
    ) -> Result<(Vec<Result<Reply>>, bool), Fatal> {
        let db = self
            .db
            .get(&self.label)
            .map_err(|err| Fatal(err.to_string()))?;
        let mut txn = db.begin_write()?;
        txn.set_durability(if durable {
            redb::Durability::Immediate
        } else {
            redb::Durability::None
        })?;
        let mut results = Vec::with_capacity(batch.len());
        let mut next_index = 0;
        {
            // Consecutive jobs on the same bucket (the common case) share one open table.
            let mut open: Option<(&Arc<str>, BucketTable<'_>)> = None;
            for job in batch {
                if let Action::SavePosition(key, position) = &job.action {
                    changes::save_position(&txn, key, position)?;
                    results.push(Ok(Reply::Done));
                    continue;
                }
                let last_delete = self.last_delete_of(&job.table, deletes, version);
                if open.as_ref().is_none_or(|(name, _)| *name != &job.table) {
                    open = Some((
                        &job.table,
                        txn.open_table(layout::bucket_table(&job.table))?,
                    ));
                }
                let Some((_, table)) = open.as_mut() else {
                    return Err(Fatal("internal error: the bucket table is not open".into()));
                };
                let mut deleted = false;
                let mut changed = Vec::new();
                let log = job.change_log.map(|_| &mut changed);
                results.push(apply_op(
                    table,
                    &job.action,
                    version,
                    last_delete,
                    (&mut deleted, log),
                )?);
                if deleted {
                    deletes.push(Arc::clone(&job.table));
                }
                if let (Some(retention), false) = (job.change_log, changed.is_empty()) {
                    changes::append(
                        &txn,
                        &job.table,
                        retention,
                        version,
                        &mut next_index,
                        &changed,
                    )?;
                }
            }
        }
        stamp_seq(&txn, version)?;
        txn.commit()?;
        Ok((results, next_index > 0))
    }

    fn last_delete_of(&self, table: &Arc<str>, pending: &[Arc<str>], version: u64) -> u64 {
        if pending.contains(table) {
            return version;
        }
        self.last_delete
            .get(table)
            .copied()
            .unwrap_or(self.opened_at)
    }
}

fn stamp_seq(txn: &WriteTransaction, version: u64) -> Result<(), Fatal> {
    txn.open_table(META)?.insert(META_SEQ, version)?;
    Ok(())
}

type BucketTable<'t> = Table<'t, &'static str, &'static [u8]>;

/// The current version and value of `key`.
fn current(table: &BucketTable<'_>, key: &str) -> Result<Option<(u64, Vec<u8>)>, Fatal> {
    match table.get(key)? {
        Some(guard) => {
            let (version, value) =
                layout::decode(guard.value()).map_err(|e| Fatal(e.to_string()))?;
            Ok(Some((version, value.to_vec())))
        }
        None => Ok(None),
    }
}

/// The keys a job changed, each with its new value (`None`: deleted), in order.
type Changed = Vec<(String, Option<Vec<u8>>)>;

/// What a job did, for the caller: whether it removed a key, and (for a bucket with a change
/// log) what it changed.
type Effects<'e> = (&'e mut bool, Option<&'e mut Vec<(String, Option<Vec<u8>>)>>);

/// Applies one job. `Err` is fatal for the batch; `Ok(Err(..))` is this job's own error.
fn apply_op(
    table: &mut BucketTable<'_>,
    action: &Action,
    version: u64,
    last_delete: u64,
    (deleted, mut log): Effects<'_>,
) -> Result<Result<Reply>, Fatal> {
    let put = |table: &mut BucketTable<'_>,
               log: &mut Option<&mut Changed>,
               key: &str,
               value: &[u8]|
     -> Result<(), Fatal> {
        table.insert(key, layout::encode(version, value).as_slice())?;
        if let Some(log) = log.as_deref_mut() {
            log.push((key.to_string(), Some(value.to_vec())));
        }
        Ok(())
    };
    let remove = |table: &mut BucketTable<'_>,
                  log: &mut Option<&mut Changed>,
                  key: &str|
     -> Result<bool, Fatal> {
        let removed = table.remove(key)?.is_some();
        if let (true, Some(log)) = (removed, log.as_deref_mut()) {
            log.push((key.to_string(), None));
        }
        Ok(removed)
    };
    let reply = match action {
        Action::Set(key, value) => {
            put(table, &mut log, key, value)?;
            Reply::Done
        }
        Action::SetMany(entries) => {
            for (key, value) in entries {
                put(table, &mut log, key, value)?;
            }
            Reply::Done
        }
        Action::Delete(key) => {
            *deleted |= remove(table, &mut log, key)?;
            Reply::Done
        }
        Action::DeleteMany(keys) => {
            for key in keys {
                *deleted |= remove(table, &mut log, key)?;
            }
            Reply::Done
        }
        Action::Increment(key, delta) => {
            let now = current(table, key)?;
            let new = match counter::add(key, now.as_ref().map(|(_, v)| v.as_slice()), *delta) {
                Ok(new) => new,
                Err(err) => return Ok(Err(err)),
            };
            put(table, &mut log, key, &counter::format(new))?;
            Reply::Counter(new)
        }
        Action::Swap(token, value) => {
            let now = current(table, token.key())?;
            if cas_allows(token, now.as_ref().map(|(v, _)| *v), last_delete) {
                put(table, &mut log, token.key(), value)?;
                Reply::Swap(Swap::Swapped)
            } else {
                // The fresh token is made inside this transaction, so it reflects every
                // write committed before it and earlier jobs of this batch: stamped with this
                // batch's version if one of them wrote the key.
                let fresh = match now {
                    Some((v, bytes)) => CasToken::new(token.key().to_string(), Some(bytes), v),
                    None => CasToken::new(token.key().to_string(), None, version),
                };
                Reply::Swap(Swap::Stale(fresh))
            }
        }
        Action::Flush | Action::Barrier | Action::SavePosition(..) => Reply::Done,
    };
    Ok(Ok(reply))
}
