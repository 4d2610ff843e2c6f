//! Two in-memory layers in front of redb that make the embedded store fast without weakening
//! its promises:
//!
//! * [`Overlay`]: writes of a `relaxed` bucket that were acknowledged but are not committed yet.
//!   A relaxed `set`/`delete`/`set_many`/`delete_many` records its keys here and queues the job
//!   without waiting for the writer thread; reads look here first. The writer *settles* a
//!   job's keys after the commit that holds it, removing them unless a later write replaced
//!   them.
//! * [`ReadCache`]: one read snapshot per bucket table, shared by readers until the next commit,
//!   instead of a fresh redb read transaction per `get`.
//!
//! Invariants:
//! * overlay: recording a write and queueing its job happen under the overlay's lock, so the
//!   writer applies a bucket's relaxed jobs in ticket order and the overlay's latest ticket for
//!   a key is always the write redb will end up holding;
//! * overlay: a key is settled only after the commit holding its job returned, so a reader that
//!   misses the overlay finds the value in redb, provided it takes its snapshot *after* the
//!   miss (readers check the overlay first, then take the snapshot);
//! * read cache: the writer clears the cache after every commit and before answering anyone, so
//!   a cached snapshot is never older than a commit whose caller was answered. A snapshot read
//!   before a clear is not cached afterwards (the generation check).

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

/// Above this many pending bytes, a relaxed write waits for its commit (backpressure), so a
/// writer faster than the disk cannot grow memory without bound.
pub(crate) const OVERLAY_MAX_BYTES: usize = 64 * 1024 * 1024;

/// A relaxed write not yet committed: its ticket and the value (`None`: deleted).
struct Pending {
    ticket: u64,
    value: Option<Vec<u8>>,
}

#[derive(Default)]
struct OverlayState {
    entries: HashMap<String, Pending>,
    next_ticket: u64,
    bytes: usize,
}

/// Acknowledged, uncommitted writes of one relaxed bucket.
#[derive(Default)]
pub(crate) struct Overlay {
    state: Mutex<OverlayState>,
}

/// What [`Overlay::lookup`] knows about a key.
pub(crate) enum Lookup {
    /// Not pending: ask redb.
    Unknown,
    /// Pending with this value (`None`: pending delete).
    Pending(Option<Vec<u8>>),
}

impl Overlay {
    /// Records `writes` under one new ticket and, still under the lock, calls `queue` with the
    /// ticket (which must hand the job to the writer). Returns whether the overlay is over
    /// [`OVERLAY_MAX_BYTES`] afterwards.
    pub(crate) fn record<E>(
        &self,
        writes: impl IntoIterator<Item = (String, Option<Vec<u8>>)>,
        queue: impl FnOnce(u64) -> Result<(), E>,
    ) -> Result<bool, E> {
        let mut state = self.state.lock();
        state.next_ticket += 1;
        let ticket = state.next_ticket;
        for (key, value) in writes {
            let key_len = key.len();
            state.bytes += key_len + value.as_ref().map_or(0, Vec::len);
            if let Some(old) = state.entries.insert(key, Pending { ticket, value }) {
                state.bytes -= key_len + old.value.as_ref().map_or(0, Vec::len);
            }
        }
        queue(ticket)?;
        Ok(state.bytes > OVERLAY_MAX_BYTES)
    }

    /// The pending state of `key`.
    pub(crate) fn lookup(&self, key: &str) -> Lookup {
        match self.state.lock().entries.get(key) {
            Some(pending) => Lookup::Pending(pending.value.clone()),
            None => Lookup::Unknown,
        }
    }

    /// Whether any write is pending.
    pub(crate) fn is_empty(&self) -> bool {
        self.state.lock().entries.is_empty()
    }

    /// The job with `ticket` committed: forget its `keys` unless a later write replaced them.
    pub(crate) fn settle<'k>(&self, keys: impl IntoIterator<Item = &'k str>, ticket: u64) {
        let mut state = self.state.lock();
        for key in keys {
            if state
                .entries
                .get(key)
                .is_some_and(|pending| pending.ticket == ticket)
            {
                if let Some(gone) = state.entries.remove(key) {
                    state.bytes -= key.len() + gone.value.as_ref().map_or(0, Vec::len);
                }
            }
        }
    }
}

/// A shared read snapshot of one bucket table.
pub(crate) type Snapshot = Arc<redb::ReadOnlyTable<&'static str, &'static [u8]>>;

/// Read snapshots per table, valid until the next commit.
#[derive(Default)]
pub(crate) struct ReadCache {
    state: Mutex<(u64, HashMap<Arc<str>, Snapshot>)>,
}

impl ReadCache {
    /// The cached snapshot of `table` and the generation to pass to [`ReadCache::store`].
    pub(crate) fn get(&self, table: &Arc<str>) -> (u64, Option<Snapshot>) {
        let state = self.state.lock();
        (state.0, state.1.get(table).cloned())
    }

    /// Caches `snapshot` if no commit happened since `generation` was read.
    pub(crate) fn store(&self, generation: u64, table: &Arc<str>, snapshot: &Snapshot) {
        let mut state = self.state.lock();
        if state.0 == generation {
            state.1.insert(Arc::clone(table), Arc::clone(snapshot));
        }
    }

    /// Called by the writer after every commit, before answering.
    pub(crate) fn invalidate(&self) {
        let mut state = self.state.lock();
        state.0 += 1;
        state.1.clear();
    }
}
