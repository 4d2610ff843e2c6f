//! What readers of the embedded store share so that a `get` rarely touches redb: one read
//! snapshot per bucket table, and a bounded map of hot values (keys recently written or read
//! with their committed value, or the fact that they are absent).
//!
//! Both are views of the last commit, kept in step by the writer thread:
//! * after every commit, and before answering anyone, the writer calls
//!   [`ReadCache::committed`] with what the commit wrote: the snapshots are dropped, each
//!   written key's hot value is replaced by its new value (or forgotten, for writes whose
//!   result the writer does not hold), and the generation moves on;
//! * a reader that misses the hot values reads a snapshot and offers what it found back
//!   ([`ReadCache::remember`]) with the generation it saw *before* it took the snapshot; the
//!   offer is dropped if a commit happened since, so an older value can never replace a newer
//!   one.
//!
//! Invariant: every hot value and every cached snapshot is what redb holds as of the last
//! commit whose callers were answered. Reads of a relaxed bucket check its overlay first
//! (writes acknowledged but not committed); the writer updates this cache before it settles
//! the overlay, so a key that leaves the overlay is already here with its committed value.
//!
//! The hot values are bounded by [`HOT_MAX_BYTES`] (oldest entries go first); values above
//! [`HOT_MAX_VALUE_BYTES`] are never held, so a few large values cannot push out many small
//! ones.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use parking_lot::Mutex;

/// A shared read snapshot of one bucket table.
pub(crate) type Snapshot = Arc<redb::ReadOnlyTable<&'static str, &'static [u8]>>;

/// The most bytes (keys, values and a fixed overhead per entry) the hot values hold.
pub(crate) const HOT_MAX_BYTES: usize = 32 * 1024 * 1024;
/// The largest value the hot values hold.
pub(crate) const HOT_MAX_VALUE_BYTES: usize = 64 * 1024;
/// What one entry costs beyond its key and value (map slot, queue slot, `Arc` header).
const ENTRY_OVERHEAD: usize = 96;

/// A hot value: the committed value, or `None` when the key is known to be absent.
pub(crate) type Hot = Option<Arc<[u8]>>;

/// What a commit did to one key, for [`ReadCache::committed`].
pub(crate) enum Committed<'a> {
    /// The key now holds this value (`None`: it was deleted).
    Value(&'a Arc<str>, &'a str, Option<&'a [u8]>),
    /// The key changed to a value the caller does not hold: forget it.
    Changed(&'a Arc<str>, &'a str),
}

#[derive(Default)]
struct State {
    /// Moves on with every commit (and reopen).
    generation: u64,
    snapshots: HashMap<Arc<str>, Snapshot>,
    /// Hot values by table, then key (so a lookup needs no allocation).
    hot: HashMap<Arc<str>, HashMap<String, Hot>>,
    /// Hot keys, oldest first (a key may appear more than once; see `evict`).
    order: VecDeque<(Arc<str>, String)>,
    hot_bytes: usize,
    hot_entries: usize,
}

fn cost(key: &str, value: &Hot) -> usize {
    key.len() + value.as_ref().map_or(0, |v| v.len()) + ENTRY_OVERHEAD
}

impl State {
    fn forget(&mut self, table: &str, key: &str) {
        let Some(values) = self.hot.get_mut(table) else {
            return;
        };
        if let Some(old) = values.remove(key) {
            self.hot_bytes -= cost(key, &old);
            self.hot_entries -= 1;
        }
    }

    fn hold(&mut self, table: &Arc<str>, key: &str, value: Hot) {
        if value
            .as_ref()
            .is_some_and(|v| v.len() > HOT_MAX_VALUE_BYTES)
        {
            self.forget(table, key);
            return;
        }
        let added = cost(key, &value);
        let values = self.hot.entry(Arc::clone(table)).or_default();
        match values.get_mut(key) {
            Some(slot) => {
                let old = std::mem::replace(slot, value);
                self.hot_bytes -= cost(key, &old);
            }
            None => {
                values.insert(key.to_string(), value);
                self.order.push_back((Arc::clone(table), key.to_string()));
                self.hot_entries += 1;
            }
        }
        self.hot_bytes += added;
        self.evict();
    }

