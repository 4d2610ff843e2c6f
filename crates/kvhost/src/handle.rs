//! [`BucketHandle`]: a bucket as callers use it.
//!
//! The handle is the one place that checks [`Limits`] (before any I/O, so a backend never sees
//! an oversized key or value) and that turns backend positions into cursor strings. Cloning a
//! handle is cheap; clones share the bucket.

use std::future::Future;
use std::sync::Arc;

use crate::cursor::{decode_cursor, encode_cursor, ordered_position};
use crate::observe::{Observer, Op};
use crate::{Bucket, CasToken, Limits, Result, Swap};

/// One page of a listing as callers see it: keys plus the opaque cursor for the next page.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyResponse {
    /// The keys of this page.
    pub keys: Vec<String>,
    /// Pass to the next `list_keys` call; `None` when there are no more keys.
    pub cursor: Option<String>,
}

/// A named bucket with limits applied. Obtained from [`crate::Registry::open`].
#[derive(Clone)]
pub struct BucketHandle {
    name: Arc<str>,
    bucket: Arc<dyn Bucket>,
    limits: Arc<Limits>,
    observer: Option<Arc<dyn Observer>>,
}

impl std::fmt::Debug for BucketHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BucketHandle")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl BucketHandle {
    /// Wraps a backend bucket. Most callers get handles from a registry instead.
    pub fn new(name: impl Into<Arc<str>>, bucket: Arc<dyn Bucket>, limits: Arc<Limits>) -> Self {
        BucketHandle {
            name: name.into(),
            bucket,
            limits,
            observer: None,
        }
    }

    /// Reports every operation of this handle (and its clones) to `observer`.
    pub fn with_observer(mut self, observer: Option<Arc<dyn Observer>>) -> Self {
        self.observer = observer;
        self
    }

    /// Runs `call`, reporting its result as `op` to the observer if there is one.
    async fn observed<T>(&self, op: Op, call: impl Future<Output = Result<T>>) -> Result<T> {
        let result = call.await;
        if let Some(observer) = &self.observer {
            observer.observe(&self.name, op, result.as_ref().err());
        }
        result
    }

    /// The bucket's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The limits this handle enforces.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// See [`Bucket::get`].
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.observed(Op::Get, async {
            self.limits.check_key(key)?;
            self.bucket.get(key).await
        })
        .await
    }

    /// See [`Bucket::set`].
    pub async fn set(&self, key: String, value: Vec<u8>) -> Result<()> {
        self.observed(Op::Set, async {
            self.limits.check_key(&key)?;
            self.limits.check_value(&key, &value)?;
            self.bucket.set(key, value).await
        })
        .await
    }

    /// See [`Bucket::delete`].
    pub async fn delete(&self, key: String) -> Result<()> {
        self.observed(Op::Delete, async {
            self.limits.check_key(&key)?;
            self.bucket.delete(key).await
        })
        .await
    }

    /// See [`Bucket::exists`].
    pub async fn exists(&self, key: &str) -> Result<bool> {
        self.observed(Op::Exists, async {
            self.limits.check_key(key)?;
            self.bucket.exists(key).await
        })
        .await
    }

    /// One page of keys after `cursor` (`None`: from the start), bounded by the page limits.
    pub async fn list_keys(&self, cursor: Option<&str>) -> Result<KeyResponse> {
        self.observed(Op::ListKeys, async {
            let position = cursor.map(decode_cursor).transpose()?;
            let page = self
                .bucket
                .list_keys(position, self.limits.page_budget())
                .await?;
            Ok(KeyResponse {
                keys: page.keys,
                cursor: page.next.as_deref().map(encode_cursor),
            })
        })
        .await
    }

    /// One page of the keys that start with `prefix`, after `cursor` (`None`: from the first
    /// such key), bounded by the page limits. As exact as [`BucketHandle::list_keys`]: every
    /// key with the prefix that exists for the whole walk appears once. An empty prefix is
    /// [`BucketHandle::list_keys`].
    ///
    /// Works on every backend because of the [`Bucket::list_keys`] ordering invariant: keys
    /// come in byte order and a position is the last key returned, so the walk can start at
    /// the prefix itself (listing resumes strictly after a position, which is why the prefix
    /// as a key is looked up on its own) and stop at the first key without the prefix.
    pub async fn list_keys_with_prefix(
        &self,
        prefix: &str,
        cursor: Option<&str>,
    ) -> Result<KeyResponse> {
        if prefix.is_empty() {
            return self.list_keys(cursor).await;
        }
        self.observed(Op::ListKeys, async {
            self.limits.check_key(prefix)?;
            let after = match cursor {
                Some(cursor) => Some(ordered_position(decode_cursor(cursor)?)?),
                None => None,
            };
            // A cursor from before the prefix's range (another prefix's) starts at its front.
            let (position, include_prefix) = match after {
                Some(after) if after.as_str() >= prefix => (after, false),
                _ => (prefix.to_string(), true),
            };
            let budget = self.limits.page_budget();
            let page = self
                .bucket
                .list_keys(Some(position.into_bytes()), budget)
                .await?;
            let mut keys: Vec<String> = Vec::with_capacity(page.keys.len() + 1);
            if include_prefix && self.bucket.exists(prefix).await? {
                keys.push(prefix.to_string());
            }
            let mut left_the_range = false;
            for key in page.keys {
                if !key.starts_with(prefix) {
                    left_the_range = true;
                    break;
                }
                keys.push(key);
            }
            // The prefix itself may have made the page one key too many.
            let mut bytes: usize = keys.iter().map(String::len).sum();
            let mut trimmed = false;
            while keys.len() > 1 && (keys.len() > budget.max_keys || bytes > budget.max_bytes) {
                if let Some(last) = keys.pop() {
                    bytes -= last.len();
                    trimmed = true;
                }
            }
            let more = trimmed || (!left_the_range && page.next.is_some());
            let cursor = match keys.last() {
                Some(last) if more => Some(encode_cursor(last.as_bytes())),
                _ => None,
            };
            Ok(KeyResponse { keys, cursor })
        })
        .await
    }

    /// See [`Bucket::increment`].
    pub async fn increment(&self, key: String, delta: i64) -> Result<i64> {
        self.observed(Op::Increment, async {
            self.limits.check_key(&key)?;
            self.bucket.increment(key, delta).await
        })
        .await
    }

    /// See [`Bucket::cas_begin`].
    pub async fn cas_begin(&self, key: String) -> Result<CasToken> {
        self.observed(Op::CasBegin, async {
            self.limits.check_key(&key)?;
            self.bucket.cas_begin(key).await
        })
        .await
    }

    /// See [`Bucket::cas_swap`].
    pub async fn cas_swap(&self, token: CasToken, value: Vec<u8>) -> Result<Swap> {
        self.observed(Op::CasSwap, async {
            self.limits.check_value(token.key(), &value)?;
            self.bucket.cas_swap(token, value).await
        })
        .await
    }

    /// See [`Bucket::get_many`].
    pub async fn get_many(&self, keys: Vec<String>) -> Result<Vec<(String, Option<Vec<u8>>)>> {
        self.observed(Op::GetMany, async {
            let bytes = keys.iter().map(String::len).sum();
            self.limits.check_batch(keys.len(), bytes)?;
            keys.iter().try_for_each(|key| self.limits.check_key(key))?;
            self.bucket.get_many(keys).await
        })
        .await
    }

    /// See [`Bucket::set_many`]. Every pair is checked before anything is written.
    pub async fn set_many(&self, entries: Vec<(String, Vec<u8>)>) -> Result<()> {
        self.observed(Op::SetMany, async {
            let bytes = entries
                .iter()
                .map(|(key, value)| key.len() + value.len())
                .sum();
            self.limits.check_batch(entries.len(), bytes)?;
            entries.iter().try_for_each(|(key, value)| {
                self.limits.check_key(key)?;
                self.limits.check_value(key, value)
            })?;
            self.bucket.set_many(entries).await
        })
        .await
    }

    /// See [`Bucket::delete_many`].
    pub async fn delete_many(&self, keys: Vec<String>) -> Result<()> {
        self.observed(Op::DeleteMany, async {
            let bytes = keys.iter().map(String::len).sum();
            self.limits.check_batch(keys.len(), bytes)?;
            keys.iter().try_for_each(|key| self.limits.check_key(key))?;
            self.bucket.delete_many(keys).await
        })
        .await
    }

    /// See [`Bucket::flush`].
    pub async fn flush(&self) -> Result<()> {
        self.bucket.flush().await
    }

    /// See [`Bucket::changes`].
    pub async fn changes(
        &self,
        after: Option<Vec<u8>>,
        max: usize,
        wait: std::time::Duration,
    ) -> Result<crate::changes::ChangeRead> {
        self.bucket.changes(after, max, wait).await
    }

    /// See [`Bucket::change_head`].
    pub async fn change_head(&self) -> Result<Vec<u8>> {
        self.bucket.change_head().await
    }

    /// See [`Bucket::watch_position`].
    pub async fn watch_position(&self, watcher: &str) -> Result<Option<Vec<u8>>> {
        self.bucket.watch_position(watcher).await
    }

    /// See [`Bucket::save_watch_position`].
    pub async fn save_watch_position(&self, watcher: String, position: Vec<u8>) -> Result<()> {
        self.bucket.save_watch_position(watcher, position).await
    }
}
