//! The overlay: writes of a `relaxed` bucket that were acknowledged but are not committed yet.
//! A relaxed `set`/`delete`/`set_many`/`delete_many` stages its keys here and queues the job
//! without waiting for the writer thread; reads look here first. The writer *settles* a job's
//! keys after the commit that holds it, removing them unless a later write replaced them.
//!
//! Invariants:
//! * staging a write and queueing its job happen under the overlay's lock, so the writer
//!   applies a bucket's relaxed jobs in ticket order and the overlay's latest ticket for a key
//!   is always the write redb will end up holding;
//! * a key is settled only after the commit holding its job returned and the read cache took
//!   its committed value (`read_cache`), so a reader that misses the overlay finds the value
//!   there or in redb, provided it looks *after* the miss (readers check the overlay first).

use std::collections::HashMap;

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
    /// Stages `writes` under one new ticket and, still under the lock, calls `queue` with the
    /// ticket (which must hand the job to the writer). Returns whether the overlay is over
    /// [`OVERLAY_MAX_BYTES`] afterwards.
    pub(crate) fn stage<E>(
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
