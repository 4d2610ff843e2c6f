//! The storage engines behind [`crate::Bucket`], and the few rules they share.
//!
//! * [`memory`]: a `BTreeMap` per bucket; linearizable, gone at exit.
//! * [`embedded`] (feature `embedded`, on by default): one redb file per data directory, one
//!   table per bucket, group commit; linearizable and durable.
//!
//! * `redis` (feature `redis`): Redis and Redis Cluster, shared by many kvhost processes;
//!   sharded per bucket, ordered per shard, listed by an exact merge.
//! * [`read_only`]: any of these with writes refused (`kvhost kv --read-only`).
//!
//! Memory and embedded are *ordered* backends: a listing position is the last key returned, and the next
//! page starts strictly after it. Both stamp every write with a version from one sequence
//! (the store's), which is what makes compare-and-swap detect A -> B -> A.

use crate::{CasToken, KeyPage, PageBudget, Result};

#[cfg(feature = "embedded")]
pub mod embedded;
pub mod memory;
pub mod read_only;
#[cfg(feature = "redis")]
pub mod redis;

/// Whether a swap with `token` may write, given the key's version now (`None`: absent) and
/// the sequence number of the bucket's latest delete.
///
/// A present key must still carry the token's version. An absent key must have been absent
/// when the token was made and no delete may have happened since (the token's version is then
/// the store sequence it was made at), so create-then-delete in between is caught. This can
/// refuse a swap that would have been safe (a delete of another key); it never allows one that
/// is not.
pub(crate) fn cas_allows(token: &CasToken, now: Option<u64>, last_delete: u64) -> bool {
    match (token.current(), now) {
        (Some(_), Some(version)) => version == token.version(),
        (None, None) => last_delete <= token.version(),
        _ => false,
    }
}

/// Fills one page from keys in ascending order that all sort after the previous position.
/// The next position is the page's last key, given only if another key follows.
pub(crate) fn ordered_page(
    keys: impl Iterator<Item = Result<String>>,
    budget: PageBudget,
) -> Result<KeyPage> {
    let mut page = KeyPage::default();
    let mut bytes = 0;
    for key in keys {
        let key = key?;
        if !budget.fits(page.keys.len(), bytes, key.len()) {
            page.next = page.keys.last().map(|last| last.as_bytes().to_vec());
            break;
        }
        bytes += key.len();
        page.keys.push(key);
    }
    Ok(page)
}