    /// Drops the oldest keys until the hot values fit. A key forgotten and held again has a
    /// stale queue slot ahead of its live one; popping the stale slot forgets the key early,
    /// which only costs a miss. When slots outnumber twice the entries (plus some slack), the
    /// queue is rebuilt with one slot per held key, its newest: so the sweep runs at most once
    /// per that many holds, and the queue stays within about twice the entries.
    fn evict(&mut self) {
        while self.hot_bytes > HOT_MAX_BYTES {
            let Some((table, key)) = self.order.pop_front() else {
                break;
            };
            self.forget(&table, &key);
        }
        if self.order.len() > 2 * self.hot_entries + 1024 {
            let mut seen = HashSet::with_capacity(self.hot_entries);
            let mut kept = VecDeque::with_capacity(self.hot_entries);
            for (table, key) in self.order.drain(..).rev() {
                let held = self
                    .hot
                    .get(&table)
                    .is_some_and(|values| values.contains_key(&key));
                if held && seen.insert((Arc::clone(&table), key.clone())) {
                    kept.push_front((table, key));
                }
            }
            self.order = kept;
        }
    }
}

/// Snapshots and hot values per bucket table, valid as of the last commit.
#[derive(Default)]
pub(crate) struct ReadCache {
    state: Mutex<State>,
}

/// What [`ReadCache::lookup`] found.
pub(crate) struct Found {
    /// The generation to pass to [`ReadCache::remember`] and [`ReadCache::store`].
    pub generation: u64,
    /// The key's hot value, if it is held.
    pub hot: Option<Hot>,
    /// The table's shared snapshot, if one is cached.
    pub snapshot: Option<Snapshot>,
}

impl ReadCache {
    /// `key`'s hot value in `table` and the table's snapshot, under one lock.
    pub(crate) fn lookup(&self, table: &Arc<str>, key: &str) -> Found {
        let state = self.state.lock();
        let hot = state
            .hot
            .get(table)
            .and_then(|values| values.get(key))
            .cloned();
        Found {
            generation: state.generation,
            hot,
            snapshot: state.snapshots.get(table).cloned(),
        }
    }

    /// The cached snapshot of `table` and the generation to pass to [`ReadCache::store`].
    pub(crate) fn get(&self, table: &Arc<str>) -> (u64, Option<Snapshot>) {
        let state = self.state.lock();
        (state.generation, state.snapshots.get(table).cloned())
    }

    /// Caches `snapshot` if no commit happened since `generation` was read.
    pub(crate) fn store(&self, generation: u64, table: &Arc<str>, snapshot: &Snapshot) {
        let mut state = self.state.lock();
        if state.generation == generation {
            state
                .snapshots
                .insert(Arc::clone(table), Arc::clone(snapshot));
        }
    }

    /// Holds what a reader found for `key` (`None`: absent) if no commit happened since
    /// `generation` was read.
    pub(crate) fn remember(
        &self,
        generation: u64,
        table: &Arc<str>,
        key: &str,
        value: Option<&[u8]>,
    ) {
        let mut state = self.state.lock();
        if state.generation == generation {
            state.hold(table, key, value.map(Arc::from));
        }
    }

