//! [`ReadOnly`]: any bucket, with every write refused (`kvhost kv --read-only`).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::changes::ChangeRead;
use crate::{Bucket, CasToken, Error, KeyPage, PageBudget, Result, Swap};

/// `inner` for reading only: reads pass through, every write is `other`.
pub struct ReadOnly {
    inner: Arc<dyn Bucket>,
}

impl ReadOnly {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Bucket>) -> Self {
        ReadOnly { inner }
    }
}

fn refused() -> Error {
    Error::other("this bucket is open read-only (--read-only): writes are refused")
}

#[async_trait]
impl Bucket for ReadOnly {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.inner.get(key).await
    }

    async fn set(&self, _key: String, _value: Vec<u8>) -> Result<()> {
        Err(refused())
    }

    async fn delete(&self, _key: String) -> Result<()> {
        Err(refused())
    }

    async fn exists(&self, key: &str) -> Result<bool> {
        self.inner.exists(key).await
    }

    async fn list_keys(&self, position: Option<Vec<u8>>, budget: PageBudget) -> Result<KeyPage> {
        self.inner.list_keys(position, budget).await
    }

    async fn increment(&self, _key: String, _delta: i64) -> Result<i64> {
        Err(refused())
    }

    async fn cas_begin(&self, key: String) -> Result<CasToken> {
        self.inner.cas_begin(key).await
    }

    async fn cas_swap(&self, _token: CasToken, _value: Vec<u8>) -> Result<Swap> {
        Err(refused())
    }

    async fn get_many(&self, keys: Vec<String>) -> Result<Vec<(String, Option<Vec<u8>>)>> {
        self.inner.get_many(keys).await
    }

    async fn set_many(&self, _entries: Vec<(String, Vec<u8>)>) -> Result<()> {
        Err(refused())
    }

    async fn delete_many(&self, _keys: Vec<String>) -> Result<()> {
        Err(refused())
    }

    async fn flush(&self) -> Result<()> {
        Ok(())
    }

    async fn changes(
        &self,
        after: Option<Vec<u8>>,
        max: usize,
        wait: Duration,
    ) -> Result<ChangeRead> {
        self.inner.changes(after, max, wait).await
    }

    async fn change_head(&self) -> Result<Vec<u8>> {
        self.inner.change_head().await
    }

    async fn watch_position(&self, watcher: &str) -> Result<Option<Vec<u8>>> {
        self.inner.watch_position(watcher).await
    }

    async fn save_watch_position(&self, _watcher: String, _position: Vec<u8>) -> Result<()> {
        Err(refused())
    }
}
