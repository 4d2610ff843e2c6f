//! The [`Bucket`] trait: the seam between callers and storage engines.
//!
//! A backend implements these methods with exact `wasi:keyvalue` semantics; callers never use
//! a backend directly but through a [`crate::BucketHandle`], which has already checked limits
//! (so a backend may assume every key and value is within them) and which owns the cursor
//! encoding (so a backend deals in raw positions, not strings).
//!
//! Invariants every implementation keeps (the conformance suite checks each one):
//! * read-your-writes: once a write method returns `Ok`, every later read through the same
//!   bucket object sees that write or a newer one;
//! * `delete` of a missing key is `Ok`; an empty value is a value, not a missing key;
//! * `list_keys` returns every key that exists for the whole of a listing exactly once, in
//!   ascending byte order, and a page's `next` position is its last key (UTF-8): a listing
//!   resumes strictly after the key it is given. [`crate::BucketHandle::list_keys_with_prefix`]
//!   depends on this to start a walk at any key;
//! * `increment` stores decimal ASCII (see `counter`), so `set(b"10")` then `increment(1)`
//!   yields 11 on every backend;
//! * `cas_swap` succeeds only if the key was not written (or deleted) since `cas_begin`.

use std::time::Duration;

use async_trait::async_trait;

use crate::changes::{no_change_log, ChangeRead};
use crate::Result;

/// How much one `list_keys` page may hold. A page never exceeds either bound, and always
/// holds at least one key when any key remains (so a listing always makes progress).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageBudget {
    /// Most keys in one page.
    pub max_keys: usize,
    /// Most key bytes (sum of key lengths) in one page.
    pub max_bytes: usize,
}

impl PageBudget {
    /// Whether a page that already holds `keys` keys totalling `bytes` bytes can take one more
    /// key of `next_len` bytes. The first key always fits.
    pub fn fits(&self, keys: usize, bytes: usize, next_len: usize) -> bool {
        keys == 0 || (keys < self.max_keys && bytes + next_len <= self.max_bytes)
    }
}

/// One page of a key listing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyPage {
    /// The keys of this page.
    pub keys: Vec<String>,
    /// Where the next page starts, in the backend's own terms; `None` when the listing is done.
    /// [`crate::BucketHandle`] wraps it into the opaque cursor string guests see.
    pub next: Option<Vec<u8>>,
}

/// The state a compare-and-swap starts from: the key, its value then, and the version that a
/// swap checks. Made by [`Bucket::cas_begin`] and consumed by [`Bucket::cas_swap`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CasToken {
    key: String,
    current: Option<Vec<u8>>,
    version: u64,
}

impl CasToken {
    /// A token for `key` holding `current` at `version`. What `version` means is the backend's
    /// business; only the backend that made a token may interpret it.
    pub fn new(key: String, current: Option<Vec<u8>>, version: u64) -> Self {
        CasToken {
            key,
            current,
            version,
        }
    }

    /// The key this token is for.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The value the key had when the token was made (`None`: the key did not exist).
    pub fn current(&self) -> Option<&[u8]> {
        self.current.as_deref()
    }

    /// The backend's version stamp for that value.
    pub fn version(&self) -> u64 {
        self.version
    }
}

/// The outcome of [`Bucket::cas_swap`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Swap {
    /// The value was written.
    Swapped,
    /// The key was written since the token was made; nothing was written. The fresh token
    /// holds the latest value and version, ready for a retry.
    Stale(CasToken),
}

/// A key-value bucket: the trait every backend implements. Object safe; used as
/// `Arc<dyn Bucket>`.
///
/// Keys and values arrive already checked against [`crate::Limits`].
#[async_trait]
pub trait Bucket: Send + Sync + 'static {
    /// The value of `key`, or `None` if it does not exist.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>>;

    /// Creates or overwrites `key`.
    async fn set(&self, key: String, value: Vec<u8>) -> Result<()>;

    /// Removes `key`; a missing key is not an error.
    async fn delete(&self, key: String) -> Result<()>;

    /// Whether `key` exists.
    async fn exists(&self, key: &str) -> Result<bool>;

    /// One page of keys, starting at `position` (from an earlier [`KeyPage::next`]) or at the
    /// beginning. A position the backend cannot read is `Error::Other("invalid cursor ...")`.
    async fn list_keys(&self, position: Option<Vec<u8>>, budget: PageBudget) -> Result<KeyPage>;

    /// Adds `delta` to the decimal integer at `key` (missing: 0) and returns the new value.
    async fn increment(&self, key: String, delta: i64) -> Result<i64>;

    /// Starts a compare-and-swap on `key`.
    async fn cas_begin(&self, key: String) -> Result<CasToken>;

    /// Writes `value` if the key is unchanged since `token` was made.
    async fn cas_swap(&self, token: CasToken, value: Vec<u8>) -> Result<Swap>;

    /// The values of `keys`, in the same order, each paired with its key.
    async fn get_many(&self, keys: Vec<String>) -> Result<Vec<(String, Option<Vec<u8>>)>>;

    /// Sets every pair; atomically where the backend documents it.
    async fn set_many(&self, entries: Vec<(String, Vec<u8>)>) -> Result<()>;

    /// Deletes every key (missing keys are skipped); atomically where the backend documents it.
    async fn delete_many(&self, keys: Vec<String>) -> Result<()>;

    /// Makes every acknowledged write durable now (a no-op where writes already are).
    async fn flush(&self) -> Result<()> {
        Ok(())
    }

    /// At most `max` changes committed after `after` (`None`: from the oldest kept), in
    /// commit order; waits up to `wait` for one when there is none yet. See
    /// [`crate::changes`]. The default: this bucket keeps no change log.
    async fn changes(
        &self,
        after: Option<Vec<u8>>,
        max: usize,
        wait: Duration,
    ) -> Result<ChangeRead> {
        let _ = (after, max, wait);
        Err(no_change_log())
    }

    /// The position of the latest committed change: reading from it returns only what is
    /// committed later.
    async fn change_head(&self) -> Result<Vec<u8>> {
        Err(no_change_log())
    }

    /// The position watcher `watcher` saved for this bucket, if any.
    async fn watch_position(&self, watcher: &str) -> Result<Option<Vec<u8>>> {
        let _ = watcher;
        Err(no_change_log())
    }

    /// Saves watcher `watcher`'s position for this bucket (durably where the bucket is).
    async fn save_watch_position(&self, watcher: String, position: Vec<u8>) -> Result<()> {
        let _ = (watcher, position);
        Err(no_change_log())
    }
}
