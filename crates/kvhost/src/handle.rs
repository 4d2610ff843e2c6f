//! [`BucketHandle`]: a bucket as callers use it.
//!
//! The handle is the one place that checks [`Limits`] (before any I/O, so a backend never sees
//! an oversized key or value) and that turns backend positions into cursor strings. Cloning a
//! handle is cheap; clones share the bucket.

use std::sync::Arc;

use crate::cursor::{decode_cursor, encode_cursor};
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

    /// Passes `result` through, reporting it to the observer if there is one.
    fn seen<T>(&self, op: Op, result: Result<T>) -> Result<T> {
        if let Some(observer) = &self.observer {
            observer.record(&self.name, op, result.as_ref().err());
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
        let result = async {
            self.limits.check_key(key)?;
            self.bucket.get(key).await
        }
        .await;
        self.seen(Op::Get, result)
    }

    /// See [`Bucket::set`].
    pub async fn set(&self, key: String, value: Vec<u8>) -> Result<()> {
        let result = async {
            self.limits.check_key(&key)?;
            self.limits.check_value(&key, &value)?;
            self.bucket.set(key, value).await
        }
        .await;
        self.seen(Op::Set, result)
    }

    /// See [`Bucket::delete`].
    pub async fn delete(&self, key: String) -> Result<()> {
        let result = async {
            self.limits.check_key(&key)?;
            self.bucket.delete(key).await
        }
        .await;
        self.seen(Op::Delete, result)
    }

    /// See [`Bucket::exists`].
    pub async fn exists(&self, key: &str) -> Result<bool> {
        let result = async {
            self.limits.check_key(key)?;
            self.bucket.exists(key).await
        }
        .await;
        self.seen(Op::Exists, result)
    }

    /// One page of keys after `cursor` (`None`: from the start), bounded by the page limits.
    pub async fn list_keys(&self, cursor: Option<&str>) -> Result<KeyResponse> {
        let result = async {
            let position = cursor.map(decode_cursor).transpose()?;
            let page = self
                .bucket
                .list_keys(position, self.limits.page_budget())
                .await?;
            Ok(KeyResponse {
                keys: page.keys,
                cursor: page.next.as_deref().map(encode_cursor),
            })
        }
        .await;
        self.seen(Op::ListKeys, result)
    }

    /// See [`Bucket::increment`].
    pub async fn increment(&self, key: String, delta: i64) -> Result<i64> {
        let result = async {
            self.limits.check_key(&key)?;
            self.bucket.increment(key, delta).await
        }
        .await;
        self.seen(Op::Increment, result)
    }

    /// See [`Bucket::cas_begin`].
    pub async fn cas_begin(&self, key: String) -> Result<CasToken> {
        let result = async {
            self.limits.check_key(&key)?;
            self.bucket.cas_begin(key).await
        }
        .await;
        self.seen(Op::CasBegin, result)
    }

    /// See [`Bucket::cas_swap`].
    pub async fn cas_swap(&self, token: CasToken, value: Vec<u8>) -> Result<Swap> {
        let result = async {
            self.limits.check_value(token.key(), &value)?;
            self.bucket.cas_swap(token, value).await
        }
        .await;
        self.seen(Op::CasSwap, result)
    }

    /// See [`Bucket::get_many`].
    pub async fn get_many(&self, keys: Vec<String>) -> Result<Vec<(String, Option<Vec<u8>>)>> {
        let result = async {
            let bytes = keys.iter().map(String::len).sum();
            self.limits.check_batch(keys.len(), bytes)?;
            keys.iter().try_for_each(|key| self.limits.check_key(key))?;
            self.bucket.get_many(keys).await
        }
        .await;
        self.seen(Op::GetMany, result)
    }

    /// See [`Bucket::set_many`]. Every pair is checked before anything is written.
    pub async fn set_many(&self, entries: Vec<(String, Vec<u8>)>) -> Result<()> {
        let result = async {
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
        }
        .await;
        self.seen(Op::SetMany, result)
    }

    /// See [`Bucket::delete_many`].
    pub async fn delete_many(&self, keys: Vec<String>) -> Result<()> {
        let result = async {
            let bytes = keys.iter().map(String::len).sum();
            self.limits.check_batch(keys.len(), bytes)?;
            keys.iter().try_for_each(|key| self.limits.check_key(key))?;
            self.bucket.delete_many(keys).await
        }
        .await;
        self.seen(Op::DeleteMany, result)
    }

    /// See [`Bucket::flush`].
    pub async fn flush(&self) -> Result<()> {
        self.bucket.flush().await
    }
}