    /// Called by the writer after every commit, before answering: what the commit wrote.
    pub(crate) fn committed<'a>(&self, writes: impl IntoIterator<Item = Committed<'a>>) {
        let mut state = self.state.lock();
        state.generation += 1;
        state.snapshots.clear();
        for write in writes {
            match write {
                Committed::Value(table, key, value) => {
                    state.hold(table, key, value.map(Arc::from));
                }
                Committed::Changed(table, key) => state.forget(table, key),
            }
        }
    }

    /// Drops everything (the database is being reopened).
    pub(crate) fn invalidate(&self) {
        let mut state = self.state.lock();
        state.generation += 1;
        state.snapshots.clear();
        state.hot.clear();
        state.order.clear();
        state.hot_bytes = 0;
        state.hot_entries = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Arc<str> {
        Arc::from("bucket:t")
    }

    fn hot(cache: &ReadCache, key: &str) -> Option<Hot> {
        cache.lookup(&table(), key).hot
    }

    #[test]
    fn a_read_from_before_a_commit_is_not_held_after_it() {
        let cache = ReadCache::default();
        let t = table();
        // A reader looks, misses, and reads "old" from its snapshot...
        let seen = cache.lookup(&t, "k");
        assert!(seen.hot.is_none());
        // ...while a commit writes "new"...
        cache.committed([Committed::Value(&t, "k", Some(b"new"))]);
        // ...so its offer of "old" must be dropped.
        cache.remember(seen.generation, &t, "k", Some(b"old"));
        assert_eq!(hot(&cache, "k"), Some(Some(Arc::from(&b"new"[..]))));
        // A reader after the commit may hold what it read.
        let now = cache.lookup(&t, "absent");
        cache.remember(now.generation, &t, "absent", None);
        assert_eq!(hot(&cache, "absent"), Some(None));
    }

    #[test]
    fn commits_replace_forget_and_delete() {
        let cache = ReadCache::default();
        let t = table();
        cache.committed([
            Committed::Value(&t, "a", Some(b"1")),
            Committed::Value(&t, "b", Some(b"2")),
            Committed::Value(&t, "a", Some(b"3")),
        ]);
        assert_eq!(hot(&cache, "a"), Some(Some(Arc::from(&b"3"[..]))));
        cache.committed([Committed::Changed(&t, "b"), Committed::Value(&t, "a", None)]);
        assert_eq!(hot(&cache, "b"), None, "a changed key is forgotten");
        assert_eq!(
            hot(&cache, "a"),
            Some(None),
            "a deleted key is known absent"
        );
        cache.invalidate();
        assert_eq!(hot(&cache, "a"), None);
    }

    #[test]
    fn hot_values_stay_within_their_bound() {
        let cache = ReadCache::default();
        let t = table();
        let value = vec![7u8; 1000];
        let keys: Vec<String> = (0..HOT_MAX_BYTES / 1000 + 5_000)
            .map(|n| format!("{n:08}"))
            .collect();
        for key in &keys {
            cache.committed([Committed::Value(&t, key, Some(&value))]);
        }
        let state = cache.state.lock();
        assert!(state.hot_bytes <= HOT_MAX_BYTES, "{}", state.hot_bytes);
        assert!(state.order.len() <= 2 * state.hot_entries + 1024);
        drop(state);
        // The oldest went first; the newest is held.
        assert_eq!(hot(&cache, &keys[0]), None);
        assert!(hot(&cache, &keys[keys.len() - 1]).is_some());
        // A value over the per-value cap is never held, and forgets what was held.
        let big = vec![0u8; HOT_MAX_VALUE_BYTES + 1];
        let last = &keys[keys.len() - 1];
        cache.committed([Committed::Value(&t, last, Some(&big))]);
        assert_eq!(hot(&cache, last), None);
    }

    #[test]
    fn a_key_forgotten_and_held_again_keeps_one_queue_slot() {
        let cache = ReadCache::default();
        let t: Arc<str> = Arc::from("bucket:counter");
        // A counter incremented (forgotten) and read back (held), over and over.
        for _ in 0..10_000 {
            cache.committed([Committed::Changed(&t, "n")]);
            let now = cache.lookup(&t, "n");
            cache.remember(now.generation, &t, "n", Some(b"1"));
        }
        let state = cache.state.lock();
        assert_eq!(state.hot_entries, 1);
        assert!(
            state.order.len() <= 2 * state.hot_entries + 1025,
            "{}",
            state.order.len()
        );
    }
}
